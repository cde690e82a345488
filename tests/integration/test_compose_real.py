"""The demo stack's lifecycle through ServiceManager and blanket compose commands."""

import pytest

from supervisor import ServiceManager, Status, load_policy_file
from supervisor.compose import Compose, build_base_argv, run_compose
from supervisor.policy import ComposeRef
from tests.integration.conftest import RUN_ID
from tests.support import REPO

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
