"""The status table on real containers: each row that can be produced on this engine."""

import pytest

from supervisor.config.model import Match, Policy
from supervisor.docker.engine import Engine
from supervisor.docker.states import Status
from tests.integration.conftest import SECOND_NS, file_healthcheck
from tests.support import wait_for

pytestmark = pytest.mark.engine


def observe(name: str):
    return Engine().observe(Policy(service="t", match=Match(name=name)))


def wait_state(container, predicate, what):
    def check():
        container.reload()
        return predicate(container.attrs["State"])

    wait_for(check, 30, what)


def test_running_without_health_check(containers):
    c = containers.run("plain", ["sleep", "600"])
    wait_state(c, lambda s: s["Running"], "running")
    seen = observe(c.name)
    assert (seen.status, seen.reason, seen.container.name) == (Status.RUNNING, None, c.name)
    assert seen.started_at is not None


def test_health_starting(containers):
    check = {"test": ["CMD", "true"], "interval": 120 * SECOND_NS, "retries": 1}
    c = containers.run("starting", ["sleep", "600"], healthcheck=check)
    wait_state(c, lambda s: s["Running"], "running")
    assert (observe(c.name).status, observe(c.name).reason) == (Status.STARTING, "health_starting")


def test_healthy(containers):
    c = containers.run("healthy", healthcheck=file_healthcheck())
    wait_state(c, lambda s: (s.get("Health") or {}).get("Status") == "healthy", "healthy")
    assert (observe(c.name).status, observe(c.name).reason) == (Status.RUNNING, None)


def test_unhealthy(containers):
    check = {"test": ["CMD", "false"], "interval": SECOND_NS, "retries": 1}
    c = containers.run("unhealthy", ["sleep", "600"], healthcheck=check)
    wait_state(c, lambda s: (s.get("Health") or {}).get("Status") == "unhealthy", "unhealthy")
    assert (observe(c.name).status, observe(c.name).reason) == (Status.ERROR, "unhealthy")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["true"], (Status.STOPPED, "exited")),
        (["sh", "-c", "exit 3"], (Status.ERROR, "exited")),
    ],
)
def test_exited(containers, command, expected):
    c = containers.run("exited", command)
    wait_state(c, lambda s: s["Status"] == "exited", "exited")
    seen = observe(c.name)
    assert (seen.status, seen.reason) == expected


def test_created(containers):
    c = containers.run("created", start=False)
    assert (observe(c.name).status, observe(c.name).reason) == (Status.STOPPED, "created")


def test_paused(containers):
    c = containers.run("paused", ["sleep", "600"])
    c.pause()
    try:
        assert (observe(c.name).status, observe(c.name).reason) == (Status.STOPPED, "paused")
    finally:
        c.unpause()


def test_missing(containers):
    seen = observe(containers.name("never-created"))
    assert (seen.status, seen.reason, seen.container) == (Status.STOPPED, "missing", None)


def test_two_matches_are_ambiguous(containers):
    containers.run("twin-a", ["sleep", "600"])
    containers.run("twin-b", ["sleep", "600"])
    seen = observe(containers.name("twin"))
    assert (seen.status, seen.reason) == (Status.ERROR, "ambiguous")
    assert seen.detail == f"matches {containers.name('twin-a')}, {containers.name('twin-b')}"


def test_engine_unreachable():
    seen = Engine(base_url="unix:///nonexistent/docker.sock").observe(
        Policy(service="t", match=Match(name="x"))
    )
    assert (seen.status, seen.reason) == (Status.ERROR, "engine_unreachable")


def test_discovery_by_label_and_port(containers):
    c = containers.run(
        "labelled", ["sleep", "600"], labels={"app": "probe-me"}, ports={"9999/tcp": None}
    )
    wait_state(c, lambda s: s["Running"], "running")
    by_label = Engine().observe(Policy(service="t", match=Match(labels={"app": "probe-me"})))
    assert by_label.container.name == c.name
    by_port = Engine().observe(Policy(service="t", match=Match(port=9999)))
    assert by_port.container.name == c.name
