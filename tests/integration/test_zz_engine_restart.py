"""The engine stops and starts again under a running agent. Runs last: it restarts dockerd."""

import signal
import time

import psutil
import pytest

from tests.integration.conftest import file_healthcheck, health_of
from tests.support import (
    engine_client,
    serving_dockerd,
    start_dockerd_again,
    wait_for,
    write_policy,
)

pytestmark = [pytest.mark.engine, pytest.mark.engine_restart]


def test_engine_restart_under_a_running_agent(client, containers, agents, tmp_path):
    c = containers.run(
        "survivor", healthcheck=file_healthcheck(), restart_policy={"Name": "unless-stopped"}
    )
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "survivor",
        match={"name": c.name},
        check={"interval": "1s"},
        heal={
            "on": ["unhealthy", "exited"],
            "pause": "200ms",
            "ready_timeout": "30s",
            "stop_timeout": "2s",
        },
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="survivor", status="running")

    dockerd = serving_dockerd()
    cmdline = dockerd.cmdline()
    dockerd.send_signal(signal.SIGTERM)
    psutil.wait_procs([dockerd], timeout=60)
    agent.wait_event("engine.unreachable")
    agent.wait_event("service.status", service="survivor", reason="engine_unreachable")
    time.sleep(3)  # the outage lasts: nothing may be healed, the agent must not exit
    assert agent.proc.poll() is None

    start_dockerd_again(cmdline)
    agent.wait_event("engine.reachable", timeout_s=10)
    assert agent.events("heal.started") == [], agent.output()
    assert len(agent.events("engine.unreachable")) == 1

    fresh = engine_client()
    c = fresh.containers.get(c.id)
    wait_for(lambda: health_of(fresh, c) == "healthy", 60, "healthy after the engine restart")
    agent.wait_event("service.status", service="survivor", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", timeout_s=30, service="survivor")
    assert agent.proc.poll() is None
