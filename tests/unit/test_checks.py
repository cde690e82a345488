"""probes.py: Kubernetes' thresholds and initial delay, and the probe's target."""

from supervisor.config.model import ProbePolicy
from supervisor.docker.containers import ContainerInfo
from supervisor.probe.checks import (
    FAILED,
    OK,
    UNKNOWN,
    ProbeResult,
    ProbeTracker,
    build_url,
    run_probe,
)

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
    assert (t.state, t.started_at) == (FAILED, 100.0)
    assert t.due(200.0, 201.0) is False  # started again: counts and delay start over
    assert (t.state, t.failures) == (UNKNOWN, 0)


def test_http_target():
    c = ContainerInfo("id", "web", addresses=("172.17.0.5",))
    assert build_url(ProbePolicy("http", port=8080, path="/health"), c) == (
        "http://172.17.0.5:8080/health"
    )
    assert build_url(ProbePolicy("http", port=80, host="::1"), c) == "http://[::1]:80/"
    assert build_url(ProbePolicy("http", url="http://127.0.0.1:9/x"), c) == "http://127.0.0.1:9/x"


class Timers:
    """Timers that run nothing by themselves: the test calls the jobs."""

    def __init__(self):
        self.jobs, self.t = [], 100.0

    def now(self):
        return self.t

    def every(self, interval_s, fn, *args, first_s=0.0, io=False):
        job = {"fn": fn, "args": args, "cancelled": False}
        self.jobs.append(job)

        class Handle:
            def cancel(self):
                job["cancelled"] = True

        return Handle()

    def tick(self):
        for job in [j for j in self.jobs if not j["cancelled"]]:
            job["fn"](*job["args"])


def test_the_prober_follows_reloads_added_changed_and_removed():
    from dataclasses import replace

    from supervisor.config.model import CheckPolicy, Match, Policy
    from supervisor.probe.prober import Prober

    timers, targets, changes = Timers(), [], []

    def run(spec, container):
        targets.append(spec.port)
        return ProbeResult(spec.port == 80)

    prober = Prober(timers, lambda fn: fn(), run, changes.append)
    plain = Policy("web", Match(name="web"))
    probe = ProbePolicy(kind="tcp", port=81, failure_threshold=1)
    probed = replace(plain, check=CheckPolicy(probe=probe))
    container = ContainerInfo("abc", "web", addresses=("10.0.0.2",))

    prober.sync([plain])
    prober.aim("web", container, 50.0)
    timers.tick()
    assert targets == [] and prober.verdict("web", 50.0) == (OK, None)  # no probe: no verdict

    prober.sync([probed])  # added
    prober.aim("web", container, 50.0)
    timers.tick()
    assert targets == [81] and prober.verdict("web", 50.0)[0] == FAILED and changes == ["web"]

    prober.sync([replace(probed, check=CheckPolicy(probe=replace(probe, port=80)))])  # changed
    prober.aim("web", container, 50.0)
    assert prober.verdict("web", 50.0)[0] == UNKNOWN  # the old probe's failure is gone
    timers.tick()
    assert targets == [81, 80] and prober.verdict("web", 50.0)[0] == OK

    prober.sync([plain])  # removed
    timers.tick()
    assert targets == [81, 80] and prober.verdict("web", 50.0) == (OK, None)


def test_a_probe_that_raises_fails_and_runs_again():
    """A probe whose run raises (a host name no resolver takes) is a failed try with its
    reason, and the next tick probes again: it never goes silent."""
    from supervisor.config.model import CheckPolicy, Match, Policy
    from supervisor.probe.prober import Prober

    timers, runs, changes = Timers(), [], []

    def run(spec, container):
        runs.append(spec.port)
        raise UnicodeError("label too long")

    prober = Prober(timers, lambda fn: fn(), run, changes.append)
    probe = ProbePolicy(kind="tcp", port=81, failure_threshold=2)
    prober.sync([Policy("web", Match(name="web"), check=CheckPolicy(probe=probe))])
    prober.aim("web", ContainerInfo("abc", "web", addresses=("10.0.0.2",)), 50.0)
    timers.tick()
    timers.tick()
    assert runs == [81, 81] and changes == ["web"]
    assert prober.verdict("web", 50.0) == (FAILED, "UnicodeError: label too long")
    assert prober.runs("web") == 2


def test_run_probe_turns_any_error_into_a_failed_try():
    long_label = ProbePolicy(kind="tcp", host="a" * 64 + ".example", port=1, timeout_s=0.5)
    result = run_probe(long_label, ContainerInfo("abc", "web"), engine=None)
    assert result.ok is False
    assert result.error.startswith("UnicodeError: encoding with 'idna' codec failed")
    assert result.timed_out is False  # refused, not late: a failure to the guard


SLOW = ProbeResult(False, "timed out after 1s", timed_out=True)


def test_a_failing_streak_made_of_timeouts_alone_is_a_timeout():
    """What a pressed host does to a working service: every failure of the streak timed
    out. One refusal in the streak makes it a failure; a success starts a new streak."""
    t = ProbeTracker(ProbePolicy("tcp", port=1, failure_threshold=2))
    t.due(100.0, 100.0)
    t.record(SLOW)
    assert t.timed_out is False  # not failed yet
    t.record(SLOW)
    assert (t.state, t.timed_out) == (FAILED, True)
    t.record(BAD)
    assert (t.state, t.timed_out) == (FAILED, False)
    t.record(GOOD)
    t.record(SLOW)
    t.record(SLOW)
    assert (t.state, t.timed_out) == (FAILED, True)
    t.due(200.0, 200.0)  # a new start: nothing timed out yet
    assert t.timed_out is False


def test_an_http_probe_not_answered_in_time_is_a_timeout():
    """A real server that accepts and never answers: the probe's try times out."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port, held, done = server.getsockname()[1], [], threading.Event()

    def accept():
        conn, _ = server.accept()
        held.append(conn)  # read nothing, answer nothing
        done.wait(5)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        probe = ProbePolicy("http", host="127.0.0.1", port=port, timeout_s=0.3)
        result = run_probe(probe, ContainerInfo("abc", "web"), engine=None)
    finally:
        done.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()
    assert (result.ok, result.timed_out) == (False, True)
    assert result.error == "timed out after 0.3s"
