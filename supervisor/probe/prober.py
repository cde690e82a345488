"""The prober: owns every service's agent-side probe, its schedule and its results.

Rebuilt on every reload (a probe added, changed or removed takes effect then). Each probe
runs on its period against the container its worker last saw running, on the probes pool,
never on a worker's thread; a result that changes the verdict is told to the worker, and the
verdict cache is what the checks and the wait for health both read. Never decides to heal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config.model import Policy, ProbePolicy
from ..docker.containers import ContainerInfo
from ..logs import log_event
from ..runtime.timers import Handle, Timers
from .checks import FAILED, OK, UNKNOWN, ProbeResult, ProbeTracker

__all__ = ["FAILED", "OK", "UNKNOWN", "Prober"]

log = logging.getLogger("supervisor.agent")


@dataclass
class _Probe:
    tracker: ProbeTracker
    handle: Handle | None = None
    target: ContainerInfo | None = None
    started_at: float | None = None
    busy: bool = False
    runs: int = field(default=0)


class Prober:
    def __init__(
        self,
        timers: Timers,
        submit: Callable[[Callable[[], None]], Any],
        run: Callable[[ProbePolicy, ContainerInfo], ProbeResult],
        on_change: Callable[[str], None],
        on_result: Callable[[str, bool], None] = lambda service, ok: None,
        clock: Callable[[], float] | None = None,  # the wall clock (the timers' by default)
    ) -> None:
        self._timers = timers
        self._clock = clock or timers.now
        self._submit = submit
        self._run = run
        self._on_change = on_change
        self._on_result = on_result
        self._lock = threading.Lock()
        self._probes: dict[str, _Probe] = {}

    def sync(self, policies: Iterable[Policy]) -> None:
        """Make the probes match these policies: add, replace the changed, drop the rest."""
        wanted = {p.service: p.check.probe for p in policies if p.check.probe is not None}
        with self._lock:
            stale = [s for s, probe in self._probes.items() if wanted.get(s) != probe.tracker.probe]
            dropped = [self._probes.pop(s) for s in stale]
            added = {s: w for s, w in wanted.items() if s not in self._probes}
            for service, spec in added.items():
                self._probes[service] = _Probe(ProbeTracker(spec))
        for probe in dropped:
            if probe.handle is not None:
                probe.handle.cancel()
        for service, spec in added.items():
            handle = self._timers.every(spec.period_s, self._tick, service)
            with self._lock:
                if service in self._probes:
                    self._probes[service].handle = handle

    def aim(self, service: str, container: ContainerInfo | None, started_at: float | None):
        """The container to probe (the service's, while it runs), or None."""
        with self._lock:
            probe = self._probes.get(service)
            if probe is not None:
                probe.target, probe.started_at = container, started_at

    def has_probe(self, service: str) -> bool:
        with self._lock:
            return service in self._probes

    def verdict(self, service: str, started_at: float | None) -> tuple[str, str | None]:
        """The probe's state for this start of the container, and its last error."""
        with self._lock:
            probe = self._probes.get(service)
            if probe is None:
                return OK, None
            tracker = probe.tracker
            if tracker.started_at != started_at:
                return UNKNOWN, None
            return tracker.state, tracker.last_error

    def timed_out(self, service: str, started_at: float | None) -> bool:
        """Whether the probe failed this start of the container by timing out alone."""
        with self._lock:
            probe = self._probes.get(service)
            tracker = probe.tracker if probe is not None else None
            return tracker is not None and tracker.started_at == started_at and tracker.timed_out

    def runs(self, service: str) -> int:
        with self._lock:
            probe = self._probes.get(service)
            return probe.runs if probe else 0

    def close(self) -> None:
        with self._lock:
            probes, self._probes = list(self._probes.values()), {}
        for probe in probes:
            if probe.handle is not None:
                probe.handle.cancel()

    def _tick(self, service: str) -> None:
        with self._lock:
            probe = self._probes.get(service)
            if probe is None or probe.busy or probe.target is None:
                return
            if not probe.tracker.due(probe.started_at, self._clock()):
                return
            probe.busy = True
            spec, target, started_at = probe.tracker.probe, probe.target, probe.started_at
        self._submit(lambda: self._probe(service, probe, spec, target, started_at))

    def _probe(self, service, probe: _Probe, spec, target, started_at) -> None:
        try:
            result = self._run(spec, target)
        except Exception as e:  # a probe that raises is a failed try, never a silent one
            result = ProbeResult(False, f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                probe.busy = False  # whatever happened, the next tick probes again
        with self._lock:
            probe.runs += 1
            if self._probes.get(service) is not probe or probe.tracker.started_at != started_at:
                return  # replaced by a reload, or the container started anew meanwhile
            changed = probe.tracker.record(result)
            state, failures = probe.tracker.state, probe.tracker.failures
        self._on_result(service, result.ok)
        if not changed:
            return
        fields = dict(service=service, container=target.name, kind=spec.kind)
        if state == FAILED:
            log_event(
                log,
                logging.WARNING,
                "probe.failed",
                "probe failed",
                **fields,
                failures=failures,
                error=result.error,
            )
        else:
            log_event(log, logging.INFO, "probe.ok", "probe succeeds", **fields)
        self._on_change(service)
