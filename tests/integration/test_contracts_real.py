"""What a heal may touch, on the real engine: the contracts an operator already wrote down
(a container's own stop timeout, `--rm`, Swarm's tasks) hold through every heal."""

import time

import pytest

from tests.integration.conftest import file_healthcheck, health_of
from tests.support import FAST_HEAL, wait_for, write_policy

pytestmark = pytest.mark.engine

# Healthy while /tmp/healthy exists; on SIGTERM it takes `slow` seconds to shut down cleanly.
SLOW_STOP = "trap 'sleep {slow}; exit 0' TERM; touch /tmp/healthy; while :; do sleep 1; done"


def engine_events(client, container, since: float, actions: list[str]) -> list[dict]:
    """The engine's own record of what happened to the container since `since`."""
    return list(
        client.events(
            since=int(since),
            until=int(time.time()) + 1,
            decode=True,
            filters={"container": container.id, "event": actions},
        )
    )


def at_s(event: dict) -> float:
    return event["timeNano"] / 1e9


def heal_without(*keys: str) -> dict:
    return {k: v for k, v in FAST_HEAL.items() if k not in keys}


def test_a_heal_gives_a_container_its_own_stop_timeout(client, containers, agents, tmp_path):
    """`--stop-timeout 25` (compose: stop_grace_period: 25s) and a clean shutdown of 13 s:
    the policy sets no stop_timeout, so the stop waits for the container, which exits 0."""
    c = containers.run(
        "slow",
        ["sh", "-c", SLOW_STOP.format(slow=13)],
        healthcheck=file_healthcheck(),
        stop_timeout=25,
    )
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    since = time.time()
    write_policy(
        tmp_path / "p",
        "slow",
        match={"name": c.name},
        check={"interval": "1s"},
        heal=heal_without("stop_timeout"),
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="slow", status="running")
    c.exec_run(["rm", "/tmp/healthy"])

    stopping = agent.wait_event("heal.stopping", service="slow")
    assert stopping["stop_timeout_s"] == 25
    agent.wait_event("heal.recovered", timeout_s=90, service="slow")
    [die] = engine_events(client, c, since, ["die"])
    assert die["Actor"]["Attributes"]["exitCode"] == "0"  # a clean shutdown, not 137
    [term] = [e for e in engine_events(client, c, since, ["kill"])]
    assert term["Actor"]["Attributes"]["signal"] == "15"  # SIGTERM only: no SIGKILL followed
    assert at_s(die) - at_s(term) >= 12.5


def test_a_policy_stop_timeout_rounds_up_never_to_an_immediate_kill(
    client, containers, agents, tmp_path
):
    """`stop_timeout: 500ms` is one second before SIGKILL, not zero."""
    c = containers.run(
        "brief", ["sh", "-c", SLOW_STOP.format(slow=30)], healthcheck=file_healthcheck()
    )
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    since = time.time()
    write_policy(
        tmp_path / "p",
        "brief",
        match={"name": c.name},
        check={"interval": "1s"},
        heal={**FAST_HEAL, "stop_timeout": "500ms"},
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="brief", status="running")
    c.exec_run(["rm", "/tmp/healthy"])

    stopping = agent.wait_event("heal.stopping", service="brief")
    assert stopping["stop_timeout_s"] == 1
    agent.wait_event("heal.recovered", timeout_s=60, service="brief")
    kills = engine_events(client, c, since, ["kill"])
    [die] = engine_events(client, c, since, ["die"])
    signals = [e["Actor"]["Attributes"]["signal"] for e in kills]
    assert signals == ["15", "9"]  # what the policy asked: SIGTERM, then SIGKILL a second later
    assert at_s(die) - at_s(kills[0]) >= 0.9
