"""The agent never goes blind or forgetful: one container the engine will not describe (an
authorization plugin or a filtering socket proxy answering 403 for its inspect alone) leaves
the rest of the host seen and healed; a full state filesystem stops every stop."""

import json
import subprocess
import time

import pytest

from tests.integration.conftest import failing_streak, file_healthcheck, health_of
from tests.integration.test_contracts_real import engine_events
from tests.integration.test_socket_proxy_real import SocketProxy
from tests.support import FAST_HEAL, run_cli, wait_for, write_policy

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


def test_no_stop_is_sent_while_the_state_filesystem_is_full(client, containers, agents, tmp_path):
    """The state directory on a tiny tmpfs, filled up: the agent says so once, shows it, and
    stops nothing (a stop whose intent is not on disk could be left down by the agent's
    restart); freed, it heals what waited."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(state)], check=True
    )
    try:
        web = containers.run("web", healthcheck=file_healthcheck())
        wait_for(lambda: health_of(client, web) == "healthy", 30, "web healthy")
        policies = tmp_path / "p"
        write_policy(
            policies, "web", match={"name": web.name}, check={"interval": "1s"}, heal=FAST_HEAL
        )
        agent = agents.start(policies, state)
        agent.wait_event("service.status", service="web", status="running")
        fill(state / "fill")
        since = time.time()
        web.exec_run(["rm", "/tmp/healthy"])
        agent.wait_event("state.save_failed")
        agent.wait_event("service.status", service="web", reason="state_unwritable")
        streak = failing_streak(client, web)
        wait_for(lambda: failing_streak(client, web) >= streak + 3, 30, "three more bad checks")
        assert engine_events(client, web, since, ["kill", "die", "stop"]) == []
        shown = json.loads(
            run_cli("status", str(policies), "--json", "--state-dir", str(state)).stdout
        )
        assert shown["agent"]["state_file"].startswith("cannot be written: ")
        assert [r["reason"] for r in shown["services"]] == ["state_unwritable"]
        assert [e["why"] for e in agent.events("heal.cancelled", service="web")] in (
            [],
            ["state_unwritable"],  # decided just before the first write failed
        )

        (state / "fill").unlink()
        agent.wait_event("state.saved", timeout_s=10)
        agent.wait_event("heal.recovered", service="web", timeout_s=30)
        assert health_of(client, web) == "healthy"
        assert len(agent.events("state.save_failed")) == 1  # said once
        agent.stop()
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(path) -> None:
    """Write zeros until the filesystem is full."""
    with open(path, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
