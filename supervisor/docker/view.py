"""The container view: every container's state, kept current by Docker's events.

In the manner of a Kubernetes informer: open the event stream, list once (inspecting each
container), then let events update the cache; re-list now and then (and after every
reconnect) to correct drift, inspecting only what changed. Checks read the view and make no
API call of their own. The view also knows which stop/kill/die/start events the agent caused,
and which containers someone else stopped by hand.

It observes only: it never stops, starts or decides anything. It talks to Docker only through
engine.Engine.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import ContainerGone, EngineError, EngineUnreachable
from ..logs import SaidOnce, log_event

log = logging.getLogger("supervisor.view")

# The container events the view follows; the engine filters out the rest (exec_* above all,
# which every health check emits three times).
WATCHED_ACTIONS = (
    "create", "start", "restart", "die", "stop", "kill", "oom", "destroy",
    "health_status", "pause", "unpause", "rename",
)  # fmt: skip
# How long after the agent's own call returns its events are still taken as its own.
OWN_EVENT_GRACE_S = 5.0
# What an own-action block does: a stop (or restart) owns every event it causes; a start
# owns none of a stop's events.
STOPPING, STARTING = "stopping", "starting"
STOP_VERBS = frozenset({"kill", "die", "stop"})
# A kill with one of these signals stops the container (docker kill, docker stop); others
# (HUP to reload, say) do not.
STOP_SIGNALS = frozenset({"2", "3", "9", "15", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM"})
RESTART_POLICIES = frozenset({"always", "unless-stopped", "on-failure"})
# The State of a container the engine will not describe: `error / unknown_state`, not healed.
UNKNOWN_STATE = {"Status": "unknown"}
# Stops seen this shortly before the event stream breaks are taken as the engine's shutdown.
ENGINE_SHUTDOWN_WINDOW_S = 30.0
RESYNC_AFTER_RECONNECT_S = 3.0
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 2.0

_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")


class ContainerSource(Protocol):
    """What the view needs from the engine adapter."""

    def list_rows(self) -> list[Mapping[str, Any]]: ...
    def inspect_container(self, container_id: str) -> Any: ...
    def open_events(self, actions: tuple[str, ...]) -> Any: ...


@dataclass(frozen=True)
class ViewEvent:
    """One applied event, as the agent is told of it."""

    container_id: str
    action: str
    by_agent: bool
    container: Any | None  # engine.ContainerInfo after the event; None once destroyed


def apply_event(
    state: Mapping[str, Any], action: str, attrs: Mapping[str, str], at_iso: str, oom: bool = False
) -> dict[str, Any]:
    """Return the inspect-style State after one event. Pure; unknown actions change nothing."""
    new = dict(state)
    verb, _, detail = action.partition(":")
    if verb in ("start", "restart"):
        new.update(
            Status="running",
            Running=True,
            Paused=False,
            Restarting=False,
            OOMKilled=False,
            Dead=False,
            ExitCode=0,
            StartedAt=at_iso,
        )
        if isinstance(new.get("Health"), Mapping):
            new["Health"] = {**new["Health"], "Status": "starting", "FailingStreak": 0}
    elif verb == "die":
        try:
            code = int(attrs.get("exitCode", "0"))
        except ValueError:
            code = -1
        new.update(
            Status="exited",
            Running=False,
            Paused=False,
            Restarting=False,
            ExitCode=code,
            OOMKilled=oom,
            FinishedAt=at_iso,
        )
    elif verb == "health_status":
        health = detail.strip()
        new["Health"] = {**(new.get("Health") or {}), "Status": health}
    elif verb == "pause":
        new.update(Status="paused", Paused=True)
    elif verb == "unpause":
        new.update(Status="running", Paused=False)
    return new


def health_from_list_status(text: str) -> str | None:
    """The health shown in a listing's Status text ("Up 5 minutes (healthy)"), if any."""
    found = _HEALTH_IN_STATUS.search(text or "")
    if not found:
        return None
    return "starting" if found.group(1) == "health: starting" else found.group(1)


def fingerprint_state(state: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """What a listing row can confirm about a State: its status word and health."""
    if state is None:
        return (None, None)
    health = (
        (state.get("Health") or {}).get("Status")
        if isinstance(state.get("Health"), Mapping)
        else None
    )
    status = state.get("Status")
    return (status, health if status == "running" else None)


def fingerprint_row(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    status = row.get("State")
    health = health_from_list_status(row.get("Status", "")) if status == "running" else None
    return (status, health)


class ContainerView:
    """A thread-safe cache of every container, kept current by an events thread."""

    def __init__(
        self,
        source: ContainerSource,
        on_event: Callable[[ViewEvent], None] | None = None,
        on_sync: Callable[[bool, str | None], None] | None = None,
        clock: Callable[[], float] = time.time,
        manual_stops: Iterable[str] = (),
        steady: Callable[[], float] = time.monotonic,  # never steps: how long ago it saw
        steady_of: Callable[[float], float] | None = None,  # an engine stamp on `steady`
    ) -> None:
        self._source = source
        self._on_event = on_event
        self._on_sync = on_sync
        self._clock = clock
        self._steady = steady
        self._steady_of = steady_of or (lambda at: steady() - max(0.0, clock() - at))
        self._changed = threading.Condition()
        self._containers: dict[str, Any] = {}
        self._last_event_seq: dict[str, int] = {}
        self._seq = 0
        self._oom: set[str] = set()
        self._kill_pending: set[str] = set()
        # Stops by hand, and when each happened on the steady clock (whether one came just
        # before the engine went away does not step with the wall clock).
        # Those an earlier agent saw hold from the start, until the container runs.
        self._manual_stop: dict[str, float] = dict.fromkeys(manual_stops, -math.inf)
        # Own actions, by container (or compose service, or project) and kind: the blocks
        # under way, and the windows of those that ended.
        self._own_ids: dict[tuple[str, str], _Own] = {}
        self._own_projects: dict[tuple[str, str], _Own] = {}
        # Containers whose inspect the engine refuses or never answers (an authorization
        # plugin, a filtering proxy, a process in D state): shown unknown, said once.
        self._unreadable: set[str] = set()
        self._malformed = SaidOnce(logging.WARNING)  # events it cannot read
        self._synced = False
        self._reported: bool | None = None
        self._stopping = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    # Reading.

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def answered(self) -> bool:
        """The first listing has an outcome (synced or not): until then, nothing is known."""
        return self._reported is not None

    def containers(self) -> list[Any]:
        with self._changed:
            return list(self._containers.values())

    def get(self, container_id: str) -> Any | None:
        with self._changed:
            return self._containers.get(container_id)

    def is_manual_stop(self, container_id: str) -> bool:
        with self._changed:
            return container_id in self._manual_stop

    def manual_stops(self) -> list[str]:
        """The containers stopped by hand and not started since (the state file keeps
        them, so a restarted agent knows them whatever supervised them)."""
        with self._changed:
            return sorted(self._manual_stop)

    def wait_change(self, timeout_s: float) -> None:
        """Block until the view changes or `timeout_s` passes."""
        with self._changed:
            self._changed.wait(timeout_s)

    # The agent's own actions.

    @contextmanager
    def acting_on(
        self,
        container_ids: tuple[str, ...] = (),
        project: str | None = None,
        services: tuple[str, ...] = (),
        stopping: bool = True,
    ):
        """Mark the events of these containers (or of these services of a compose project,
        or of the whole project when no service is named) as the agent's own, from now until
        OWN_EVENT_GRACE_S after the block ends (and while any other block marking the same
        container, service or project runs). A block that only starts (`stopping` False)
        marks no stop: an operator's stop just after the agent's start is the operator's."""
        keys = [(self._own_ids, cid) for cid in container_ids]
        if project and services:
            keys += [(self._own_projects, _service_key(project, s)) for s in services]
        elif project:
            keys.append((self._own_projects, project))
        kind = STOPPING if stopping else STARTING
        marks = [(bag, (key, kind)) for bag, key in keys]
        with self._changed:
            began = self._steady()  # the steady clock: a step of the wall clock moves no window
            if not stopping:
                # A stop stamped after the agent's own start began is not the agent's.
                for bag, key in keys:
                    stop = bag.get((key, STOPPING))
                    if stop is not None and stop.holders == 0:
                        stop.end_by(began)
            for bag, key in marks:
                bag.setdefault(key, _Own()).enter(began)
        try:
            yield
        finally:
            with self._changed:
                now = self._steady()
                for bag, key in marks:
                    bag.setdefault(key, _Own()).leave(now, OWN_EVENT_GRACE_S)

    def _is_own(self, container_id: str, container: Any | None, at: float, verb: str) -> bool:
        """Whether an event that happened at `at` (the engine's stamp, on the steady clock)
        is the agent's doing."""
        labels = container.labels if container else {}
        project = labels.get("com.docker.compose.project") or ""
        service = labels.get("com.docker.compose.service") or ""
        kinds = (STOPPING,) if verb in STOP_VERBS else (STOPPING, STARTING)
        for kind in kinds:
            for mark in (
                self._own_ids.get((container_id, kind)),
                self._own_projects.get((project, kind)),
                self._own_projects.get((_service_key(project, service), kind)),
            ):
                if mark is not None and mark.covers(at):
                    return True
        return False

    # Syncing.

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="container-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            # Closing a broken stream may fail; we are leaving anyway.
            with contextlib.suppress(Exception):
                stream.close()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        delay_s = RECONNECT_FIRST_S
        while not self._stopping.is_set():
            try:
                self._stream = self._source.open_events(WATCHED_ACTIONS)
                if self.connect():
                    # A restarted engine restores containers for a while after it answers,
                    # not always with events: look once more when that has settled.
                    self._resync_later(RESYNC_AFTER_RECONNECT_S)
                delay_s = RECONNECT_FIRST_S
                for event in self._stream:
                    self.apply(event)
                if not self._stopping.is_set():
                    raise EngineError("the event stream ended")
            except Exception as e:  # any failure: mark unsynced, back off, reconnect
                if self._stopping.is_set():
                    break
                self.disconnect(f"{type(e).__name__}: {e}")
                self._stopping.wait(delay_s)
                delay_s = min(delay_s * 2, RECONNECT_MAX_S)
            finally:
                self._stream = None

    def connect(self) -> bool:
        """The stream is open: list, then count as synced. True when this is a reconnect
        (the engine was away). Raises what the listing raises."""
        again = self._reported is False
        self.resync()
        self._set_synced(True, None)
        return again

    def disconnect(self, error: str) -> None:
        """The stream broke (or could not open): not synced until `connect` again."""
        self._set_synced(False, error)

    def _resync_later(self, delay_s: float) -> None:
        def run() -> None:
            if self._stopping.wait(delay_s) or not self._synced:
                return
            with contextlib.suppress(EngineError):
                self.resync()

        threading.Thread(target=run, name="view-resync", daemon=True).start()

    def _set_synced(self, synced: bool, error: str | None) -> None:
        with self._changed:
            if not synced:
                # A stopping engine stops its containers first; those stops are the engine's,
                # not an operator's, and must not keep the agent from healing them later.
                recent = self._steady() - ENGINE_SHUTDOWN_WINDOW_S
                for cid, at in list(self._manual_stop.items()):
                    if at >= recent:
                        del self._manual_stop[cid]
                self._kill_pending.clear()
            self._synced = synced
            changed, self._reported = self._reported != synced, synced
            self._changed.notify_all()
        if changed and self._on_sync:
            try:
                self._on_sync(synced, error)
            except Exception as e:  # a listener's bug must not stop the view
                log_event(
                    log,
                    logging.ERROR,
                    "view.listener_failed",
                    "sync listener raised",
                    error=f"{type(e).__name__}: {e}",
                )

    def resync(self) -> int:
        """List every container; inspect the new and the changed; drop the gone.

        Returns how many containers were inspected (the cost of correcting drift).
        """
        with self._changed:
            began = self._seq
            known = dict(self._containers)
        rows = self._source.list_rows()
        fresh: dict[str, Any] = {}
        inspected = 0
        for row in rows:
            cid = row["Id"]
            have = known.get(cid)
            if have is not None and fingerprint_state(have.state) == fingerprint_row(row):
                fresh[cid] = have
                continue
            try:
                fresh[cid] = self._source.inspect_container(cid)
                inspected += 1
            except ContainerGone:
                continue
            except EngineError as e:
                fresh[cid] = self._unknown(row, have, e)
                continue
            self._unreadable.discard(cid)
        corrected: list[ViewEvent] = []
        with self._changed:
            for cid, container in fresh.items():
                # An event applied after this listing began (numbered above `began`) is
                # newer than what we saw; one applied before it is not.
                if self._last_event_seq.get(cid, -1) <= began or cid not in self._containers:
                    if container is not known.get(cid):
                        corrected.append(ViewEvent(cid, "resync", False, container))
                    self._containers[cid] = container
                    if (container.state or {}).get("Running"):
                        # Started again while we were not listening: no longer stopped by hand.
                        self._manual_stop.pop(cid, None)
                        self._kill_pending.discard(cid)
            for cid in list(self._containers):
                if cid not in fresh and self._last_event_seq.get(cid, -1) <= began:
                    self._forget(cid)
                    corrected.append(ViewEvent(cid, "resync", False, None))
            for cid in list(self._manual_stop):
                if cid not in fresh and self._last_event_seq.get(cid, -1) <= began:
                    del self._manual_stop[cid]  # a seeded stop of a container now gone
            self._changed.notify_all()
        if known:  # the first listing needs no news: every service is checked after it
            for change in corrected:
                self._notify(change)
        return inspected

    def _unknown(self, row: Mapping[str, Any], have: Any | None, error: EngineError) -> Any:
        """One container cannot be inspected while the engine answers: it is shown with an
        unknown state (never healed as such), said once, and inspected again at the next
        listing; the rest of the host is seen as always. If the engine itself does not
        answer, the listing fails as before."""
        from .containers import ContainerInfo

        if isinstance(error, EngineUnreachable):
            self._source.list_rows()  # raises if it is the engine, not the container
        cid = row["Id"]
        names = row.get("Names") or []
        name = names[0].lstrip("/") if names else cid[:12]
        if cid not in self._unreadable:
            self._unreadable.add(cid)
            log_event(
                log,
                logging.WARNING,
                "view.inspect_failed",
                "a container cannot be inspected: shown unknown, retried at each listing",
                container=name,
                container_id=cid,
                error=str(error),
            )
        base = have or ContainerInfo(cid, name, dict(row.get("Labels") or {}))
        return replace(base, state=dict(UNKNOWN_STATE))

    def refresh(self, container_id: str) -> None:
        """Inspect one container again, for what no event carries (a health log that
        changes while the health status does not), and tell. Never raises."""
        with self._changed:
            began = self._seq
            if container_id not in self._containers:
                return
        try:
            container = self._source.inspect_container(container_id)
        except (ContainerGone, EngineError):
            return  # the next event or listing says what happened
        with self._changed:
            # An event applied meanwhile is newer than what was just read.
            if container_id not in self._containers or (
                self._last_event_seq.get(container_id, -1) > began
            ):
                return
            self._containers[container_id] = container
            self._changed.notify_all()
        self._notify(ViewEvent(container_id, "refresh", False, container))

    def _forget(self, cid: str) -> None:
        self._containers.pop(cid, None)
        for bag in (self._oom, self._kill_pending):
            bag.discard(cid)
        self._manual_stop.pop(cid, None)
        for kind in (STOPPING, STARTING):
            self._own_ids.pop((cid, kind), None)
        self._last_event_seq.pop(cid, None)

    def apply(self, event: Mapping[str, Any]) -> ViewEvent | None:
        """Fold one Docker event into the view and tell the agent. Never raises: an event
        it cannot read (not an object, a field of the wrong type) is skipped and said once
        per kind of fault, as a dropped event is; the next re-listing corrects the view.
        The stream stays open, and no service reads `engine_unreachable` for it."""
        try:
            return self._apply(event)
        except Exception as e:
            what = "an event the agent cannot read was skipped"
            self._malformed.say(log, "view.event_malformed", what, e, raw=repr(event)[:200])
            return None

    def _apply(self, event: Mapping[str, Any]) -> ViewEvent | None:
        cid = event.get("id") or (event.get("Actor") or {}).get("ID")
        action = event.get("Action") or event.get("status") or ""
        if not cid or event.get("Type", "container") != "container":
            return None
        verb = action.partition(":")[0]
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        at_ns = event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000
        container = None
        inspected = False
        cached = self.get(cid)
        # Inspect what the cache cannot tell: a new container, or an event that contradicts
        # the cache (a health report for a container we think is not running: the engine
        # restores containers at start-up without a start event).
        stale = (
            verb == "health_status"
            and cached is not None
            and not ((cached.state or {}).get("Running"))
        )
        # Turning unhealthy: the health log says whether the checks failed or timed out
        # (the host-pressure guard defers only the latter); the event does not.
        unhealthy = verb == "health_status" and action.endswith("unhealthy")
        # A start may bring new addresses (probes use them); after a die, Docker's restart
        # policy decides between exited and restarting, which the event does not say.
        restarts = cached is not None and cached.restart_policy in RESTART_POLICIES
        if verb in ("create", "start") or (verb == "die" and restarts) or stale or unhealthy:
            try:
                container = self._source.inspect_container(cid)
                inspected = True
            except (ContainerGone, EngineError):
                container = None
        now = self._clock()
        # When the engine says it happened (not when it arrived here): what is the agent's
        # own, and since when a stop by hand holds, are judged by it.
        happened = at_ns / 1e9 if at_ns else now
        # The same instant on the clock that never steps (the agent's own windows and the
        # stops by hand are kept on it): a step of the wall clock between the event and its
        # arrival, or a view that lags, does not move it.
        steady_at = self._steady_of(happened)
        at_iso = datetime.fromtimestamp(happened, UTC).isoformat().replace("+00:00", "Z")
        with self._changed:
            self._seq += 1
            self._last_event_seq[cid] = self._seq
            if container is None:
                container = self._containers.get(cid)
            by_agent = self._is_own(cid, container, steady_at, verb)
            if verb == "destroy":
                self._forget(cid)
                container = None
            elif container is not None:
                if verb == "oom":
                    self._oom.add(cid)
                elif verb == "kill" and not by_agent and attrs.get("signal") in STOP_SIGNALS:
                    self._kill_pending.add(cid)
                elif verb == "die":
                    if cid in self._kill_pending:
                        self._manual_stop[cid] = steady_at
                    self._kill_pending.discard(cid)
                elif verb == "stop" and not by_agent:
                    self._manual_stop[cid] = steady_at
                elif verb in ("start", "restart"):
                    self._manual_stop.pop(cid, None)
                    self._kill_pending.discard(cid)
                    self._oom.discard(cid)
                if verb == "rename" and attrs.get("name"):
                    container = replace(container, name=attrs["name"].lstrip("/"))
                state = container.state or {}
                if not inspected:  # what was just inspected is newer than the event
                    state = apply_event(state, action, attrs, at_iso, oom=cid in self._oom)
                container = replace(container, state=state)
                self._containers[cid] = container
                if verb == "die":
                    self._oom.discard(cid)
            self._changed.notify_all()
        change = ViewEvent(cid, action, by_agent, container)
        self._notify(change)
        return change

    def _notify(self, change: ViewEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(change)
        except Exception as e:  # a listener's bug must not stop the stream
            log_event(
                log,
                logging.ERROR,
                "view.listener_failed",
                "event listener raised",
                error=f"{type(e).__name__}: {e}",
                action=change.action,
            )


class _Own:
    """When the agent's own blocks of one kind on one key ran: an event is the agent's if
    the engine stamped it while one ran, or within the grace after one ended, and not
    before it began (an operator's stop an instant before the agent's is theirs, however
    late its event arrives). Windows older than a minute are forgotten."""

    KEEP_S = 60.0
    SLACK_S = 0.001  # the engine's stamps, read to the nanosecond, against a float clock

    def __init__(self) -> None:
        self.holders = 0
        self.since = 0.0  # when the blocks under way began
        self.windows: list[list[float]] = []  # [began, own until] of blocks that ended

    def enter(self, now: float) -> None:
        if self.holders == 0:
            self.since = now
        self.holders += 1

    def leave(self, now: float, grace_s: float) -> None:
        self.holders = max(0, self.holders - 1)
        if self.holders == 0:
            self.windows = [w for w in self.windows if w[1] >= now - self.KEEP_S]
            self.windows.append([self.since, now + grace_s])

    def end_by(self, at: float) -> None:
        """Nothing stamped from `at` on is of the blocks that ended (a start began then)."""
        for window in self.windows:
            window[1] = min(window[1], at)

    def covers(self, at: float) -> bool:
        if self.holders > 0 and at >= self.since - self.SLACK_S:
            return True
        return any(began - self.SLACK_S <= at <= until for began, until in self.windows)


def _service_key(project: str, service: str) -> str:
    """A compose service's mark among the projects' ("/" is in no project's name)."""
    return f"{project}/{service}"
