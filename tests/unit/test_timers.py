"""Ticks: one timer per interval, on simulated time (exact times, nothing real)."""

from __future__ import annotations

from supervisor.timers import Ticks
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
