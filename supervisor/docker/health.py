"""Whether the engine answers, and whether its verdicts can be trusted yet.

Fed by the view (the event stream broke or came back) and the heartbeat (a frozen engine
keeps its stream open); read by every worker as facts for the gate. One line per change.
After the engine comes back, its health verdicts are trusted only after ENGINE_SETTLE_S (a
health check that timed out during a freeze reports `unhealthy` the moment it thaws).
"""

from __future__ import annotations

import logging
import threading

from ..logs import log_event
from ..runtime.clock import Clock, Follower

log = logging.getLogger("supervisor.agent")

ENGINE_SETTLE_S = 10.0


class EngineHealth:
    def __init__(self, clock: Clock, settle_s: float = ENGINE_SETTLE_S) -> None:
        self._clock = clock
        self._follower = Follower(clock)
        self.settle_s = settle_s
        self._lock = threading.Lock()
        self._ok: bool | None = None
        self._back_at: float | None = None

    @property
    def ok(self) -> bool:
        with self._lock:
            return self._ok is not False

    def settling(self, now: float) -> bool:
        with self._lock:
            by = self._follower.moved()  # the settle keeps what was left of it
            if self._back_at is not None:
                self._back_at += by
            return self._back_at is not None and now - self._back_at < self.settle_s

    def set(self, reachable: bool, error: str | None = None) -> bool:
        """Record what was seen; True when it changed (the caller tells every worker)."""
        with self._lock:
            was, self._ok = self._ok, reachable
            if was is False and reachable:
                self._back_at = self._clock()
                self._follower.moved()  # it begins now, on the clock as it reads
        if was == reachable:
            return False
        if not reachable:
            log_event(
                log,
                logging.ERROR,
                "engine.unreachable",
                "Docker engine unreachable; no healing until it answers, retrying",
                error=error,
            )
        elif was is False:
            log_event(
                log,
                logging.INFO,
                "engine.reachable",
                "Docker engine answers again",
                settle_s=self.settle_s,
            )
        return was is not None
