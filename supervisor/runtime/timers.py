"""The scheduling shell: timers on APScheduler, the only module that imports it.

The core asks for `call_later` (a backoff, a pause, a ready timeout) and `every` (a service's
periodic check, the heartbeat); both hand back a handle to cancel. What runs on a timer must
be quick (post a message); I/O jobs go on the `io` executor, never on the timers' threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor as JobPool
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from ..logs import log_event
from .clock import Clock, Follower

log = logging.getLogger("supervisor.agent")


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


# How often the clock is read when nothing else reads it, so that a step is noticed.
CLOCK_WATCH_S = 1.0


class SchedulerTimers:
    """Timers on a BackgroundScheduler: `default` for quick jobs, `io` for jobs that do I/O.

    APScheduler 3 plans on the wall clock: stepped back (NTP after a suspend, `date -s`),
    every job would wait out the step, the watchdog ping included (systemd would kill the
    agent); stepped forward, every job would fire at once. A thread that sleeps on the
    monotonic clock reads the agent's clock every second, and every step it or anyone
    noticed (`clock.stepped`) moves every job by it, so each waits what was left of its
    wait."""

    def __init__(
        self,
        clock: Clock | None = None,
        io_threads: int = 4,
        watch_s: float | None = CLOCK_WATCH_S,  # None: no watch (a test calls check_clock)
    ) -> None:
        self._ids = count()
        self._scheduler = BackgroundScheduler(
            executors={"default": JobPool(4), "io": JobPool(io_threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._clock = clock or Clock()
        self._followed = Follower(self._clock)
        self._stop = threading.Event()
        self._watch_s = watch_s
        self._watch: threading.Thread | None = None

    def now(self) -> float:
        return self._clock.now()

    def start(self) -> None:
        self._scheduler.start()
        if self._watch_s is not None:
            self._watch = threading.Thread(target=self._watch_clock, name="clock", daemon=True)
            self._watch.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(5)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _watch_clock(self) -> None:
        while not self._stop.wait(self._watch_s or CLOCK_WATCH_S):
            self.check_clock()

    def check_clock(self) -> float:
        """Move every job by the clock's steps since the last look; how far (0.0: none)."""
        self._clock.now()  # a step nobody else noticed yet is noticed here
        step = self._followed.moved()
        if not step:
            return 0.0
        moved = 0
        for job in self._scheduler.get_jobs():
            if job.next_run_time is not None:
                with contextlib.suppress(JobLookupError):
                    job.modify(next_run_time=job.next_run_time + timedelta(seconds=step))
                    moved += 1
        log_event(
            log,
            logging.DEBUG,
            "clock.timers_moved",
            "every timer moved by the clock's step",
            step_s=round(step, 3),
            timers=moved,
        )
        return step

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
