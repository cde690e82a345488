"""Host pressure: is the host too busy for a timed-out health check to mean a broken service?

A health check that times out on an overloaded host says more about the host than about
the container; restarting it adds work to a host that has too much. The guard reads the
host's pressure (Linux PSI, /proc/pressure/*, where present; load per core and available
memory through psutil otherwise) and notices storms (an unusual share of the supervised
services turning bad by timeout at once). While either lasts, heals of services whose
checks timed out are deferred; services whose checks really failed are healed as always.
When it ends, a deferred service that is still bad after its next health check is healed.

The guard is pure but for `read_host` (the only I/O, done by the agent's timer thread):
samples and reports go in, `pressed` and the heal ceiling come out, with hysteresis.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..runtime.clock import Follower

PSI_DIR = Path("/proc/pressure")


@dataclass(frozen=True)
class Thresholds:
    """When the host counts as under pressure (enter) and as calm again (leave below).

    PSI "some avg10" is the share of the last 10 s in which at least one task waited for
    the resource. The defaults and the figures behind them are in the README (Host
    pressure)."""

    cpu_pct: float = 60.0
    memory_pct: float = 20.0
    io_pct: float = 60.0
    load_per_core: float = 4.0  # without PSI
    memory_available_pct: float = 5.0  # without PSI: below this is pressure
    calm_ratio: float = 0.75  # calm again below this share of every enter threshold
    storm_share: float = 0.25  # of the supervised services turning bad by timeout...
    storm_min: int = 3  # ...and at least this many...
    storm_window_s: float = 60.0  # ...within this long
    # A heal waits for the pressure at most this long after its checks began to time out:
    # longer than most load spikes last (a backup, a compaction, a deploy's image pulls),
    # short enough that a service really hung on a host that stays busy is healed well
    # before an operator paged at the usual 5-15 minutes would have acted.
    max_defer_s: float = 600.0


@dataclass(frozen=True)
class HostSample:
    cpu_pct: float | None = None  # PSI some avg10, None without PSI
    memory_pct: float | None = None
    io_pct: float | None = None
    load_per_core: float = 0.0
    memory_available_pct: float = 100.0

    def over(self, t: Thresholds, scale: float = 1.0) -> list[str]:
        """What is at or over `scale` times its threshold."""
        found = []
        for name, value, limit in (
            ("cpu", self.cpu_pct, t.cpu_pct),
            ("memory", self.memory_pct, t.memory_pct),
            ("io", self.io_pct, t.io_pct),
        ):
            if value is not None and value >= limit * scale:
                found.append(name)
        if self.cpu_pct is None and self.load_per_core >= t.load_per_core * scale:
            found.append("load")
        if self.memory_pct is None and self.memory_available_pct < t.memory_available_pct / (
            scale or 1.0
        ):
            found.append("memory_available")
        return found


def read_psi(resource: str) -> float | None:
    """PSI's "some avg10" for cpu, memory or io, or None where the kernel has no PSI."""
    try:
        text = (PSI_DIR / resource).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for part in line.split()[1:]:
                key, _, value = part.partition("=")
                if key == "avg10":
                    return float(value)
    return None


def read_host() -> HostSample:
    cores = os.cpu_count() or 1
    memory = psutil.virtual_memory()
    return HostSample(
        cpu_pct=read_psi("cpu"),
        memory_pct=read_psi("memory"),
        io_pct=read_psi("io"),
        load_per_core=os.getloadavg()[0] / cores,
        memory_available_pct=memory.available * 100.0 / memory.total,
    )


@dataclass
class Change:
    """The guard started or stopped deferring: what the agent logs and tells the workers."""

    pressed: bool
    why: list[str]
    sample: HostSample | None
    deferred: int = 0


@dataclass
class PressureGuard:
    thresholds: Thresholds = field(default_factory=Thresholds)
    ceiling: int = 4  # --heal-concurrency
    followed: Follower | None = None  # the clock's steps its instants moved by
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _host_why: list[str] = field(default_factory=list)
    _turned: dict[str, float] = field(default_factory=dict)  # service -> when it timed out
    _storm: bool = False
    _calm_since: float | None = None
    _deferred: set[str] = field(default_factory=set)  # waiting now
    _told: set[str] = field(default_factory=set)  # said this episode
    last: HostSample | None = None

    @property
    def pressed(self) -> bool:
        with self._lock:
            return self._pressed()

    def _pressed(self) -> bool:
        return bool(self._host_why) or self._storm

    def _follow_clock(self) -> None:
        """Under the lock: when services timed out and when calm came move by the clock's
        steps, so the storm's window and a calm's wait keep what was left of them."""
        by = self.followed.moved() if self.followed is not None else 0.0
        if by:
            self._turned = {service: at + by for service, at in self._turned.items()}
            if self._calm_since is not None:
                self._calm_since += by

    def calm_since(self) -> float | None:
        """When the last pressure ended (None while pressed, or if there never was any)."""
        with self._lock:
            self._follow_clock()
            return None if self._pressed() else self._calm_since

    def limit(self) -> int:
        """The heal concurrency now: the ceiling, halved (at least 1) under pressure."""
        return max(1, self.ceiling // 2) if self.pressed else self.ceiling

    def sample(self, sample: HostSample, now: float) -> Change | None:
        """A new reading of the host."""
        with self._lock:
            self._follow_clock()
            self.last = sample
            before = self._pressed()
            if self._host_why:
                still = sample.over(self.thresholds, self.thresholds.calm_ratio)
                self._host_why = still  # calm only once every figure is below calm
            else:
                self._host_why = sample.over(self.thresholds)
            self._end_storm_if_over(now)
            return self._change(before, now)

    def timed_out(self, service: str, now: float, services: int) -> Change | None:
        """A service turned bad because its checks timed out (said once per episode)."""
        with self._lock:
            self._follow_clock()
            before = self._pressed()
            self._turned[service] = now
            self._end_storm_if_over(now)
            recent = self._recent(now)
            t = self.thresholds
            if len(recent) >= max(t.storm_min, t.storm_share * services):
                self._storm = True
            return self._change(before, now)

    def defer(self, service: str) -> bool:
        """Record that `service`'s heal waits for the pressure; True the first time this
        episode (a service that flaps between timeouts and passes is said once)."""
        with self._lock:
            new = service not in self._told
            self._deferred.add(service)
            self._told.add(service)
            return new

    def undefer(self, service: str) -> None:
        """Its checks no longer time out: nothing of it waits for the pressure."""
        with self._lock:
            self._deferred.discard(service)

    def deferred(self) -> list[str]:
        with self._lock:
            return sorted(self._deferred)

    def forget(self, service: str) -> None:
        with self._lock:
            self._deferred.discard(service)
            self._told.discard(service)
            self._turned.pop(service, None)

    def _recent(self, now: float) -> list[str]:
        since = now - self.thresholds.storm_window_s
        return [s for s, at in self._turned.items() if at >= since]

    def _end_storm_if_over(self, now: float) -> None:
        if self._storm and not self._recent(now):
            self._storm = False

    def _change(self, before: bool, now: float) -> Change | None:
        after = self._pressed()
        if after == before:
            return None
        why = list(self._host_why) + (["storm"] if self._storm else [])
        deferred = len(self._told)
        if not after:
            self._calm_since = now
            self._deferred.clear()
            self._told.clear()
        return Change(after, why, self.last, deferred)


def health_timed_out(state: dict | None) -> bool:
    """Whether the container is unhealthy because its checks timed out, not failed: every
    check of its failing streak (Docker keeps the last five) exceeded its timeout."""
    health = (state or {}).get("Health") or {}
    streak = int(health.get("FailingStreak") or 0)
    log = [e for e in (health.get("Log") or []) if isinstance(e, dict)]
    if streak <= 0 or not log:
        return False
    failing = log[-min(streak, len(log)) :]
    return all(_is_timeout(entry) for entry in failing)


def _is_timeout(entry: dict) -> bool:
    # Docker: exit code -1 and "Health check exceeded timeout (1s)" when a check is cut.
    output = str(entry.get("Output") or "")
    return entry.get("ExitCode") == -1 and output.startswith("Health check exceeded timeout")
