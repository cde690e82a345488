"""A Swarm task, on a real single-node Swarm: the agent observes and reports it, and never
stops or starts it (the orchestrator replaces unhealthy tasks itself)."""

import contextlib
import subprocess

import pytest

from tests.integration.conftest import RUN_ID
from tests.support import wait_for, write_policy

pytestmark = pytest.mark.engine


def docker(*argv: str, timeout_s: float = 60) -> str:
    done = subprocess.run(
        ["docker", *argv], capture_output=True, text=True, timeout=timeout_s, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def swarm(client, image):
    """A single-node Swarm on the test engine, left afterwards (if this test made it)."""
    made = client.info().get("Swarm", {}).get("LocalNodeState") != "active"
    if made:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        if made:
            with contextlib.suppress(subprocess.SubprocessError):
                docker("swarm", "leave", "--force")


def test_an_unhealthy_swarm_task_is_reported_and_left_to_swarm(
    client, image, swarm, agents, tmp_path
):
    name = f"dst-{RUN_ID}-swarm"
    docker(
        "service", "create", "--detach", "--name", name,
        "--label", f"docker-supervisor.test={RUN_ID}",
        "--health-cmd", "test -f /tmp/healthy", "--health-interval", "1s",
        "--health-retries", "1", "--stop-grace-period", "1s",
        image, "sh", "-c", "touch /tmp/healthy; exec sleep 86400",
    )  # fmt: skip
    try:
        label = f"com.docker.swarm.service.name={name}"

        def task():
            found = client.containers.list(filters={"label": label, "health": "healthy"})
            return found[0] if len(found) == 1 else None

        first = wait_for(task, 60, "a healthy task")
        write_policy(
            tmp_path / "p",
            "task",
            match={"label": {"com.docker.swarm.service.name": name}},
            check={"interval": "1s"},
            heal={"pause": "200ms", "ready_timeout": "30s"},
        )
        agent = agents.start(tmp_path / "p", tmp_path / "state")
        agent.wait_event("service.status", service="task", status="running")
        first.exec_run(["rm", "/tmp/healthy"])

        refused = agent.wait_event("heal.refused", service="task")
        assert (refused["container"], refused["why"]) == (first.name, "swarm_task")
        agent.wait_event("service.status", service="task", reason="not_healable")
        # Swarm replaces the task by itself; the agent sees the new one and never acted.
        wait_for(lambda: (t := task()) is not None and t.id != first.id, 90, "a new task")
        agent.wait_event("service.status", service="task", status="running")
        assert agent.events("heal.started") == [] and agent.events("heal.stopping") == []
        assert len(agent.events("heal.refused")) == 1
    finally:
        docker("service", "rm", name)
