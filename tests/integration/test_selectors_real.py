"""A selector policy on the real engine: every labelled container its own service, those run
later picked up, those removed forgotten, a policy for one service winning its container, and
the command line, metrics and notifications per expanded service."""

import json
import sys

import pytest

from supervisor.docker.compose import build_base_argv, run_compose
from tests.integration.conftest import (
    RUN_ID,
    by_service,
    failing_streak,
    file_healthcheck,
    health_of,
)
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


def test_a_hold_outlives_a_compose_down_and_up_longer_than_a_gone_container_is_remembered(
    client, image, compose_cmd, agents, tmp_path
):
    """pause cache (a selected compose service), `compose down`, wait until the agent has
    forgotten the gone container (selector.removed), `compose up -d`: the new container is
    cache again, held, and its failing checks are not healed."""
    project = f"dst-{RUN_ID}-maint"
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "compose.yml").write_text(f"""\
services:
  cache:
    image: {image}
    pull_policy: never
    init: true
    labels: {{docker-supervisor.test: "{RUN_ID}", {SELECTED}: "{RUN_ID}-maint"}}
    command: ["sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait"]
    healthcheck: {{test: ["CMD", "test", "-f", "/tmp/healthy"], interval: 1s, retries: 1}}
""")
    base = build_base_argv(compose_cmd, stack / "compose.yml", project)
    policies, state = tmp_path / "p", tmp_path / "state"
    write_policy(
        policies,
        "tagged",
        match={"selector": {SELECTED: f"{RUN_ID}-maint"}},
        check={"interval": "1s"},
        heal=FAST_HEAL,
    )
    try:
        run_compose([*base, "up", "-d", "--wait"], 120)
        agent = agents.start(policies, state)
        agent.wait_event("service.status", service="cache", status="running")
        paused = run_cli("pause", "cache", "--policies", str(policies), "--state-dir", str(state))
        assert paused.returncode == 0, paused.stderr
        run_compose([*base, "down", "--timeout", "1"], 120)
        removed = agent.wait_event("selector.removed", 30, service="cache")
        assert (removed["why"], removed["kept"]) == ("gone", True)
        run_compose([*base, "up", "-d", "--wait"], 120)
        agent.wait_event("selector.added", 30, service="cache")
        cache = by_service(client, project, "cache")
        cache.exec_run(["rm", "/tmp/healthy"])
        wait_for(lambda: health_of(client, cache) == "unhealthy", 30, "cache unhealthy")
        wait_for(
            lambda: failing_streak(client, cache) >= 3,
            30,
            "three failed checks",
        )
        done = run_cli("status", str(policies), "--json", "--state-dir", str(state))
        [row] = [r for r in json.loads(done.stdout)["services"] if r["service"] == "cache"]
        assert row["reason"] == "held"
        assert agent.events("heal.started", service="cache") == []
    finally:
        run_compose([*base, "down", "--timeout", "1"], 120)
