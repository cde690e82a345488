"""probes.py: Kubernetes' thresholds and initial delay, and the probe's target."""

from supervisor.engine import ContainerInfo
from supervisor.policy import ProbePolicy
from supervisor.probes import FAILED, OK, UNKNOWN, ProbeResult, ProbeTracker, build_url

GOOD, BAD = ProbeResult(True), ProbeResult(False, "HTTP 500")


def test_thresholds():
    t = ProbeTracker(ProbePolicy("tcp", port=1, failure_threshold=3, success_threshold=2))
    assert t.due(100.0, 100.0)
    assert [t.record(BAD), t.record(BAD), t.state] == [False, False, UNKNOWN]
    assert t.record(BAD) is True and t.state == FAILED and t.last_error == "HTTP 500"
    assert [t.record(GOOD), t.state] == [False, FAILED]  # one success is not enough
    assert [t.record(GOOD), t.state] == [True, OK]
    assert [t.record(BAD), t.record(GOOD), t.record(BAD), t.record(BAD), t.state] == [
        False,
        False,
        False,
        False,
        OK,
    ]  # failures must be consecutive


def test_initial_delay_and_a_new_start_resets():
    t = ProbeTracker(ProbePolicy("tcp", port=1, initial_delay_s=5, failure_threshold=1))
    assert t.due(100.0, 104.9) is False
    assert t.due(100.0, 105.0) is True
    t.record(BAD)
    assert t.failed_for(100.0) and not t.failed_for(200.0)
    assert t.due(200.0, 201.0) is False  # started again: counts and delay start over
    assert (t.state, t.failures) == (UNKNOWN, 0)


def test_http_target():
    c = ContainerInfo("id", "web", addresses=("172.17.0.5",))
    assert build_url(ProbePolicy("http", port=8080, path="/health"), c) == (
        "http://172.17.0.5:8080/health"
    )
    assert build_url(ProbePolicy("http", port=80, host="::1"), c) == "http://[::1]:80/"
    assert build_url(ProbePolicy("http", url="http://127.0.0.1:9/x"), c) == "http://127.0.0.1:9/x"
