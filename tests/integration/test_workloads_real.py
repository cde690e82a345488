"""Heals of real server software (PostgreSQL 15, Redis 7, nginx from Debian's packages), with
their data checked after every heal: what a client was told is stored is still there."""

import time

import pytest

from supervisor.docker.compose import build_base_argv, run_compose
from tests.integration.conftest import RUN_ID, by_service, failing_streak, health_of, supervise
from tests.integration.test_contracts_real import at_s, engine_events
from tests.integration.workloads.images import ensure_images
from tests.support import FAST_HEAL, wait_for, write_policy

pytestmark = pytest.mark.engine

ROWS = 200


@pytest.fixture(scope="module")
def images(client):
    return ensure_images()


def sql(container, query: str) -> str:
    code, out = container.exec_run(
        ["psql", "-h", "127.0.0.1", "-At", "-v", "ON_ERROR_STOP=1", "-c", query]
    )
    assert code == 0, out.decode()
    return out.decode().strip()


def redis(container, *argv: str) -> str:
    code, out = container.exec_run(["redis-cli", "-h", "127.0.0.1", *argv])
    assert code == 0, out.decode()
    return out.decode().strip()


def healthy(client, container, what: str) -> None:
    wait_for(lambda: health_of(client, container) == "healthy", 60, what)


def test_postgres_gets_its_slow_clean_shutdown(client, images, containers, agents, tmp_path):
    """stop_grace_period 30s and a session that holds Postgres's smart shutdown for 12 s:
    the policy sets no stop_timeout, the stop waits, Postgres exits 0 and keeps every row."""
    db = containers.run("pg", image=images["postgres"], stop_timeout=30)
    healthy(client, db, "postgres healthy")
    sql(db, f"CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, {ROWS})")
    agent = supervise(
        agents, tmp_path, "pg", db, {k: v for k, v in FAST_HEAL.items() if k != "stop_timeout"}
    )
    since = time.time()
    db.exec_run(["psql", "-h", "127.0.0.1", "-c", "SELECT pg_sleep(12)"], detach=True)
    wait_for(lambda: sql(db, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                         "'SELECT pg_sleep%'") == "1", 10, "the session")  # fmt: skip
    db.exec_run(["rm", "/tmp/healthy"])

    assert agent.wait_event("heal.stopping", service="pg")["stop_timeout_s"] == 30
    agent.wait_event("heal.recovered", timeout_s=90, service="pg")
    [die] = engine_events(client, db, since, ["die"])
    [term] = engine_events(client, db, since, ["kill"])
    assert (die["Actor"]["Attributes"]["exitCode"], term["Actor"]["Attributes"]["signal"]) == (
        "0",
        "15",
    )
    assert at_s(die) - at_s(term) >= 10  # it waited for the session
    assert sql(db, "SELECT count(*), sum(n) FROM t") == f"{ROWS}|{ROWS * (ROWS + 1) // 2}"


def test_a_hung_postgres_is_healed_and_keeps_every_committed_row(
    client, images, containers, agents, tmp_path
):
    """SIGSTOP on the postmaster: its checks time out, the heal's stop ends in SIGKILL after
    the policy's timeout, and crash recovery brings back every row that was committed."""
    db = containers.run("pg", image=images["postgres"], init=False)
    healthy(client, db, "postgres healthy")
    sql(db, "CREATE TABLE t (n int)")
    for start in range(0, ROWS, 50):  # each a committed transaction the client was told of
        sql(db, f"INSERT INTO t SELECT generate_series({start + 1}, {start + 50})")
    # Its checks time out (not fail): on a busy CI host the pressure guard would rightly
    # defer the heal; this test is about the data, so it runs without the guard.
    agent = supervise(
        agents, tmp_path, "pg", db, {**FAST_HEAL, "stop_timeout": "3s"}, "--no-pressure-guard"
    )
    client.api.kill(db.id, "SIGSTOP")

    agent.wait_event("service.status", service="pg", reason="unhealthy", timeout_s=60)
    agent.wait_event("heal.recovered", timeout_s=90, service="pg")
    assert sql(db, "SELECT count(*), sum(n) FROM t") == f"{ROWS}|{ROWS * (ROWS + 1) // 2}"


def test_a_redis_past_its_check_is_healed_with_its_data(
    client, images, containers, agents, tmp_path
):
    """DEBUG SLEEP 60 blocks Redis past its 1 s check: healed, every acknowledged write
    (appendonly, fsync always) is there after the start."""
    cache = containers.run("redis", image=images["redis"], init=False)
    healthy(client, cache, "redis healthy")
    for i in range(ROWS):
        assert redis(cache, "SET", f"k{i}", str(i)) == "OK"
    agent = supervise(
        agents, tmp_path, "cache", cache, {**FAST_HEAL, "stop_timeout": "3s"}, "--no-pressure-guard"
    )
    cache.exec_run(["redis-cli", "-h", "127.0.0.1", "DEBUG", "SLEEP", "60"], detach=True)

    agent.wait_event("service.status", service="cache", reason="unhealthy", timeout_s=60)
    agent.wait_event("heal.recovered", timeout_s=90, service="cache")
    assert redis(cache, "DBSIZE") == str(ROWS)
    assert [redis(cache, "GET", f"k{i}") for i in (0, ROWS // 2, ROWS - 1)] == [
        "0",
        str(ROWS // 2),
        str(ROWS - 1),
    ]


def test_nginx_waits_while_its_upstream_is_down_and_is_healed_once_it_is_back(
    client, images, image, compose_cmd, agents, tmp_path
):
    """web (nginx) depends_on app; an operator kills app. web answers 502 and turns
    unhealthy, and now also needs a restart of its own (/tmp/ok gone). While app is down the
    agent does not heal web (nginx would exit at once: host not found in upstream) and says
    what it waits for; app's start has web looked at, and healed, at once (its checks are a
    minute apart), and web serves app's page again."""
    project = f"dst-{RUN_ID}-nginx"
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "compose.yml").write_text(f"""\
services:
  app:
    image: {image}
    pull_policy: never
    init: true
    labels: {{docker-supervisor.test: "{RUN_ID}"}}
    command: ["sh", "-c", "{SERVE}"]
  web:
    image: {images["nginx"]}
    pull_policy: never
    labels: {{docker-supervisor.test: "{RUN_ID}"}}
    depends_on: [app]
""")  # fmt: skip
    base = build_base_argv(compose_cmd, stack / "compose.yml", project)
    try:
        run_compose([*base, "up", "-d", "--wait"], 180)
        web, app = (by_service(client, project, name) for name in ("web", "app"))
        write_policy(
            tmp_path / "p",
            "web",
            match={"compose_service": "web"},
            compose={"file": str(stack / "compose.yml"), "project": project},
            check={"interval": "60s"},
            heal=FAST_HEAL,
        )
        agent = agents.start(tmp_path / "p", tmp_path / "state")
        agent.wait_event("service.status", service="web", status="running")

        client.api.kill(app.id)  # `docker kill app`
        agent.wait_event("service.status", service="web", reason="dependency_down", timeout_s=30)
        web.exec_run(["rm", "/tmp/ok"])
        streak = failing_streak(client, web)
        wait_for(lambda: failing_streak(client, web) >= streak + 5, 30, "five more bad checks")
        assert health_of(client, web) == "unhealthy"
        assert agent.events("heal.started", service="web") == []  # checked, not healed

        since = time.time()
        client.api.start(app.id)
        [started] = engine_events(client, app, since, ["start"])
        heal = agent.wait_event("heal.started", service="web", timeout_s=30)
        assert heal["attempt"] == 1
        stopping = agent.wait_event("heal.stopping", service="web")
        stop = engine_events(client, web, since, ["kill"])[0]
        assert at_s(stop) - at_s(started) < 5  # looked at on app's start, not a minute on
        agent.wait_event("heal.recovered", service="web", timeout_s=60)
        assert stopping["container"] == web.name
        code, out = web.exec_run(["bash", "-c", FETCH])
        assert code == 0 and "upstream-ok" in out.decode(), out.decode()
    finally:
        run_compose([*base, "down", "--timeout", "1"], 120)


SERVE = "mkdir -p /www; echo upstream-ok > /www/index.html; exec httpd -f -p 8080 -h /www"
FETCH = "exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
