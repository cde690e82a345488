"""Agent-side probes on real busybox containers without a HEALTHCHECK: httpd, nc, exec."""

import time

import pytest

from tests.support import FAST_HEAL, wait_for, write_policy

pytestmark = pytest.mark.engine

HTTPD = ["sh", "-c", "echo ok > /www/health; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
NC = [
    "sh",
    "-c",
    "touch /tmp/ok; nc -ll -p 9000 -e true & while [ -f /tmp/ok ]; do sleep 0.2; "
    "done; kill $!; trap 'exit 0' TERM; sleep 86400 & wait",
]


def running(c) -> bool:
    c.reload()
    return c.attrs["State"]["Running"]


def test_http_probe_on_the_container_address_heals_after_three_failures(
    containers, agents, tmp_path
):
    c = containers.run("web", HTTPD)
    wait_for(lambda: running(c), 30, "running")
    write_policy(
        tmp_path / "p",
        "web",
        match={"name": c.name},
        check={
            "interval": "60s",
            "probe": {
                "http": {"port": 8080, "path": "/health"},
                "period": "1s",
                "failure_threshold": 3,
            },
        },
        heal=FAST_HEAL,
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("probe.ok", service="web")
    c.exec_run(["rm", "/www/health"])
    failed = agent.wait_event("probe.failed", service="web")
    assert failed["failures"] == 3 and failed["error"].endswith(": HTTP 404")
    started = agent.wait_event("heal.started", service="web")
    assert started["reason"] == "probe_failed" and "HTTP 404" in started["detail"]
    agent.wait_event("heal.recovered", service="web")
    wait_for(
        lambda: len(agent.events("probe.ok", service="web")) == 2,
        15,
        "the probe to pass again after the restart",
    )


def test_exec_probe_runs_inside_the_container(containers, agents, tmp_path):
    c = containers.run(
        "exec", ["sh", "-c", "touch /tmp/ok; trap 'exit 0' TERM; sleep 86400 & wait"]
    )
    wait_for(lambda: running(c), 30, "running")
    write_policy(
        tmp_path / "p",
        "exec",
        match={"name": c.name},
        check={
            "interval": "60s",
            "probe": {"exec": ["test", "-f", "/tmp/ok"], "period": "1s", "failure_threshold": 2},
        },
        heal=FAST_HEAL,
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("probe.ok", service="exec")
    c.exec_run(["rm", "/tmp/ok"])
    failed = agent.wait_event("probe.failed", service="exec")
    assert failed["error"] == "exec test -f /tmp/ok: exit code 1: "
    agent.wait_event("heal.recovered", service="exec")


def test_a_slow_probe_times_out_and_does_not_delay_another(containers, agents, tmp_path):
    slow = containers.run("slow", ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"])
    fast = containers.run("fast", NC)
    wait_for(lambda: running(slow) and running(fast), 30, "running")
    write_policy(
        tmp_path / "p",
        "slow",
        match={"name": slow.name},
        check={
            "interval": "60s",
            "probe": {
                "exec": ["sleep", "10"],
                "timeout": "2s",
                "period": "2s",
                "failure_threshold": 2,
            },
        },
        heal=FAST_HEAL,
    )
    write_policy(
        tmp_path / "p",
        "fast",
        match={"name": fast.name},
        check={
            "interval": "60s",
            "probe": {
                "tcp": {"port": 9000},
                "timeout": "500ms",
                "period": "500ms",
                "failure_threshold": 3,
            },
        },
        heal=FAST_HEAL,
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("probe.ok", service="fast")
    fast.exec_run(["rm", "/tmp/ok"])
    began = time.time()
    agent.wait_event("heal.recovered", service="fast")
    assert time.time() - began < 6  # three 0.5 s periods and a restart, whatever "slow" does

    failed = agent.wait_event("probe.failed", timeout_s=30, service="slow")
    assert failed["error"] == "timed out after 2s: sleep 10"  # a timeout, to the guard too
    assert agent.wait_event("heal.started", service="slow")["reason"] == "probe_failed"
