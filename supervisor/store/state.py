"""What survives an agent restart: per-service healing memory and the last known status.

One JSON file in the state directory, written atomically (temporary file, fsync, rename), so
a reader never sees half a file. An unreadable file is moved aside with a warning and the agent
starts fresh; it never crashes on its own state. Decides nothing.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..logs import log_event

log = logging.getLogger("supervisor.state")

STATE_FILE = "state.json"
STATE_VERSION = 2
# Version 1 (no intents, an interrupted cycle as `down_cycle`) is still read.
READABLE_VERSIONS = (1, 2)


def default_state_dir() -> Path:
    """/var/lib/docker-supervisor for root (systemd's StateDirectory), else the XDG state dir."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/docker-supervisor")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "docker-supervisor"


def save_state(
    state_dir: Path,
    services: dict[str, dict[str, Any]],
    agent: dict[str, Any] | None = None,
    fsync: bool = True,
    intents: list[dict[str, Any]] | None = None,
) -> None:
    """Write every service's snapshot, the journal's intents and the agent's own figures to
    the state file, atomically. Without `fsync` the write survives the agent's death (the
    page cache stays) but not the machine's, and costs no disk flush."""
    state_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "version": STATE_VERSION,
        "updated_at": time.time(),
        "agent": agent or {"pid": os.getpid()},
        "services": services,
        "intents": intents or [],
    }
    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), sort_keys=True)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, state_dir / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not fsync:
        return
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass
class Saved:
    """What a state file holds: per-service snapshots and the journal's intents."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: list[dict[str, Any]] = field(default_factory=list)
    # Containers an operator stopped by hand, whichever service (if any) watched them.
    manual_stops: list[str] = field(default_factory=list)


def load_state(state_dir: Path, move_aside: bool = True) -> Saved:
    """Return what was saved; empty when there is nothing or the file is unreadable.

    With `move_aside`, an unreadable file is renamed to state.json.corrupt-TIMESTAMP.
    """
    path = state_dir / STATE_FILE
    try:
        # Never through a symbolic link: the file names containers the agent will start.
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), encoding="utf-8") as f:
            data = json.loads(f.read())
        services = data["services"]
        if data.get("version") not in READABLE_VERSIONS or not isinstance(services, dict):
            raise ValueError(f"unexpected state version {data.get('version')!r}")
        intents = data.get("intents") or []
        if not isinstance(intents, list):
            raise ValueError("intents is not a list")
        services = {k: v for k, v in services.items() if isinstance(v, dict)}
        agent = data.get("agent") if isinstance(data.get("agent"), dict) else {}
        manual = agent.get("manual_stops") if isinstance(agent.get("manual_stops"), list) else []
        return Saved(
            services,
            [i for i in intents if isinstance(i, dict)] + _v1_intents(services),
            [cid for cid in manual if isinstance(cid, str)],
        )
    except FileNotFoundError:
        return Saved()
    except (OSError, ValueError, KeyError, TypeError) as e:
        if not move_aside:
            return Saved()
        aside = path.with_name(f"{STATE_FILE}.corrupt-{int(time.time())}")
        try:
            path.rename(aside)
        except OSError:
            aside = None
        log_event(
            log,
            logging.WARNING,
            "state.unreadable",
            "state file unreadable; starting fresh",
            path=str(path),
            moved_to=str(aside) if aside else None,
            error=str(e),
        )
        return Saved()


def _v1_intents(services: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A version-1 `down_cycle` is an intent to start that container again."""
    found = []
    for service, entry in services.items():
        cycle = entry.pop("down_cycle", None)
        if isinstance(cycle, dict) and isinstance(cycle.get("container_id"), str):
            cid = cycle["container_id"]
            at = cycle.get("at") if isinstance(cycle.get("at"), int | float) else 0.0
            found.append(
                {"key": cid, "service": service, "kind": "container", "container_id": cid, "at": at}
            )
    return found


COALESCE_S = 0.2
# While the state file cannot be written, the writer tries again this often.
RETRY_S = 2.0


class StateWriter:
    """Writes the state file on a thread of its own; no lock is held while it writes.

    `request()` marks the state dirty; the writer saves the latest snapshot soon after,
    coalescing bursts into one write. `request(then=fn)` writes at once and calls `fn` on the
    writer's thread once that write is done (or failed, and said so): a heal's outcome is
    logged only once the state file `status` reads carries it. `write_through()` returns once
    a snapshot taken after the call is on disk (without fsync: it must survive the agent's
    death, which the page cache does, and an fsync would delay every heal).
    """

    def __init__(
        self,
        state_dir: Path,
        snapshot: Callable[[], tuple[dict[str, dict[str, Any]], dict[str, Any], list]],
    ) -> None:
        self._state_dir = state_dir
        self._snapshot = snapshot
        self._changed = threading.Condition()
        self._wanted = 0  # the newest request's number
        self._written = 0  # the newest request covered by a write
        self._urgent = False
        self._closed = False
        self._then: list[tuple[int, Callable[[], None]]] = []  # run once their ticket is written
        self._saved = 0  # the newest request covered by a write that reached the disk
        # While writes fail (a full or read-only filesystem) the writer tries again every
        # RETRY_S; `on_health(writable)` is told when that changes.
        self.failing = False
        self.on_health: Callable[[bool], None] = lambda writable: None
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
        self._thread.start()

    def request(self, urgent: bool = False, then: Callable[[], None] | None = None) -> int:
        with self._changed:
            self._wanted += 1
            self._urgent = self._urgent or urgent or then is not None
            late = then is not None and self._closed  # nothing will be written: say it now
            if then is not None and not late:
                self._then.append((self._wanted, then))
            self._changed.notify_all()
            ticket = self._wanted
        if late:
            _run_all([then])
        return ticket

    def write_through(self, timeout_s: float = 10.0) -> bool:
        """Request a write now and wait until it is done; False if it failed, or the writer
        did not make it in time."""
        ticket = self.request(urgent=True)
        with self._changed:
            done = self._changed.wait_for(
                lambda: self._written >= ticket or self._closed, timeout_s
            )
            return done and self._saved >= ticket

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(5)
        self._write(fsync=True)
        with self._changed:
            due, self._then = self._then, []
        _run_all(due)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._wanted > self._written or self._closed,
                    RETRY_S if self.failing else None,
                )
                # A burst of plain requests is one write, soon; a write-through goes now
                # (a heal's stop waits for it, and must not wait behind a plain one).
                self._changed.wait_for(lambda: self._urgent or self._closed, COALESCE_S)
                if self._closed:
                    return
                ticket, self._urgent = self._wanted, False
            saved = self._write(fsync=False)
            with self._changed:
                self._written = ticket
                if saved:
                    self._saved = ticket
                due = [fn for t, fn in self._then if t <= ticket]
                self._then = [(t, fn) for t, fn in self._then if t > ticket]
                self._changed.notify_all()
            _run_all(due)

    def _write(self, fsync: bool) -> bool:
        """Write the latest snapshot; say once when writes start failing, and when they work
        again."""
        try:
            services, agent, intents = self._snapshot()
            save_state(self._state_dir, services, agent, fsync, intents)
        except OSError as e:
            if not self.failing:
                self.failing = True
                log_event(
                    log,
                    logging.ERROR,
                    "state.save_failed",
                    "could not save state: no heal stops anything until it can",
                    path=str(self._state_dir / STATE_FILE),
                    error=str(e),
                )
                self.on_health(False)
            return False
        if self.failing:
            self.failing = False
            log_event(log, logging.INFO, "state.saved", "the state file is written again")
            self.on_health(True)
        return True


def _run_all(actions: list[Callable[[], None]]) -> None:
    """What waited for a write (log lines): one that raises does not stop the others, nor
    the writer."""
    for action in actions:
        try:
            action()
        except Exception as e:  # the writer must go on writing
            log_event(log, logging.ERROR, "state.error", "after a save", error=repr(e))
