"""Ticks: one timer per interval, on simulated time (exact times, nothing real)."""

from __future__ import annotations

from supervisor.runtime.timers import Ticks
from tests.simulation.sim import START_AT, SimTimers


def run_until(timers: SimTimers, t: float) -> None:
    while (due := timers.next_due()) is not None and due <= START_AT + t:
        fn, args, _ = timers.pop()
        fn(*args)
    timers.t = START_AT + t


def ticked_by(ticks: list) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {}
    for at, service in ticks:
        seen.setdefault(service, []).append(at - START_AT)
    return seen


def test_services_that_share_an_interval_share_one_timer():
    timers, ticks = SimTimers(), []
    every = Ticks(timers, lambda service: ticks.append((timers.now(), service)))
    every.add("web", 10.0)
    every.add("db", 10.0)
    every.add("cache", 5.0)
    assert every.intervals() == {10.0: 2, 5.0: 1}
    assert len(timers._heap) == 2  # one timer each interval, not one each service
    run_until(timers, 20)
    assert ticked_by(ticks) == {
        "web": [10.0, 20.0],
        "db": [10.0, 20.0],
        "cache": [5.0, 10.0, 15.0, 20.0],
    }


def test_a_service_moves_with_its_interval_and_an_empty_interval_stops_its_timer():
    timers, ticks = SimTimers(), []
    every = Ticks(timers, lambda service: ticks.append((timers.now(), service)))
    every.add("web", 10.0)
    every.add("db", 10.0)
    run_until(timers, 10)
    every.add("db", 4.0)  # a reload changed its interval: it leaves the 10 s timer
    every.remove("web")  # the 10 s timer has nobody left: it ends
    every.add("cache", 4.0)  # joins db's timer, whose first tick is 4 s from now
    assert every.intervals() == {4.0: 2}
    ticks.clear()
    run_until(timers, 30)
    assert ticked_by(ticks) == {
        "db": [14.0, 18.0, 22.0, 26.0, 30.0],
        "cache": [14.0, 18.0, 22.0, 26.0, 30.0],
    }
    assert timers.next_due() == START_AT + 34.0  # only the 4 s timer is left


def test_a_service_joining_an_interval_ticks_at_its_next_tick():
    timers, ticks = SimTimers(), []
    every = Ticks(timers, lambda service: ticks.append((timers.now(), service)))
    every.add("web", 10.0)
    run_until(timers, 7)
    every.add("db", 10.0)  # sooner than a whole interval: one look early, none late
    run_until(timers, 20)
    assert ticked_by(ticks) == {"web": [10.0, 20.0], "db": [10.0, 20.0]}
    every.remove("db")
    every.remove("db")  # twice: nothing to do
    assert every.intervals() == {10.0: 1}


def test_a_clock_step_moves_every_timer_so_each_keeps_what_was_left_of_its_wait():
    """A real scheduler. The wall clock steps back an hour: to the scheduler, every job's
    next run is an hour away (the watchdog ping too). The step is noticed (the wall clock
    against the monotonic one) and every job moved back by it: a 0.2 s periodic job fires
    again within its interval and keeps firing; a slew of 0.1 s moves nothing."""
    import threading
    import time
    from datetime import timedelta

    from supervisor.runtime.clock import Clock
    from supervisor.runtime.timers import SchedulerTimers

    step = {"s": 0.0}
    timers = SchedulerTimers(Clock(wall=lambda: time.time() + step["s"]), watch_s=None)
    fired, again = [], threading.Event()

    def tick() -> None:
        fired.append(time.monotonic())
        if len(fired) >= 3:
            again.set()

    timers.start()
    try:
        timers.every(0.2, tick, first_s=3600.0)  # as if the clock had just stepped back
        later = timers.call_later(7200.0, lambda: None)  # an hour left after the step
        once = timers._scheduler.get_job(later._id)
        planned = once.next_run_time
        step["s"] = 0.1
        assert timers.check_clock() == 0.0  # a slew
        assert timers._scheduler.get_job(once.id).next_run_time == planned
        step["s"] = -3600.0
        stepped_at = time.monotonic()
        assert round(timers.check_clock(), 3) == -3600.1
        assert again.wait(5), "the periodic job stalled"
        assert fired[0] - stepped_at < 1.0
        moved = timers._scheduler.get_job(once.id).next_run_time
        assert abs((planned - moved) - timedelta(seconds=3600.1)) < timedelta(seconds=0.05)
        later.cancel()
    finally:
        timers.shutdown()
