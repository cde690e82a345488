"""run --dry-run: every decision is logged with dry_run: true, and no container is touched."""

import time

import pytest

from tests.integration.conftest import file_healthcheck, health_of
from tests.support import wait_for, write_policy

pytestmark = pytest.mark.engine


def test_dry_run_touches_nothing(client, containers, agents, tmp_path):
    c = containers.run("dry", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    c.reload()
    started_at = c.attrs["State"]["StartedAt"]
    write_policy(
        tmp_path / "p",
        "dry",
        match={"name": c.name},
        check={"interval": "500ms"},
        heal={"on": ["unhealthy"], "max_restarts": 1},
    )
    since = time.time()
    agent = agents.start(tmp_path / "p", tmp_path / "state", "--dry-run")
    agent.wait_event("service.status", service="dry", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    wait_for(
        lambda: len(agent.events("heal.started", service="dry")) >= 3, 20, "three decisions to heal"
    )
    assert all(line.get("dry_run") is True for line in agent.events())
    # Nothing escalates, because nothing was done: every decision is attempt 1, no give-up.
    assert {x["attempt"] for x in agent.events("heal.started")} == {1}
    assert agent.events("heal.gave_up") == [] and agent.events("heal.stopping") == []
    assert agent.stop() == 0
    actions = client.events(
        since=since, until=time.time() + 0.5, decode=True, filters={"container": c.id}
    )
    assert [e["Action"] for e in actions if e["Action"] in ("kill", "stop", "start", "die")] == []
    c.reload()
    assert c.attrs["State"]["StartedAt"] == started_at
    assert c.attrs["State"]["Running"] is True
