"""A selector policy on the real engine: every labelled container its own service, those run
later picked up, those removed forgotten, a policy for one service winning its container, and
the command line, metrics and notifications per expanded service."""

import json
import sys

import pytest

from tests.integration.conftest import RUN_ID, file_healthcheck, health_of
from tests.integration.test_operations_real import free_port
from tests.support import FAST_HEAL, run_cli, scrape_metrics, wait_for, write_policy

pytestmark = pytest.mark.engine

SELECTED = "dst.selected"


def checks_of(port: int, service: str) -> float:
    return scrape_metrics(port).get(f'supervisor_checks_total{{service="{service}"}}', 0.0)


def test_a_selector_supervises_each_labelled_container_as_its_own_service(
    client, containers, agents, tmp_path
):
    label = {SELECTED: RUN_ID}
    a = containers.run("a", labels=label, healthcheck=file_healthcheck())
    b = containers.run("b", labels=label, healthcheck=file_healthcheck())
    pinned = containers.run("pinned", labels=label, healthcheck=file_healthcheck())
    containers.run("unlabelled", healthcheck=file_healthcheck())
    for c in (a, b, pinned):
        wait_for(lambda c=c: health_of(client, c) == "healthy", 30, "healthy")
    told = tmp_path / "told"
    policies = tmp_path / "p"
    write_policy(
        policies,
        "tagged",
        match={"selector": label},
        check={"interval": "1s"},
        heal=FAST_HEAL,
        notify={
            "on": ["heal.recovered"],
            "command": [sys.executable, "-c", _APPEND_SERVICE, str(told)],
        },
    )
    write_policy(policies, "pinned", match={"name": pinned.name}, check={"interval": "1s"})
    port = free_port()
    state = tmp_path / "state"
    agent = agents.start(policies, state, "--metrics-addr", f"127.0.0.1:{port}")
    agent.wait_event("agent.ready")
    added = {e["service"] for e in agent.events("selector.added")}
    assert added == {a.name, b.name}  # not the unlabelled one, not the pinned one
    conflict = agent.wait_event("selector.conflict", container=pinned.name)
    assert (conflict["winner"], conflict["loser"]) == ("pinned", "tagged")

    # Each its own counters: a is healed (and its notification names it), b is not touched.
    a.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service=a.name)
    wait_for(lambda: told.exists() and told.read_text() == f"{a.name}\n", 10, "told of a")
    assert agent.events("heal.started", service=b.name) == []
    assert checks_of(port, b.name) > 0  # b was checked all along

    # A container run after the start is picked up; a pause holds it by its own name.
    c = containers.run("c", labels=label, healthcheck=file_healthcheck())
    agent.wait_event("selector.added", service=c.name)
    agent.wait_event("service.status", service=c.name, status="running")
    paused = run_cli("pause", c.name, "--policies", str(policies), "--state-dir", str(state))
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"{c.name}: pause done by the running agent"
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("service.status", service=c.name, reason="held", status="error")
    seen = checks_of(port, c.name)
    wait_for(lambda: checks_of(port, c.name) >= seen + 3, 10, "three more checks of c")
    assert agent.events("heal.started", service=c.name) == []

    # status, from another process, shows the expanded services with the agent's names.
    done = run_cli("status", str(policies), "--json", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    rows = {row["service"]: row for row in json.loads(done.stdout)["services"]}
    assert sorted(rows) == sorted([a.name, b.name, c.name, "pinned"])
    assert rows[a.name]["restarts_in_window"] == 1
    assert (rows[c.name]["status"], rows[c.name]["reason"]) == ("error", "held")

    # The lifecycle commands (which take no --state-dir) take an expanded name too.
    restarted = run_cli("restart", b.name, "--policies", str(policies))
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.strip() == f"{b.name}: running"

    # docker rm -f: forgotten once gone a while, its row and its series with it.
    b.remove(force=True, v=False)
    removed = agent.wait_event("selector.removed", 30, service=b.name)
    assert removed["why"] == "gone"
    assert not [sample for sample in scrape_metrics(port) if f'service="{b.name}"' in sample]
    assert health_of(client, a) == "healthy"
    assert agent.stop() == 0


_APPEND_SERVICE = (
    "import os, sys; open(sys.argv[1], 'a').write(os.environ['SUPERVISOR_SERVICE'] + '\\n')"
)
