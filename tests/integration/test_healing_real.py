"""Healing on the real engine, driven through the agent process and its JSON log."""

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import SECOND_NS, file_healthcheck, health_of
from tests.support import FAST_HEAL, REPO, wait_for, write_policy

pytestmark = pytest.mark.engine


def ts(line: dict) -> float:
    return dt.datetime.fromisoformat(line["timestamp"]).timestamp()


def start_events(client, container, since: float) -> int:
    """How many times the engine started this container since `since` (Docker's own record)."""
    events = client.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"container": container.id, "event": "start"},
    )
    return sum(1 for _ in events)


def test_unhealthy_container_is_healed(client, containers, agents, tmp_path):
    c = containers.run("web", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p", "web", match={"name": c.name}, check={"interval": "1s"}, heal=FAST_HEAL
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="web", status="running")

    c.exec_run(["rm", "/tmp/healthy"])
    started = agent.wait_event("heal.started", service="web")
    recovered = agent.wait_event("heal.recovered", service="web")
    assert (started["attempt"], started["delay_s"], started["reason"]) == (1, 0.0, "unhealthy")
    assert recovered["attempt"] == 1
    assert 0 < recovered["duration_s"] < 20
    assert ts(started) <= ts(agent.wait_event("heal.stopped", service="web")) <= ts(recovered)
    assert health_of(client, c) == "healthy"
    for line in agent.events():
        assert {"timestamp", "level", "logger", "message", "event"} <= line.keys()

    # status, from another process, sees the agent's restart history in the state file.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor",
            "status",
            str(tmp_path / "p"),
            "--json",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    status = json.loads(done.stdout)
    assert status["agent"]["pid"] == agent.proc.pid
    assert 0 < status["agent"]["rss_mb"] < 200
    [row] = status["services"]
    assert (row["service"], row["container"], row["status"]) == ("web", c.name, "running")
    assert row["restarts_in_window"] == 1
    assert (row["last_heal"]["result"], row["last_heal"]["attempt"]) == ("recovered", 1)
    assert (row["backoff_attempt"], row["next_action"]) == (1, "watch")
    assert agent.stop() == 0


def test_crash_loop_gives_up_after_max_restarts(client, containers, agents, tmp_path):
    check = {"test": ["CMD", "false"], "interval": SECOND_NS, "retries": 1}
    c = containers.run("loop", ["sleep", "86400"], healthcheck=check)
    wait_for(lambda: health_of(client, c) == "unhealthy", 30, "unhealthy")
    since = time.time()
    heal = {**FAST_HEAL, "ready_timeout": "3s", "max_restarts": 2, "window": "10m"}
    write_policy(
        tmp_path / "p", "loop", match={"name": c.name}, check={"interval": "1s"}, heal=heal
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")

    gave_up = agent.wait_event("heal.gave_up", timeout_s=60, service="loop")
    assert gave_up["restarts"] == 2
    agent.wait_event("service.status", service="loop", reason="gave_up")
    time.sleep(4)  # several more check intervals: nothing more may happen
    assert [x["attempt"] for x in agent.events("heal.started", service="loop")] == [1, 2]
    assert [x["delay_s"] for x in agent.events("heal.started", service="loop")] == [0.0, 1.0]
    assert len(agent.events("heal.failed", service="loop")) == 2
    assert len(agent.events("heal.gave_up", service="loop")) == 1
    assert start_events(client, c, since) == 2
    assert container_running(c)


def container_running(c) -> bool:
    c.reload()
    return c.attrs["State"]["Running"]


def test_grace_leaves_a_fresh_container_alone(client, containers, agents, tmp_path):
    c = containers.run("fresh", healthcheck=file_healthcheck())
    c.reload()
    started_at = dt.datetime.fromisoformat(c.attrs["State"]["StartedAt"]).timestamp()
    c.exec_run(["rm", "/tmp/healthy"])
    write_policy(
        tmp_path / "p",
        "fresh",
        match={"name": c.name},
        check={"interval": "1s", "grace": "8s"},
        heal=FAST_HEAL,
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="fresh", reason="unhealthy")
    heal = agent.wait_event("heal.started", timeout_s=30, service="fresh")
    assert ts(heal) - started_at >= 8.0
    assert len(agent.events("heal.started")) == 1


def test_failures_threshold_needs_consecutive_bad_checks(client, containers, agents, tmp_path):
    c = containers.run("threshold", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "threshold",
        match={"name": c.name},
        check={"interval": "1s", "failures": 3},
        heal=FAST_HEAL,
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="threshold", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service="threshold")
    sequence = [
        (x["event"], x.get("bad_checks"))
        for x in agent.events()
        if x["event"] in ("heal.pending", "heal.started")
    ]
    assert sequence == [("heal.pending", 1), ("heal.pending", 2), ("heal.started", None)]


def test_agent_survives_an_unreachable_engine(agents, tmp_path):
    write_policy(tmp_path / "p", "web", match={"name": "web"}, check={"interval": "500ms"})
    agent = agents.start(
        tmp_path / "p", tmp_path / "state", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    agent.wait_event("engine.unreachable")
    agent.wait_event("service.status", service="web", reason="engine_unreachable")
    time.sleep(2)  # several more checks: one line, no exit, no heal
    assert agent.proc.poll() is None
    assert len(agent.events("engine.unreachable")) == 1
    assert agent.events("heal.started") == []
    assert agent.stop() == 0
