"""What a heal may touch, on the real engine: the contracts an operator already wrote down
(a container's own stop timeout, `--rm`, Swarm's tasks) hold through every heal."""

import time

import pytest

from tests.integration.conftest import file_healthcheck, health_of, supervise
from tests.support import FAST_HEAL, wait_for

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
    agent = supervise(agents, tmp_path, "slow", c, heal_without("stop_timeout"))
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
    agent = supervise(agents, tmp_path, "brief", c, {**FAST_HEAL, "stop_timeout": "500ms"})
    c.exec_run(["rm", "/tmp/healthy"])

    stopping = agent.wait_event("heal.stopping", service="brief")
    assert stopping["stop_timeout_s"] == 1
    agent.wait_event("heal.recovered", timeout_s=60, service="brief")
    kills = engine_events(client, c, since, ["kill"])
    [die] = engine_events(client, c, since, ["die"])
    signals = [e["Actor"]["Attributes"]["signal"] for e in kills]
    assert signals == ["15", "9"]  # what the policy asked: SIGTERM, then SIGKILL a second later
    assert at_s(die) - at_s(kills[0]) >= 0.9


def test_a_rm_container_is_healed_by_the_engines_restart_and_kept(
    client, containers, agents, tmp_path
):
    """`docker run --rm`: a stop would make Docker remove it (anonymous volumes too); the
    heal restarts it in one engine call instead, and it is still there, healthy."""
    c = containers.run("rm", healthcheck=file_healthcheck(), auto_remove=True)
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    since = time.time()
    agent = supervise(agents, tmp_path, "rm", c, FAST_HEAL)
    c.exec_run(["rm", "/tmp/healthy"])

    agent.wait_event("heal.recovered", timeout_s=60, service="rm")
    assert client.containers.get(c.id).id == c.id  # not removed
    assert health_of(client, c) == "healthy"
    assert [e["Action"] for e in engine_events(client, c, since, ["restart", "destroy"])] == [
        "restart"
    ]


def test_a_dependent_stopped_by_hand_is_not_started_by_its_parents_heal(
    client, containers, agents, tmp_path
):
    """An operator stopped `app` (it lives in db's network namespace) for maintenance; db is
    healed with `dependents: restart`; app stays down, and the line says why."""
    db = containers.run("db", healthcheck=file_healthcheck())
    app = containers.run("app", network_mode=f"container:{db.id}")
    beside = containers.run("beside", network_mode=f"container:{db.id}")
    wait_for(lambda: health_of(client, db) == "healthy", 30, "healthy")
    agent = supervise(agents, tmp_path, "db", db, {**FAST_HEAL, "dependents": "restart"})
    app.stop(timeout=1)  # seen by the agent, as an operator's
    db.exec_run(["rm", "/tmp/healthy"])

    agent.wait_event("heal.recovered", service="db")
    wait_for(lambda: len(agent.events("heal.dependent")) == 2, 30, "both dependents said")
    said = {x["dependent"]: (x["action"], x.get("detail")) for x in agent.events("heal.dependent")}
    assert said == {app.name: ("skipped", "stopped by hand"), beside.name: ("restarted", None)}
    app.reload()
    assert app.attrs["State"]["Running"] is False


def test_a_start_that_exits_ends_the_wait_for_health_at_once(client, containers, agents, tmp_path):
    """Healed, it exits 1 at once on its next start (a missing upstream, say): the heal
    fails then, with the exit code, not after ready_timeout (30 s)."""
    once = "test -f /tmp/started && exit 1; touch /tmp/started /tmp/healthy; exec sleep 86400"
    c = containers.run("once", ["sh", "-c", once], healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    agent = supervise(agents, tmp_path, "once", c, FAST_HEAL)
    c.exec_run(["rm", "/tmp/healthy"])

    failed = agent.wait_event("heal.failed", service="once", timeout_s=20)
    assert (failed["reason"], failed["detail"]) == ("exited", "exited with code 1 after its start")
    assert failed["duration_s"] < 10
