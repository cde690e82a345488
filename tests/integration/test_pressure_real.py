"""The host-pressure guard on the real engine: Docker's own health log tells a check that
timed out from one that failed; under pressure the first waits, the second is healed.

The thresholds are set to 0 so that every reading of this host counts as pressed: what is
tested here is the agent's reading of Docker's health log and its decisions, not how busy
the test machine happens to be (bench/pressure.py and `bench/faults.py storm` measure that).
"""

import pytest

from tests.integration.conftest import SECOND_NS, health_of
from tests.integration.test_operations_real import free_port
from tests.support import FAST_HEAL, scrape_metrics, wait_for, write_policy

pytestmark = pytest.mark.engine

ALWAYS_PRESSED = ("--pressure-cpu", "0", "--pressure-memory", "0", "--pressure-io", "0")
ALWAYS_PRESSED += ("--pressure-load", "0")
# Healthy while /tmp/healthy exists; a check that takes 5 s (and so times out at 1 s) while
# /tmp/slow exists.
SLOW_OR_FAILING = {
    "test": ["CMD", "sh", "-c", "if test -f /tmp/slow; then sleep 5; fi; test -f /tmp/healthy"],
    "interval": SECOND_NS,
    "timeout": SECOND_NS,
    "retries": 1,
}


def test_timed_out_checks_wait_under_pressure_and_failed_checks_heal(
    client, containers, agents, tmp_path
):
    slow = containers.run("slow", healthcheck=SLOW_OR_FAILING)
    broken = containers.run("broken", healthcheck=SLOW_OR_FAILING)
    for c in (slow, broken):
        wait_for(lambda c=c: health_of(client, c) == "healthy", 30, "healthy")
    for service, c in (("slow", slow), ("broken", broken)):
        write_policy(
            tmp_path / "p", service, match={"name": c.name}, check={"interval": "1s"},
            heal=FAST_HEAL,
        )  # fmt: skip
    port = free_port()
    agent = agents.start(
        tmp_path / "p", tmp_path / "state", *ALWAYS_PRESSED, "--metrics-addr", f":{port}"
    )
    started = agent.wait_event("pressure.started")
    assert started["heal_concurrency"] == 2  # the ceiling (4), halved
    agent.wait_event("service.status", service="slow", status="running")

    slow.exec_run(["touch", "/tmp/slow"])
    broken.exec_run(["rm", "/tmp/healthy"])
    # The failed check is healed, pressure or not...
    agent.wait_event("heal.recovered", 60, service="broken")
    # ...the timed-out one waits, said once, shown and counted.
    deferred = agent.wait_event("heal.deferred", 60, service="slow")
    assert (deferred["why"], deferred["reason"]) == ("host_pressure", "unhealthy")
    log = client.api.inspect_container(slow.id)["State"]["Health"]["Log"]
    assert log[-1]["ExitCode"] == -1 and log[-1]["Output"].startswith("Health check exceeded")
    agent.wait_event("service.status", service="slow", reason="host_pressure")
    checks = scrape_metrics(port)['supervisor_checks_total{service="slow"}']
    wait_for(
        lambda: scrape_metrics(port)['supervisor_checks_total{service="slow"}'] >= checks + 3,
        15,
        "three more checks of slow",
    )
    metrics = scrape_metrics(port)
    assert metrics["supervisor_host_pressure"] == 1.0
    assert metrics['supervisor_service_flag{flag="deferred",service="slow"}'] == 1.0
    assert agent.events("heal.started", service="slow") == []
    assert len(agent.events("heal.deferred", service="slow")) == 1
    assert agent.stop() == 0

    # Without the guard the same container is restarted at once: what the guard held back.
    unguarded = agents.start(tmp_path / "p", tmp_path / "state2", "--no-pressure-guard")
    healed = unguarded.wait_event("heal.started", 60, service="slow")
    assert healed["reason"] == "unhealthy"
    assert unguarded.events("pressure.started") == []
    assert unguarded.stop() == 0
