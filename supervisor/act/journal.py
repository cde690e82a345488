"""The journal of intents: before the agent stops anything, it records that it must start it
again; the record goes when the start is seen.

A heal's own container, a dependent, a compose service, or (scope project) each other
container of its project: each stop is preceded by an intent that is written through to the
state file before the stop is sent, so an agent killed between the stop and the start
finishes the start when it runs again. A cycle owns its intent while it runs; an intent
nobody owns (its start failed, or the agent that made it died) is due, and the keeper starts
it again; a start that failed is tried again after a backoff (`defer`). An intent is dropped
when the container runs again, is gone, or was taken over by an operator (stopped by hand
after ours). Holds no lock across I/O: the write-through and the starts are the callers'.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..docker.containers import parse_finished_at, parse_started_at
from ..errors import StateUnwritable
from ..runtime.clock import Clock, Follower

CONTAINER = "container"
DEPENDENT = "dependent"
COMPOSE = "compose"
PROJECT = "project"  # a neighbour in the project a `scope: project` heal stops


@dataclass(frozen=True)
class Intent:
    key: str  # the container id, or "compose:SERVICE"
    service: str
    kind: str
    container_id: str | None
    at: float  # when it was written, just before the stop was sent
    # When the agent first stopped it without starting it since: the stop of an earlier
    # intent of the same key that a later one replaced (a failed start, then a new attempt).
    since: float | None = None
    # When the stop returned (or failed): a container that went down later was not taken
    # down by it. None until then, or when the agent died before it could say.
    until: float | None = None
    # The earlier stops still owed (an attempt whose start failed, then a new attempt):
    # each [sent, returned]. A container that went down between them (after a stop that
    # failed, before the next one) was not taken down by the agent.
    earlier: tuple[tuple[float, float | None], ...] = ()
    # The container as the (first owed) stop found it, by the engine's stamps (None: not
    # known): when its run had started, and when it had last finished. The wall clock may
    # step between these and the stop; a stamp seen again is that run, or a finish from
    # before the stop, whatever the clock says.
    run: float | None = None
    finished: float | None = None
    # Its run read from the engine just before its stop (not from the view, which may lag):
    # the run that stop ended, and that every earlier owed stop ended too (none ran since).
    fresh: bool = False

    def later_run(self, started_at: float | None, slack_s: float = 0.0) -> bool:
        """Whether a run that started at `started_at` began after the stop was sent: one
        stamped after it, and not the run the stop ended (which a step back of the wall
        clock can make read as later)."""
        if started_at is None or started_at == self.run:
            return False
        return started_at > self.at + slack_s

    def found(self, state: Mapping[str, Any] | None) -> Intent:
        """The same intent, with the stamps of the container as `state` says it is."""
        run, finished = _stamps(state)
        return replace(self, run=run, finished=finished, fresh=True)

    def stop_windows(self) -> tuple[tuple[float, float | None], ...]:
        """When each stop it stands for ran: sent, and returned (None: not known)."""
        return (*self.earlier, (self.at, self.until))

    @property
    def owed_since(self) -> float:
        """Down from before this, it was not the agent that took it down."""
        return self.at if self.since is None else min(self.since, self.at)

    @staticmethod
    def for_container(
        service: str, container_id: str, at: float, kind: str = CONTAINER, found: Any = None
    ) -> Intent:
        """`found`: the container's state as the stop finds it (its stamps are kept)."""
        run, finished = _stamps(found)
        return Intent(container_id, service, kind, container_id, at, run=run, finished=finished)

    @staticmethod
    def for_compose(service: str, container_id: str | None, at: float, found: Any = None) -> Intent:
        run, finished = _stamps(found)
        key = compose_key(service)
        return Intent(key, service, COMPOSE, container_id, at, run=run, finished=finished)


def _stamps(state: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """When a container's run started, and when it last finished, by the engine."""
    if not state:
        return None, None
    return parse_started_at(state), parse_finished_at(state)


def compose_key(service: str) -> str:
    """The key of a compose-scope service's intent."""
    return f"{COMPOSE}:{service}"


class Journal:
    """The intents in memory; `write_through` and `request_save` persist the state file."""

    def __init__(
        self,
        write_through: Callable[[], bool | None] = lambda: None,
        request_save: Callable[[], None] = lambda: None,
        clock: Clock | None = None,
    ) -> None:
        self._follower = Follower(clock) if clock is not None else None
        self._write_through = write_through
        self._request_save = request_save
        self._lock = threading.Lock()
        self._intents: dict[str, Intent] = {}
        self._owned: set[str] = set()
        # Failed starts of due intents: key -> (failures so far, not to be tried before).
        # A retry's time ends a wait: it moves with the clock's steps (an intent's own
        # instants are compared with the engine's stamps, and do not).
        self._deferred: dict[str, tuple[int, float]] = {}

    def _follow_clock(self) -> None:
        """Under the lock: move each retry's time by the steps not followed yet."""
        by = self._follower.moved() if self._follower is not None else 0.0
        if by:
            self._deferred = {k: (n, until + by) for k, (n, until) in self._deferred.items()}

    def record(self, *intents: Intent, owned: bool = True) -> list[Intent]:
        """Record before a stop; returns (what was recorded) once the records are on disk.
        Raises StateUnwritable, with the journal as it was, when they did not get there:
        a stop whose intent is not on disk must not be sent."""
        recorded = []
        with self._lock:
            before = {
                i.key: (self._intents.get(i.key), i.key in self._owned, self._deferred.get(i.key))
                for i in intents
            }
            for intent in intents:
                earlier = self._intents.get(intent.key)
                if earlier is not None:  # still owed: the start is owed since the first stop,
                    intent = replace(  # and the container is as that stop found it
                        intent,
                        since=earlier.owed_since,
                        earlier=earlier.stop_windows(),
                        run=intent.run if intent.fresh else earlier.run,
                        finished=earlier.finished,
                    )
                self._intents[intent.key] = intent
                self._deferred.pop(intent.key, None)
                if owned:
                    self._owned.add(intent.key)
                recorded.append(intent)
        if self._write_through() is False:
            with self._lock:
                for key, (intent, owned_before, deferred) in before.items():
                    _put(self._intents, key, intent)
                    _put(self._deferred, key, deferred)
                    if not owned_before:
                        self._owned.discard(key)
            raise StateUnwritable("the state file could not be written: no stop without its intent")
        return recorded

    def stopped(self, keys: Iterable[str], at: float) -> None:
        """The stop these intents stand for returned (or failed) at `at`."""
        with self._lock:
            for key in keys:
                if key in self._intents:
                    self._intents[key] = replace(self._intents[key], until=at)
        self._request_save()

    def release(self, key: str) -> None:
        """The cycle that owned it is done with it; if it is still here it becomes due."""
        with self._lock:
            self._owned.discard(key)

    def defer(self, key: str, failures: int, until: float) -> None:
        """Its start failed `failures` times in a row: not due again before `until`."""
        with self._lock:
            self._follow_clock()
            if key in self._intents:
                self._deferred[key] = (failures, until)

    def failures(self, key: str) -> int:
        """How many starts of this intent failed in a row (since it was recorded)."""
        with self._lock:
            return self._deferred.get(key, (0, 0.0))[0]

    def clear(self, key: str) -> bool:
        with self._lock:
            found = self._intents.pop(key, None) is not None
            self._owned.discard(key)
            self._deferred.pop(key, None)
        if found:
            self._request_save()
        return found

    def seen_running(self, container_id: str, started_at: float | None) -> bool:
        """A container runs from a start at `started_at`: the intents it fulfils (those made
        before that start; a late or repeated event of an older start fulfils none) go."""
        with self._lock:
            keys = [
                k
                for k, i in self._intents.items()
                if i.container_id == container_id and i.later_run(started_at)
            ]
        return any([self.clear(k) for k in keys])

    def get(self, key: str) -> Intent | None:
        with self._lock:
            return self._intents.get(key)

    def intents(self) -> list[Intent]:
        with self._lock:
            return list(self._intents.values())

    def due(self, now: float | None = None) -> list[Intent]:
        """The intents no running cycle owns (and, at `now`, not deferred past it)."""
        with self._lock:
            self._follow_clock()
            return [
                i
                for k, i in self._intents.items()
                if k not in self._owned
                and (now is None or self._deferred.get(k, (0, 0.0))[1] <= now)
            ]

    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(i) for i in self.intents()]

    def restore(self, saved: Iterable[Mapping[str, Any]]) -> None:
        """Take back what an earlier agent recorded (all of it due); skip what does not fit."""
        for row in saved:
            try:
                intent = Intent(
                    str(row["key"]),
                    str(row["service"]),
                    str(row["kind"]),
                    row.get("container_id"),
                    float(row["at"]),
                    None if row.get("since") is None else float(row["since"]),
                    None if row.get("until") is None else float(row["until"]),
                    _windows(row.get("earlier"), row.get("since"), row.get("at")),
                    None if row.get("run") is None else float(row["run"]),
                    None if row.get("finished") is None else float(row["finished"]),
                    bool(row.get("fresh", False)),
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            with self._lock:
                self._intents[intent.key] = intent


def _windows(saved: Any, since: Any, at: Any) -> tuple[tuple[float, float | None], ...]:
    """Earlier stops as saved ([sent, returned] pairs). A file of an older agent has none,
    only when the first stop still owed was sent (`since`): from then on, its window."""
    if saved is None and since is not None and float(since) < float(at):
        return ((float(since), None),)
    return tuple(
        (float(sent), None if returned is None else float(returned))
        for sent, returned in (saved or ())
    )


def _put(into: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` to `value`, or remove it for None."""
    if value is None:
        into.pop(key, None)
    else:
        into[key] = value
