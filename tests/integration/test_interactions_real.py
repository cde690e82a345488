"""Where features meet, on the real engine: a pause during a backoff, a reload that adds a
probe, a directory that becomes unusable, a malformed command, a hung exec probe, and a
slow dependent next to another service's heal."""

import json
import os
import signal
import time

import pytest

from tests.integration.conftest import SECOND_NS, file_healthcheck, health_of
from tests.support import FAST_HEAL, run_cli, wait_for, write_policy

pytestmark = pytest.mark.engine

NEVER_HEALTHY = ["sh", "-c", "exec sleep 86400"]  # the health check's file never appears


def events_of(client, container, since_s: float) -> list[str]:
    """Docker's own record of what happened to the container since `since_s`."""
    found = client.api.events(
        since=since_s,
        until=time.time(),
        filters={"container": container.id, "type": "container"},
        decode=True,
    )
    return [e.get("Action") for e in found]


def test_a_pause_during_the_backoff_wait_is_kept(client, containers, agents, tmp_path):
    c = containers.run("backoff", NEVER_HEALTHY, healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "unhealthy", 30, "unhealthy")
    policies, state = tmp_path / "p", tmp_path / "state"
    heal = {**FAST_HEAL, "ready_timeout": "2s", "backoff": {"initial": "6s", "jitter": 0}}
    write_policy(policies, "backoff", match={"name": c.name}, check={"interval": "1s"}, heal=heal)
    agent = agents.start(policies, state)
    agent.wait_event("heal.failed", service="backoff", reason="not_ready", timeout_s=30)
    waiting = agent.wait_event("heal.started", service="backoff", attempt=2)
    assert waiting["delay_s"] == 6.0
    done = run_cli("pause", "backoff", "--policies", str(policies), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    paused_at = time.time()
    agent.wait_event("heal.cancelled", service="backoff", why="held")
    time.sleep(7)  # past the end of the 6 s wait the pause cancelled
    assert [a for a in events_of(client, c, paused_at) if a in ("kill", "stop", "die")] == []
    # The agent was alive and would heal: once resumed, it does.
    done = run_cli("resume", "backoff", "--policies", str(policies), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    agent.wait_event("heal.stopping", service="backoff", attempt=3, timeout_s=30)


def test_a_probe_added_by_a_reload_runs(containers, agents, tmp_path):
    c = containers.run("probed")  # no Docker health check: the probe is the only judge
    policies = tmp_path / "p"
    write_policy(policies, "probed", match={"name": c.name}, heal=FAST_HEAL)
    agent = agents.start(policies, tmp_path / "state")
    agent.wait_event("service.status", service="probed", status="running")
    probe = {"exec": ["test", "-f", "/tmp/healthy"], "period": "1s", "failure_threshold": 2}
    check = {"interval": "60s", "probe": probe}
    write_policy(policies, "probed", match={"name": c.name}, check=check, heal=FAST_HEAL)
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_event("policy.changed", service="probed")
    agent.wait_event("probe.ok", service="probed")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("probe.failed", service="probed")
    started = agent.wait_event("heal.started", service="probed")
    assert started["reason"] == "probe_failed"
    agent.wait_event("heal.recovered", service="probed", timeout_s=30)


def test_an_unusable_policies_directory_keeps_every_policy(client, containers, agents, tmp_path):
    c = containers.run("kept", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    policies = tmp_path / "p"
    write_policy(policies, "kept", match={"name": c.name}, check={"interval": "1s"}, heal=FAST_HEAL)
    agent = agents.start(policies, tmp_path / "state")
    agent.wait_event("service.status", service="kept", status="running")
    os.chmod(policies, 0o777)
    agent.proc.send_signal(signal.SIGHUP)
    unreadable = agent.wait_event("policy.unreadable")
    assert unreadable["services"] == 1
    assert agent.events("policy.removed") == []
    c.exec_run(["rm", "/tmp/healthy"])  # still supervised
    agent.wait_event("heal.recovered", service="kept", timeout_s=30)


def test_a_malformed_command_is_refused_and_the_agent_still_stops_cleanly(
    containers, agents, tmp_path
):
    c = containers.run("cmd")
    policies, state = tmp_path / "p", tmp_path / "state"
    write_policy(policies, "cmd", match={"name": c.name})
    agent = agents.start(policies, state)
    agent.wait_event("agent.ready")
    (state / "commands").mkdir(exist_ok=True)
    (state / "commands" / "1-1.json").write_text(json.dumps([1, 2]))
    refused = agent.wait_event("command.invalid")
    assert refused["error"] == "expected an object, got list"
    assert not (state / "commands" / "1-1.json").exists()
    assert agent.stop() == 0
    assert agent.events("agent.stopped")


def test_a_hung_exec_probe_is_ended_at_its_deadline(containers, agents, tmp_path):
    c = containers.run("hung")
    policies = tmp_path / "p"
    probe = {"exec": ["sleep", "29"], "timeout": "1s", "period": "2s", "failure_threshold": 1}
    write_policy(
        policies,
        "hung",
        match={"name": c.name},
        check={"interval": "60s", "probe": probe},
        heal={**FAST_HEAL, "on": ["exited"]},  # watch only: a probe failure is not healed
    )
    agent = agents.start(policies, tmp_path / "state")
    failed = agent.wait_event("probe.failed", service="hung", timeout_s=30)
    # The failure is logged after the deadline's kill: the probe ran, and is gone.
    assert "timed out after 1s" in failed["error"]
    assert [p for p in c.top()["Processes"] if "sleep 29" in " ".join(p)] == []


def test_a_slow_dependent_does_not_delay_another_services_heal(
    client, containers, agents, tmp_path
):
    """A's heal restarts its dependent, which ignores SIGTERM (8 s to stop); meanwhile B
    turns unhealthy and is stopped at once."""
    a = containers.run("a", healthcheck=file_healthcheck())
    deaf = ["sh", "-c", "trap '' TERM; touch /tmp/healthy; while true; do sleep 0.2; done"]
    containers.run("dep", deaf, network_mode=f"container:{a.id}", init=False)
    b = containers.run("b", healthcheck=file_healthcheck())
    for c in (a, b):
        wait_for(lambda c=c: health_of(client, c) == "healthy", 30, "healthy")
    policies = tmp_path / "p"
    slow = {**FAST_HEAL, "stop_timeout": "8s", "dependents": "restart"}
    write_policy(policies, "a", match={"name": a.name}, check={"interval": "60s"}, heal=slow)
    write_policy(policies, "b", match={"name": b.name}, check={"interval": "60s"}, heal=FAST_HEAL)
    agent = agents.start(policies, tmp_path / "state")
    for service in ("a", "b"):
        agent.wait_event("service.status", service=service, status="running")
    a.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service="a", timeout_s=30)
    time.sleep(1)  # the dependent's 8 s stop is under way
    assert agent.events("heal.dependent") == []
    began = time.time()
    b.exec_run(["rm", "/tmp/healthy"])
    wait_for(lambda: health_of(client, b) == "unhealthy", 10, "b unhealthy")
    agent.wait_event("heal.stopped", service="b", timeout_s=10)
    marked = [
        e
        for e in client.api.events(
            since=began, until=time.time(), filters={"container": b.id}, decode=True
        )
        if e.get("Action") in ("health_status: unhealthy", "kill")
    ]
    unhealthy = next(e["timeNano"] for e in marked if e["Action"] == "health_status: unhealthy")
    killed = next(e["timeNano"] for e in marked if e["Action"] == "kill")
    assert (killed - unhealthy) / SECOND_NS < 1.0
    assert agent.events("heal.dependent") == []  # a's dependent is still stopping
    agent.wait_event("heal.dependent", service="a", action="restarted", timeout_s=30)
