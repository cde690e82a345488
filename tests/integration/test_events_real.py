"""Event-driven checks: reaction without polling, manual stops, and the concurrency limit."""

import datetime as dt
import time

import pytest

from tests.integration.conftest import file_healthcheck, health_of
from tests.support import FAST_HEAL, wait_for, write_policy

pytestmark = pytest.mark.engine


def docker_events(client, container, since: float, actions: set[str]) -> list[dict]:
    """The engine's own record of what happened to a container, with nanosecond times."""
    stream = client.events(
        since=since, until=time.time() + 0.5, decode=True, filters={"container": container.id}
    )
    return [e for e in stream if e["Action"].split(":")[0] in actions or e["Action"] in actions]


def ts(line: dict) -> float:
    return dt.datetime.fromisoformat(line["timestamp"]).timestamp()


def test_an_unhealthy_event_is_acted_on_within_a_second(client, containers, agents, tmp_path):
    c = containers.run("react", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p", "react", match={"name": c.name}, check={"interval": "60s"}, heal=FAST_HEAL
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="react", status="running")
    since = time.time()
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service="react")

    events = docker_events(client, c, since, {"health_status: unhealthy", "kill", "stop"})
    unhealthy = next(e for e in events if e["Action"] == "health_status: unhealthy")
    first_stop = next(e for e in events if e["Action"] in ("kill", "stop"))
    reaction_s = (first_stop["timeNano"] - unhealthy["timeNano"]) / 1e9
    assert 0 <= reaction_s < 1.0, f"reaction took {reaction_s:.3f}s"


def test_a_manual_stop_is_left_alone_but_a_crash_is_healed(client, containers, agents, tmp_path):
    c = containers.run("manual", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    heal = {**FAST_HEAL, "on": ["unhealthy", "exited"]}
    write_policy(
        tmp_path / "p", "manual", match={"name": c.name}, check={"interval": "500ms"}, heal=heal
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="manual", status="running")

    c.stop(timeout=1)  # by hand: exit code 143, which policy would otherwise heal
    agent.wait_event("service.status", service="manual", reason="manual_stop")
    time.sleep(2)  # four more check intervals
    assert agent.events("heal.started") == []
    c.reload()
    assert c.attrs["State"]["Status"] == "exited"

    c.start()  # started again by hand: supervised again
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy again")
    agent.wait_event("service.status", service="manual", status="running")
    c.exec_run(["killall", "sleep"])  # a crash: the main process dies, no stop, no kill
    started = agent.wait_event("heal.started", service="manual")
    assert (started["reason"], started["attempt"]) == ("exited", 1)
    agent.wait_event("heal.recovered", service="manual")
    assert agent.events("service.status", service="manual", reason="manual_stop")[0]


def test_concurrency_limit_heals_in_waves(client, containers, agents, tmp_path):
    made = [containers.run(f"wave{i}", healthcheck=file_healthcheck()) for i in range(8)]
    for c in made:
        wait_for(lambda c=c: health_of(client, c) == "healthy", 30, f"{c.name} healthy")
        write_policy(
            tmp_path / "p",
            c.name.rsplit("-", 1)[-1],
            match={"name": c.name},
            check={"interval": "30s"},
            heal=FAST_HEAL,
        )
    agent = agents.start(tmp_path / "p", tmp_path / "state", "--heal-concurrency", "2")
    for i in range(8):
        agent.wait_event("service.status", service=f"wave{i}", status="running")
    for c in made:
        c.exec_run(["rm", "/tmp/healthy"])
    for i in range(8):
        agent.wait_event("heal.recovered", timeout_s=90, service=f"wave{i}")

    spans = []
    for i in range(8):
        begin = agent.events("heal.stopping", service=f"wave{i}")
        end = agent.events("heal.recovered", service=f"wave{i}")
        assert len(begin) == len(end) == 1
        spans.append((ts(begin[0]), ts(end[0])))
    overlap = max(sum(1 for b, e in spans if b <= t < e) for t, _ in spans)
    assert overlap == 2
    assert len(agent.events("heal.queued")) >= 6
    assert agent.events("heal.failed") == []
    for c in made:
        assert health_of(client, c) == "healthy"
