"""The agent never goes blind: one container the engine will not describe (an authorization
plugin or a filtering socket proxy answering 403 for its inspect alone) leaves the rest of
the host seen and healed."""

import pytest

from tests.integration.conftest import file_healthcheck, health_of
from tests.integration.test_socket_proxy_real import SocketProxy
from tests.support import FAST_HEAL, wait_for, write_policy

pytestmark = pytest.mark.engine


def test_one_container_whose_inspect_is_refused_blinds_nothing_else(
    client, containers, agents, tmp_path
):
    """haproxy in front of the engine denies only `GET /containers/<blind>/json` (403). The
    agent shows that one container unknown, says so once, and heals another one beside it
    (before: every service engine_unreachable, nothing healed)."""
    blind = containers.run("blind")
    web = containers.run("web", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, web) == "healthy", 30, "web healthy")
    deny = f"^(/v[0-9.]+)?/containers/({blind.id}|{blind.name})/json$"
    (tmp_path / "proxy").mkdir()
    proxy = SocketProxy(
        tmp_path / "proxy", extra=f"    http-request deny deny_status 403 if {{ path_reg {deny} }}"
    )
    try:
        policies = tmp_path / "p"
        for service, container in (("web", web), ("blind", blind)):
            write_policy(
                policies,
                service,
                match={"name": container.name},
                check={"interval": "1s"},
                heal=FAST_HEAL,
            )
        agent = agents.start(policies, tmp_path / "state", env={"DOCKER_HOST": proxy.url})
        agent.wait_event("service.status", service="web", status="running")
        failed = agent.wait_event("view.inspect_failed")
        assert failed["container"] == blind.name and "403" in failed["error"]
        agent.wait_event("service.status", service="blind", reason="unknown_state")

        web.exec_run(["rm", "/tmp/healthy"])
        agent.wait_event("heal.recovered", service="web", timeout_s=30)
        assert health_of(client, web) == "healthy"
        assert agent.events("engine.unreachable") == []
        assert agent.events("heal.started", service="blind") == []
        assert len(agent.events("view.inspect_failed")) == 1  # said once
    finally:
        proxy.close()
