"""The demo stack's lifecycle through ServiceManager and blanket compose commands."""

import pytest

from supervisor import ServiceManager, Status, load_policy_file
from supervisor.compose import Compose, build_base_argv, run_compose
from supervisor.policy import ComposeRef
from tests.integration.conftest import RUN_ID
from tests.support import REPO, write_policy

pytestmark = pytest.mark.engine

DEMO = REPO / "compose/demo/compose.yml"


@pytest.fixture
def demo_web(image, compose_cmd, tmp_path):
    """The demo's web policy, pointed at a project of this test run's own."""
    project = f"dst-{RUN_ID}-demo"
    policy = load_policy_file(REPO / "policies/demo-web.yaml")
    policy = type(policy)(**{**policy.__dict__, "compose": ComposeRef(DEMO, project)})
    yield policy
    run_compose([*build_base_argv(compose_cmd, DEMO, project), "down", "--timeout", "1"], 120)


def test_start_status_stop(demo_web, compose_cmd, caplog):
    manager = ServiceManager(demo_web, compose=Compose(compose_cmd))
    assert manager.get_service_status() is Status.STOPPED
    assert manager.is_service_healthy() is False

    assert manager.start_service() is True
    assert manager.get_service_status() is Status.RUNNING
    assert manager.is_service_healthy() is True
    seen = manager.observe()
    assert seen.container.name == f"{demo_web.compose.project}-web-1"
    first_id = seen.container.id

    with caplog.at_level("INFO", logger="supervisor"):
        assert manager.start_service() is True  # already healthy: reused, not recreated
    assert [r.event for r in caplog.records] == ["service.reused"]
    assert manager.observe().container.id == first_id

    assert manager.restart_service() is True
    assert manager.observe().container.id == first_id
    assert manager.is_service_healthy() is True

    assert manager.stop_service() is True
    assert manager.get_service_status() is Status.STOPPED
    assert manager.observe().reason == "exited"


def test_gpu_example_compose_file_is_accepted(compose_cmd):
    policy = load_policy_file(REPO / "policies/chatterbox.yaml")
    result = Compose(compose_cmd).config(policy.compose.file, policy.compose.project)
    assert result.argv[-2:] == ["config", "--quiet"]


def test_compose_scope_heal_restarts_the_stack(client, image, compose_cmd, agents, tmp_path):
    project = f"dst-{RUN_ID}-scope"
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "compose.yml").write_text(f"""\
services:
  app:
    image: {image}
    pull_policy: never
    init: true
    command: ["sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait"]
    labels: {{docker-supervisor.test: "{RUN_ID}"}}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 1s
      retries: 1
""")
    base = build_base_argv(compose_cmd, stack / "compose.yml", project)
    try:
        run_compose([*base, "up", "-d", "--wait"], 120)
        write_policy(
            tmp_path / "p",
            "app",
            match={"compose_service": "app"},
            compose={"file": str(stack / "compose.yml"), "project": project},
            check={"interval": "1s"},
            heal={"scope": "compose", "pause": "200ms", "ready_timeout": "30s"},
        )
        agent = agents.start(tmp_path / "p", tmp_path / "state")
        agent.wait_event("service.status", service="app", status="running")
        [container] = client.containers.list(
            filters={"label": f"com.docker.compose.project={project}"}
        )
        container.exec_run(["rm", "/tmp/healthy"])
        started = agent.wait_event("heal.started", service="app")
        assert started["scope"] == "compose"
        agent.wait_event("heal.recovered", service="app")
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
        assert agent.events("heal.failed") == []
    finally:
        run_compose([*base, "down", "--timeout", "1"], 120)
