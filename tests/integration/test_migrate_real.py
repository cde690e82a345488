"""`migrate autoheal` on the real engine: the settings read from a running autoheal
container's inspect data and the stop-timeout labels on the engine, written as policies that
validate, then run by the agent, each container stopped within the timeout it asked for."""

import datetime as dt

import pytest

from tests.integration.conftest import RUN_ID, file_healthcheck, health_of
from tests.support import run_cli, wait_for

pytestmark = pytest.mark.engine

# PID 1's shell ignores SIGTERM: a stop lasts exactly the stop timeout, then SIGKILL.
STUBBORN = ["sh", "-c", "trap '' TERM; touch /tmp/healthy; while true; do sleep 1; done"]


def ts(line: dict) -> float:
    return dt.datetime.fromisoformat(line["timestamp"]).timestamp()


def test_an_autoheal_set_up_moves_over_and_runs(client, containers, agents, tmp_path):
    label = f"dst-autoheal-{RUN_ID}"
    autoheal = containers.run(
        "autoheal",
        ["sleep", "86400"],
        environment={
            "AUTOHEAL_CONTAINER_LABEL": label,
            "AUTOHEAL_INTERVAL": "2",
            "AUTOHEAL_DEFAULT_STOP_TIMEOUT": "5",
            "CURL_TIMEOUT": "30",
        },
    )
    plain = containers.run(
        "plain", STUBBORN, labels={label: "true"}, healthcheck=file_healthcheck(), init=False
    )
    quick = containers.run(
        "quick",
        STUBBORN,
        labels={label: "true", "autoheal.stop.timeout": "1"},
        healthcheck=file_healthcheck(),
        init=False,
    )
    containers.run("ignored", labels={"autoheal.stop.timeout": "7"})  # not autoheal's
    for c in (plain, quick):
        wait_for(lambda c=c: health_of(client, c) == "healthy", 30, "healthy")

    out = tmp_path / "p"
    out.mkdir()
    done = run_cli("migrate", "autoheal", "--from-container", autoheal.name, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["autoheal-stop-1s.yaml", "autoheal.yaml"]
    text = (out / "autoheal.yaml").read_text()
    assert f"From docker-autoheal's settings (container {autoheal.name})" in text
    assert "CURL_TIMEOUT=30: no equivalent" in text
    assert "interval: 2s" in text and "stop_timeout: 5s" in text
    checked = run_cli("validate", str(out))
    assert checked.returncode == 0, checked.stderr
    # Run again: nothing is replaced.
    again = run_cli("migrate", "autoheal", "--from-container", autoheal.name, "--out", str(out))
    assert again.returncode == 2
    assert again.stderr.strip().endswith(
        "autoheal.yaml: already exists; move it away or choose another --out"
    )

    # The README's way to switch: a dry run first, which names the same services.
    dry = agents.start(out, tmp_path / "dry-state", "--dry-run")
    dry.wait_event("agent.ready")
    assert {e["service"] for e in dry.events("selector.added")} == {plain.name, quick.name}
    assert dry.stop() == 0

    agent = agents.start(out, tmp_path / "state")
    agent.wait_event("agent.ready")
    by = {e["service"]: e["selector"] for e in agent.events("selector.added")}
    assert by == {plain.name: "autoheal", quick.name: "autoheal-stop-1s"}
    conflict = agent.wait_event("selector.conflict", container=quick.name)
    assert (conflict["winner"], conflict["loser"]) == ("autoheal-stop-1s", "autoheal")

    for c in (plain, quick):
        c.exec_run(["rm", "/tmp/healthy"])
    took = {}
    for c in (plain, quick):
        stopping = agent.wait_event("heal.stopping", 30, service=c.name)
        stopped = agent.wait_event("heal.stopped", 30, service=c.name)
        took[c.name] = (stopping["stop_timeout_s"], ts(stopped) - ts(stopping))
        agent.wait_event("heal.recovered", 60, service=c.name)
    assert took[plain.name][0] == 5.0 and took[plain.name][1] >= 4.9
    assert took[quick.name][0] == 1.0 and took[quick.name][1] < 3.0
    assert agent.stop() == 0
