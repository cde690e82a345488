"""The scheduling shell: timers on APScheduler, the only module that imports it.

The core asks for `call_later` (a backoff, a pause, a ready timeout) and `every` (a service's
periodic check, the heartbeat); both hand back a handle to cancel. What runs on a timer must
be quick (post a message); I/O jobs go on the `io` executor, never on the timers' threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor as JobPool
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler


class Handle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    def now(self) -> float: ...
    def call_later(
        self, delay_s: float, fn: Callable[..., Any], *args: Any, io: bool = False
    ) -> Handle: ...
    def every(
        self,
        interval_s: float,
        fn: Callable[..., Any],
        *args: Any,
        first_s: float = 0.0,
        io: bool = False,
    ) -> Handle: ...


class _Job:
    def __init__(self, scheduler: BackgroundScheduler, job_id: str) -> None:
        self._scheduler = scheduler
        self._id = job_id

    def cancel(self) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(self._id)


class SchedulerTimers:
    """Timers on a BackgroundScheduler: `default` for quick jobs, `io` for jobs that do I/O."""

    def __init__(self, io_threads: int = 4) -> None:
        self._ids = count()
        self._scheduler = BackgroundScheduler(
            executors={"default": JobPool(4), "io": JobPool(io_threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def now(self) -> float:
        return time.time()

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def call_later(
        self, delay_s: float, fn: Callable[..., Any], *args: Any, io: bool = False
    ) -> Handle:
        job_id = f"once-{next(self._ids)}"
        run_at = datetime.now(UTC) + timedelta(seconds=max(0.0, delay_s))
        executor = "io" if io else "default"
        self._scheduler.add_job(
            fn, "date", args=args, id=job_id, run_date=run_at, executor=executor
        )
        return _Job(self._scheduler, job_id)

    def every(
        self,
        interval_s: float,
        fn: Callable[..., Any],
        *args: Any,
        first_s: float = 0.0,
        io: bool = False,
    ) -> Handle:
        job_id = f"every-{next(self._ids)}"
        self._scheduler.add_job(
            fn,
            "interval",
            args=args,
            id=job_id,
            seconds=interval_s,
            next_run_time=datetime.now(UTC) + timedelta(seconds=first_s),
            executor="io" if io else "default",
        )
        return _Job(self._scheduler, job_id)


class Ticks:
    """Every service's periodic look, one timer per interval rather than one per service.

    A timer's run wakes the scheduler's thread and a pool thread; at 500 services those
    wake-ups were most of an idle agent's CPU. Services that share an interval now tick
    together (as those loaded at once always did); one added later joins its interval's
    next tick, which may come sooner than a whole interval (a look too many is harmless).
    """

    def __init__(self, timers: Timers, tick: Callable[[str], None]) -> None:
        self._timers = timers
        self._tick = tick
        self._lock = threading.Lock()
        self._groups: dict[float, tuple[Handle, dict[str, None]]] = {}
        self._interval: dict[str, float] = {}

    def add(self, service: str, interval_s: float) -> None:
        """Tick `service` every `interval_s` (moving it if it ticked at another interval)."""
        with self._lock:
            self._leave(service)
            group = self._groups.get(interval_s)
            if group is None:
                handle = self._timers.every(interval_s, self._run, interval_s, first_s=interval_s)
                group = self._groups[interval_s] = (handle, {})
            group[1][service] = None
            self._interval[service] = interval_s

    def remove(self, service: str) -> None:
        with self._lock:
            self._leave(service)

    def intervals(self) -> dict[float, int]:
        """How many services tick at each interval (one timer each)."""
        with self._lock:
            return {interval: len(members) for interval, (_, members) in self._groups.items()}

    def _leave(self, service: str) -> None:
        interval = self._interval.pop(service, None)
        if interval is None:
            return
        handle, members = self._groups[interval]
        del members[service]
        if not members:
            handle.cancel()
            del self._groups[interval]

    def _run(self, interval_s: float) -> None:
        with self._lock:
            group = self._groups.get(interval_s)
            services = list(group[1]) if group else []
        for service in services:
            self._tick(service)
