"""status.py: every row of the status table, from inspect State data (some captured)."""

import pytest

from supervisor.docker.states import Status, classify_state


def running(health=None, **extra):
    state = {
        "Status": "running",
        "Running": True,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "ExitCode": 0,
        **extra,
    }
    if health:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    return state


def exited(code, oom=False):
    return {"Status": "exited", "Running": False, "ExitCode": code, "OOMKilled": oom}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, (Status.STOPPED, "missing")),
        ({"Status": "created", "ExitCode": 0}, (Status.STOPPED, "created")),
        (running(), (Status.RUNNING, None)),
        (running("healthy"), (Status.RUNNING, None)),
        (running("starting"), (Status.STARTING, "health_starting")),
        (running("unhealthy"), (Status.ERROR, "unhealthy")),
        (
            {"Status": "restarting", "Restarting": True, "ExitCode": 1},
            (Status.STARTING, "restarting"),
        ),
        ({"Status": "paused", "Paused": True, "Running": True}, (Status.STOPPED, "paused")),
        (exited(0), (Status.STOPPED, "exited")),
        (exited(137), (Status.ERROR, "exited")),
        (exited(137, oom=True), (Status.ERROR, "oom_killed")),
        ({"Status": "dead", "Dead": True, "ExitCode": 0}, (Status.ERROR, "dead")),
        ({"Status": "removing", "ExitCode": 0}, (Status.STOPPED, "removing")),
        # Older engines report Paused and Restarting beside Status running.
        (running(Paused=True), (Status.STOPPED, "paused")),
        (running(Restarting=True), (Status.STARTING, "restarting")),
    ],
)
def test_status_table(state, expected):
    assert classify_state(state) == expected


@pytest.mark.parametrize(
    "state",
    [
        {"Status": "hibernating"},
        {},
        {"Status": "exited", "ExitCode": "not a number"},
        running("confused"),
        {"Status": "running", "Health": "not a mapping"},
    ],
)
def test_unknown_or_malformed_states_are_errors_and_never_raise(state):
    assert classify_state(state) == (Status.ERROR, "unknown_state")


def test_status_prints_as_its_value():
    assert str(Status.STARTING) == "starting"
    assert f"{Status.ERROR}" == "error"
