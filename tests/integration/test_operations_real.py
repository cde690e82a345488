"""Running it for real: sd_notify, reload, the state lock, and an agent killed mid-cycle."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from supervisor.store.state import save_state
from tests.integration.conftest import file_healthcheck, health_of
from tests.support import FAST_HEAL, REPO, run_cli, scrape_metrics, wait_for, write_policy

pytestmark = pytest.mark.engine


class NotifyListener:
    """A real datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.messages: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._done.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def count(self, prefix: str) -> int:
        return sum(1 for m in list(self.messages) if m.startswith(prefix))

    def close(self):
        self._done.set()
        self._thread.join(2)
        self.sock.close()


def test_systemd_notify_protocol(client, containers, agents, tmp_path):
    c = containers.run("notify", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(tmp_path / "p", "notify", match={"name": c.name}, check={"interval": "1s"})
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        agent = agents.start(
            tmp_path / "p",
            tmp_path / "state",
            env={"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"},
        )
        wait_for(lambda: listener.count("READY=1"), 15, "READY=1")
        ready = next(m for m in listener.messages if m.startswith("READY=1"))
        assert ready == "READY=1\nSTATUS=1 services: 1 running"
        wait_for(lambda: listener.count("WATCHDOG=1") >= 4, 5, "WATCHDOG=1 every 0.5 s")

        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: listener.count("RELOADING=1"), 5, "RELOADING=1")
        wait_for(lambda: listener.count("READY=1") == 2, 5, "READY=1 after the reload")
        agent.wait_event("policy.reloaded")

        assert agent.stop() == 0
        assert listener.messages[-1] == "STOPPING=1" or listener.count("STOPPING=1") == 1
    finally:
        listener.close()


def test_one_agent_per_state_directory(agents, tmp_path):
    write_policy(tmp_path / "p", "x", match={"name": "nothing-matches-this"})
    first = agents.start(tmp_path / "p", tmp_path / "state")
    first.wait_event("agent.started")
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor",
            "run",
            "--policies",
            str(tmp_path / "p"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert second.returncode == 2
    assert second.stderr == (f"{tmp_path}/state: another agent is running (pid {first.proc.pid})\n")
    assert first.proc.poll() is None


def test_an_agent_killed_between_stop_and_start_finishes_the_cycle(
    client, containers, agents, tmp_path
):
    c = containers.run("interrupted", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "interrupted",
        match={"name": c.name},
        check={"interval": "1s"},
        heal={**FAST_HEAL, "pause": "30s"},
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="interrupted", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.stopped", service="interrupted")
    agent.kill()  # SIGKILL inside the pause: the container is down and nobody will start it
    c.reload()
    assert c.attrs["State"]["Running"] is False

    again = agents.start(tmp_path / "p", tmp_path / "state")
    again.wait_event("heal.resumed", service="interrupted")
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy after the resume")
    again.wait_event("service.status", service="interrupted", status="running")


def test_a_saved_intent_starts_only_a_container_of_its_service(
    client, containers, agents, tmp_path
):
    """A state file names containers; it does not vouch for them. An intent that names a
    container its service does not match is dropped, and that container stays as it was."""
    web = containers.run("web", healthcheck=file_healthcheck())
    stranger = containers.run("stranger", start=False)
    write_policy(
        tmp_path / "p", "web", match={"name": web.name}, check={"interval": "1s"}, heal=FAST_HEAL
    )
    state_dir = tmp_path / "state"
    save_state(
        state_dir,
        {},
        intents=[
            {"key": c.id, "service": "web", "kind": "container", "container_id": c.id, "at": 1.0}
            for c in (stranger,)
        ],
    )
    agent = agents.start(tmp_path / "p", state_dir)
    abandoned = agent.wait_event("heal.resume_abandoned", service="web")
    assert abandoned["container_id"] == stranger.id
    stranger.reload()
    assert stranger.attrs["State"]["Status"] == "created"
    wait_for(
        lambda: json.loads((state_dir / "state.json").read_text())["intents"] == [],
        10,
        "the intent gone from the state file",
    )


def test_reload_applies_changes_and_keeps_the_last_good_policy(
    client, containers, agents, tmp_path
):
    a = containers.run("a", healthcheck=file_healthcheck())
    b = containers.run("b", healthcheck=file_healthcheck())
    for c in (a, b):
        wait_for(lambda c=c: health_of(client, c) == "healthy", 30, "healthy")
    policies = tmp_path / "p"
    write_policy(policies, "a", match={"name": a.name}, check={"interval": "1s"}, heal=FAST_HEAL)
    write_policy(policies, "b", match={"name": b.name}, check={"interval": "1s"}, heal=FAST_HEAL)
    agent = agents.start(policies, tmp_path / "state")
    for service in ("a", "b"):
        agent.wait_event("service.status", service=service, status="running")

    write_policy(policies, "a", match={"name": a.name}, check={"interval": "2s"}, heal=FAST_HEAL)
    (policies / "b.yaml").write_text("service: b\nmatch: {name: b}\ncheck: {interval: soon}\n")
    write_policy(policies, "c", match={"name": "no-such-container"})
    agent.proc.send_signal(signal.SIGHUP)
    reloaded = agent.wait_event("policy.reloaded")
    assert (reloaded["added"], reloaded["changed"], reloaded["removed"], reloaded["invalid"]) == (
        1,
        1,
        0,
        1,
    )
    invalid = agent.wait_event("policy.invalid")
    assert (invalid["file"], invalid["line"], invalid["field"]) == (
        str(policies / "b.yaml"),
        3,
        "check.interval",
    )

    b.exec_run(["rm", "/tmp/healthy"])  # b is still supervised, by its last good policy
    agent.wait_event("heal.recovered", service="b")

    (policies / "c.yaml").unlink()
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_event("policy.removed", service="c")
    # b's restart history survived both reloads: a second heal is attempt 2.
    b.exec_run(["rm", "/tmp/healthy"])
    second = wait_for(lambda: agent.events("heal.started", service="b")[1:], 30, "a second heal")
    assert second[0]["attempt"] == 2
    time.sleep(0.5)
    assert [x["service"] for x in agent.events("heal.started")] == ["b", "b"]
    assert health_of(client, a) == "healthy"


def test_pause_resume_and_reset_through_the_running_agent(client, containers, agents, tmp_path):
    c = containers.run("held", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    policies, state = tmp_path / "p", tmp_path / "state"
    write_policy(
        policies,
        "held",
        match={"name": c.name},
        check={"interval": "500ms"},
        heal={**FAST_HEAL, "max_restarts": 1},
    )
    agent = agents.start(policies, state)
    agent.wait_event("service.status", service="held", status="running")

    began = time.monotonic()
    done = run_cli("pause", "held", "--policies", str(policies), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "held: pause done by the running agent\n"
    assert time.monotonic() - began < 5
    agent.wait_event("service.held", service="held")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("service.status", service="held", status="error", reason="held")
    time.sleep(2)  # four check intervals: held means watched, not healed
    assert agent.events("heal.started") == []

    assert (
        run_cli("resume", "held", "--policies", str(policies), "--state-dir", str(state)).returncode
        == 0
    )
    agent.wait_event("heal.recovered", service="held")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.gave_up", service="held")  # max_restarts 1: the second is refused

    assert (
        run_cli("reset", "held", "--policies", str(policies), "--state-dir", str(state)).returncode
        == 0
    )
    agent.wait_event("heal.reset", service="held", why="operator")
    wait_for(
        lambda: len(agent.events("heal.recovered", service="held")) == 2,
        30,
        "a heal after the reset",
    )


def test_a_command_for_a_service_the_agent_does_not_know_is_refused(agents, tmp_path):
    """A policy file added but not reloaded yet: `pause` says no (exit 1), not "done"."""
    policies, state = tmp_path / "p", tmp_path / "state"
    write_policy(policies, "old", match={"name": "nothing-matches-this"})
    agent = agents.start(policies, state)
    agent.wait_event("agent.ready")
    write_policy(policies, "new", match={"name": "nothing-matches-this-either"})

    done = run_cli("pause", "new", "--policies", str(policies), "--state-dir", str(state))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("docker-supervisor: new: pause refused by the running agent:")
    assert "reload" in done.stderr and len(done.stderr.splitlines()) == 1
    agent.wait_event("command.refused", service="new")
    assert list((state / "commands").iterdir()) == []  # nothing left behind


def test_a_main_loop_fault_is_said_once_and_the_agent_goes_on(agents, tmp_path):
    """`commands/` replaced by a file: each beat's look at it fails. The agent says so once
    (not every beat), keeps running (an exit 2 is never restarted by the unit), and takes
    commands again once the directory is back."""
    policies, state = tmp_path / "p", tmp_path / "state"
    write_policy(policies, "web", match={"name": "nothing-matches-this"})
    agent = agents.start(policies, state, "--log-level", "DEBUG")
    agent.wait_event("agent.ready")
    (state / "commands").mkdir(exist_ok=True)
    (state / "commands").rmdir()
    (state / "commands").write_text("not a directory\n")
    said = agent.wait_event("agent.loop_error", part="commands")
    assert said["error"].startswith("NotADirectoryError")
    # Beats go on, each failing the same way: said again only at debug.
    wait_for(lambda: len(agent.events("agent.loop_error")) >= 5, 10, "five beats")
    levels = [e["level"] for e in agent.events("agent.loop_error")]
    assert levels[0] == "ERROR" and set(levels[1:]) == {"DEBUG"}
    assert agent.proc.poll() is None

    (state / "commands").unlink()
    done = run_cli("pause", "web", "--policies", str(policies), "--state-dir", str(state))
    assert (done.returncode, done.stdout) == (0, "web: pause done by the running agent\n")
    assert agent.proc.poll() is None


def test_pause_without_an_agent_is_kept_for_the_next_one(agents, tmp_path):
    policies, state = tmp_path / "p", tmp_path / "state"
    write_policy(policies, "later", match={"name": "nothing-matches-this"})
    done = run_cli(
        "pause", "later", "--for", "1h", "--policies", str(policies), "--state-dir", str(state)
    )
    assert (done.returncode, done.stdout) == (0, "later: pause recorded (no agent running)\n")
    status = json.loads(
        run_cli("status", str(policies), "--json", "--state-dir", str(state)).stdout
    )
    assert status["agent"] is None
    [row] = status["services"]
    assert row["reason"] == "held"
    assert row["next_action"].startswith("none: held for 359")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_endpoint_is_scraped(client, containers, agents, tmp_path):
    c = containers.run("metered", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p", "metered", match={"name": c.name}, check={"interval": "1s"}, heal=FAST_HEAL
    )
    port = free_port()
    agent = agents.start(tmp_path / "p", tmp_path / "state", "--metrics-addr", f":{port}")
    agent.wait_event("service.status", service="metered", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service="metered")
    agent.wait_event("service.status", service="metered", status="running")

    metrics = wait_for(
        lambda: (
            (m := scrape_metrics(port)).get(
                'supervisor_service_status{service="metered",status="running"}'
            )
            == 1.0
            and m
        ),
        10,
        "running in the metrics",
    )
    assert metrics['supervisor_service_status{service="metered",status="error"}'] == 0.0
    assert metrics['supervisor_heals_total{result="recovered",service="metered"}'] == 1.0
    assert metrics['supervisor_heal_duration_seconds_count{service="metered"}'] == 1.0
    assert metrics['supervisor_service_restarts_in_window{service="metered"}'] == 1.0
    assert metrics['supervisor_checks_total{service="metered"}'] >= 2
    assert metrics["supervisor_engine_api_calls_total"] >= 3
    assert 10e6 < metrics["process_resident_memory_bytes"] < 200e6
    assert metrics["process_cpu_seconds_total"] > 0


def test_sigterm_during_a_cycle_starts_the_container_before_exiting(
    client, containers, agents, tmp_path
):
    c = containers.run("term", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "term",
        match={"name": c.name},
        check={"interval": "1s"},
        heal={**FAST_HEAL, "pause": "60s"},
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="term", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.stopped", service="term")
    began = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - began < 20  # the 60 s pause was cut short
    c.reload()
    assert c.attrs["State"]["Running"] is True
    state = json.loads((tmp_path / "state/state.json").read_text())
    assert state["intents"] == []  # started, so nothing is left to finish
    assert len(state["services"]["term"]["restarts_at"]) == 1


def test_a_stop_by_hand_is_remembered_across_an_agent_restart(client, containers, agents, tmp_path):
    c = containers.run("byhand", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "byhand",
        match={"name": c.name},
        check={"interval": "500ms"},
        heal={**FAST_HEAL, "on": ["unhealthy", "exited"]},
    )
    first = agents.start(tmp_path / "p", tmp_path / "state")
    first.wait_event("service.status", service="byhand", status="running")
    c.stop(timeout=1)  # exit code 143, which `exited` would heal
    first.wait_event("service.status", service="byhand", reason="manual_stop")
    assert first.stop() == 0

    second = agents.start(tmp_path / "p", tmp_path / "state")
    second.wait_event("service.status", service="byhand", reason="manual_stop")
    time.sleep(2)  # four check intervals
    assert second.events("heal.started") == []
    c.reload()
    assert c.attrs["State"]["Running"] is False
