"""What survives an agent restart: per-service healing memory and the last known status.

One JSON file in the state directory, written atomically (temporary file, fsync, rename), so
a reader never sees half a file. An unreadable file is moved aside with a warning and the agent
starts fresh; it never crashes on its own state. Decides nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import AgentRunning
from .logs import log_event

log = logging.getLogger("supervisor.state")

STATE_FILE = "state.json"
# A hold with no end: `pause` without --for lasts until `resume` (9999-12-31).
HELD_FOREVER = 253402300799.0
STATE_VERSION = 1


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
) -> None:
    """Write every service's snapshot (and the agent's own figures) to the state file,
    atomically. Without `fsync` the write survives the agent's death (the page cache stays)
    but not the machine's, and costs no disk flush."""
    state_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "version": STATE_VERSION,
        "updated_at": time.time(),
        "agent": agent or {"pid": os.getpid()},
        "services": services,
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


def load_state(state_dir: Path, move_aside: bool = True) -> dict[str, dict[str, Any]]:
    """Return the saved snapshots by service; {} when there are none or the file is unreadable.

    With `move_aside`, an unreadable file is renamed to state.json.corrupt-TIMESTAMP.
    """
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        services = data["services"]
        if data.get("version") != STATE_VERSION or not isinstance(services, dict):
            raise ValueError(f"unexpected state version {data.get('version')!r}")
        return {k: v for k, v in services.items() if isinstance(v, dict)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        if not move_aside:
            return {}
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
        return {}


class StateWriter:
    """Writes the state file on a thread of its own, so that no check waits for an fsync.

    `request()` marks the state dirty; the writer saves the latest snapshot soon after,
    coalescing bursts into one write. `flush()` writes now, on the caller's thread.
    """

    def __init__(
        self,
        state_dir: Path,
        snapshot: Callable[[], tuple[dict[str, dict[str, Any]], dict[str, Any]]],
    ) -> None:
        self._state_dir = state_dir
        self._snapshot = snapshot
        self._dirty = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._dirty.set()

    def flush(self, fsync: bool = True) -> None:
        self._dirty.clear()
        with self._lock:
            try:
                services, agent = self._snapshot()
                save_state(self._state_dir, services, agent, fsync)
            except OSError as e:
                log_event(
                    log,
                    logging.ERROR,
                    "state.save_failed",
                    "could not save state",
                    path=str(self._state_dir / STATE_FILE),
                    error=str(e),
                )

    def close(self) -> None:
        self._closed = True
        self._dirty.set()
        self._thread.join(5)
        self.flush()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            if self._closed:
                return
            self.flush()


LOCK_FILE = "agent.lock"


def lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold the state directory's exclusive lock for as long as the returned file is open.

    Raises AgentRunning when another agent holds it: one agent per state directory.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held open
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise AgentRunning(f"{state_dir}: another agent is running (pid {pid})") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def running_agent_pid(state_dir: Path) -> int | None:
    """The pid of the agent holding the state directory's lock, or None."""
    try:
        handle = open(state_dir / LOCK_FILE, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


COMMANDS_DIR = "commands"


def send_command(state_dir: Path, command: dict[str, Any]) -> Path:
    """Drop an operator command where the running agent picks it up within a beat."""
    directory = state_dir / COMMANDS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cmd-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(command, f)
    final = directory / f"{time.time_ns()}-{os.getpid()}.json"
    os.replace(tmp, final)
    return final


def take_commands(state_dir: Path) -> list[dict[str, Any]]:
    """The commands waiting for the agent, oldest first; each is removed as it is read."""
    directory = state_dir / COMMANDS_DIR
    try:
        paths = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return []
    commands = []
    for path in paths:
        # An unreadable command is dropped below, never retried forever.
        with contextlib.suppress(OSError, ValueError):
            commands.append(json.loads(path.read_text(encoding="utf-8")))
        path.unlink(missing_ok=True)
    return commands
