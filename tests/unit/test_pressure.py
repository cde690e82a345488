"""The host-pressure guard: thresholds with hysteresis, storms, and timed-out checks."""

from __future__ import annotations

import pytest

from supervisor.core import pressure
from supervisor.core.gate import (
    WATCH_ONLY,
    WHY_HELD,
    WHY_HOST_PRESSURE,
    Facts,
    may_heal,
    next_action,
    present,
)
from supervisor.core.pressure import (
    HostSample,
    PressureGuard,
    Thresholds,
    health_timed_out,
    read_psi,
)
from supervisor.docker.states import Status

CALM = HostSample(cpu_pct=5.0, memory_pct=0.0, io_pct=1.0)


def test_the_host_is_pressed_at_a_threshold_and_calm_only_below_three_quarters_of_each():
    guard = PressureGuard(Thresholds(), ceiling=4)
    assert guard.sample(CALM, 0.0) is None and guard.limit() == 4
    change = guard.sample(HostSample(cpu_pct=60.0, memory_pct=0.0, io_pct=1.0), 2.0)
    assert (change.pressed, change.why) == (True, ["cpu"]) and guard.limit() == 2
    # Below the threshold but above three quarters of it: still pressed (no flapping).
    assert guard.sample(HostSample(cpu_pct=45.0, memory_pct=0.0, io_pct=1.0), 4.0) is None
    assert guard.pressed and guard.calm_since() is None
    assert guard.defer("web") and not guard.defer("web")  # the first time only
    change = guard.sample(HostSample(cpu_pct=44.9, memory_pct=0.0, io_pct=1.0), 6.0)
    assert (change.pressed, change.deferred) == (False, 1)
    assert guard.calm_since() == 6.0 and guard.limit() == 4
    assert guard.defer("web")  # a new episode is said again
    assert guard.deferred() == ["web"]
    guard.undefer("web")  # its check passed, or failed for real
    assert guard.deferred() == [] and not guard.defer("web")  # said once this episode


@pytest.mark.parametrize(
    ("sample", "over"),
    [
        (HostSample(cpu_pct=10.0, memory_pct=20.0, io_pct=59.9), ["memory"]),
        (HostSample(cpu_pct=10.0, memory_pct=0.0, io_pct=60.0), ["io"]),
        (HostSample(cpu_pct=None, load_per_core=4.0), ["load"]),  # no PSI: load and memory
        (HostSample(cpu_pct=None, load_per_core=3.9, memory_available_pct=5.0), []),
        (
            HostSample(cpu_pct=None, memory_pct=None, load_per_core=0.1, memory_available_pct=4.9),
            ["memory_available"],
        ),
    ],
)
def test_what_counts_as_pressure(sample, over):
    assert sample.over(Thresholds()) == over


def test_a_storm_is_a_share_of_the_services_timing_out_within_a_minute():
    guard = PressureGuard(Thresholds(), ceiling=2)
    assert guard.timed_out("a", 0.0, 20) is None
    assert guard.timed_out("b", 10.0, 20) is None
    assert guard.timed_out("c", 20.0, 20) is None
    assert guard.timed_out("d", 30.0, 20) is None  # 4 of 20: a quarter is 5
    change = guard.timed_out("e", 40.0, 20)
    assert (change.pressed, change.why) == (True, ["storm"]) and guard.limit() == 1
    assert guard.sample(CALM, 99.0) is None  # e timed out 59 s ago: the storm lasts
    change = guard.sample(CALM, 100.1)
    assert change.pressed is False and guard.calm_since() == 100.1
    # Of a few services, three at once make a storm.
    small = PressureGuard(Thresholds(), ceiling=2)
    assert small.timed_out("a", 0.0, 3) is None and small.timed_out("b", 0.0, 3) is None
    assert small.timed_out("c", 0.0, 3).pressed


def timeout(n: int = 1) -> list[dict]:
    return [{"ExitCode": -1, "Output": "Health check exceeded timeout (1s)"}] * n


def test_a_failing_streak_of_timeouts_is_told_from_real_failures():
    failed = {"ExitCode": 1, "Output": "connection refused"}
    ok = {"ExitCode": 0, "Output": ""}
    assert health_timed_out({"Health": {"FailingStreak": 3, "Log": [ok, ok, *timeout(3)]}})
    assert not health_timed_out({"Health": {"FailingStreak": 3, "Log": [ok, failed, *timeout(2)]}})
    assert health_timed_out({"Health": {"FailingStreak": 9, "Log": timeout(5)}})  # keeps five
    assert not health_timed_out({"Health": {"FailingStreak": 0, "Log": timeout(2)}})
    assert not health_timed_out({"Health": {"Status": "unhealthy"}})
    assert not health_timed_out(None)


def test_psi_is_read_where_the_kernel_has_it(tmp_path, monkeypatch):
    (tmp_path / "cpu").write_text(
        "some avg10=61.25 avg60=4.24 avg300=6.59 total=31194\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    monkeypatch.setattr(pressure, "PSI_DIR", tmp_path)
    assert read_psi("cpu") == 61.25
    assert read_psi("memory") is None  # no such file: no PSI for it


def test_a_deferral_is_watch_only_after_a_hold_and_shows_why():
    deferred = Facts(deferred=True)
    assert may_heal(deferred).why == WHY_HOST_PRESSURE and WHY_HOST_PRESSURE in WATCH_ONLY
    assert may_heal(Facts(deferred=True, held=True)).why == WHY_HELD
    assert may_heal(Facts(deferred=True, healthy=True)).why != WHY_HOST_PRESSURE
    assert present(Status.ERROR, "unhealthy", deferred) == (Status.ERROR, "host_pressure")
    verdict = may_heal(deferred)
    words = next_action(verdict, 0, 0.0, None, 0.0)
    assert words == "deferred: checks timed out on a pressed host"
