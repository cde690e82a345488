"""engine.discover: the match keys in schema order, ambiguity, one-off containers."""

from dataclasses import replace
from pathlib import Path

import pytest

from supervisor.config.model import ComposeRef, Match, Policy
from supervisor.docker.containers import (
    REFUSED_OTHER_PROJECT,
    ContainerInfo,
    discover,
    exited_since,
    parse_started_at,
    refusal_for,
    stop_timeout_for,
    stop_wait_s,
)
from supervisor.docker.engine import _from_inspect


def c(name, labels=None, ports=()):
    return ContainerInfo(id=name * 4, name=name, labels=labels or {}, ports=frozenset(ports))


WEB = c(
    "demo-web-1",
    {"com.docker.compose.service": "web", "com.docker.compose.project": "demo", "app": "web"},
    [8080],
)
WEB_OTHER = c(
    "other-web-1",
    {"com.docker.compose.service": "web", "com.docker.compose.project": "other"},
    [8081],
)
ONEOFF = c(
    "demo-web-run-1",
    {
        "com.docker.compose.service": "web",
        "com.docker.compose.project": "demo",
        "com.docker.compose.oneoff": "True",
    },
)
DB = c("db", {"app": "db"}, [5432])
ALL = [WEB, WEB_OTHER, ONEOFF, DB]


def names(found):
    return [x.name for x in found]


def test_compose_service_with_project():
    assert names(discover(Match(compose_service="web"), "demo", ALL)) == ["demo-web-1"]


def test_compose_service_without_project_is_ambiguous_across_projects():
    assert names(discover(Match(compose_service="web"), None, ALL)) == [
        "demo-web-1",
        "other-web-1",
    ]


def test_labels_must_all_match():
    assert names(discover(Match(labels={"app": "db"}), None, ALL)) == ["db"]
    assert names(discover(Match(labels={"app": "db", "tier": "x"}), None, ALL)) == []


def test_name_contains_and_exact_wins():
    assert names(discover(Match(name="web"), None, ALL)) == ["demo-web-1", "other-web-1"]
    assert names(discover(Match(name="db"), None, [*ALL, c("dbadmin")])) == ["db"]


def test_port_published_or_exposed():
    assert names(discover(Match(port=5432), None, ALL)) == ["db"]


def test_first_key_that_finds_wins_in_schema_order():
    match = Match(compose_service="nothing", labels={"app": "db"}, name="web", port=8080)
    assert names(discover(match, None, ALL)) == ["db"]
    assert names(discover(Match(compose_service="nothing", port=8081), None, ALL)) == [
        "other-web-1"
    ]


def test_nothing_found():
    assert discover(Match(name="ghost"), None, ALL) == []


def test_started_at():
    assert parse_started_at({"StartedAt": "2026-11-26T03:36:10.5Z"}) == 1795664170.5
    assert parse_started_at({"StartedAt": "0001-01-01T00:00:00Z"}) is None
    assert parse_started_at({"StartedAt": "garbage"}) is None
    assert parse_started_at(None) is None


def test_find_dependents():
    from supervisor.docker.containers import find_dependents

    labels = {"com.docker.compose.project": "demo", "com.docker.compose.service": "vpn"}
    vpn = ContainerInfo("new-id", "demo-vpn-1", labels)
    app = ContainerInfo(
        "a", "demo-app-1", {"com.docker.compose.project": "demo"}, network_mode="container:old-id"
    )
    worker = ContainerInfo(
        "w",
        "demo-worker-1",
        {
            "com.docker.compose.project": "demo",
            "com.docker.compose.depends_on": "db:service_healthy:false,vpn:service_started:true",
        },
    )
    elsewhere = ContainerInfo(
        "x",
        "other-worker-1",
        {
            "com.docker.compose.project": "other",
            "com.docker.compose.depends_on": "vpn:service_started:true",
        },
    )
    by_name = ContainerInfo("n", "sidecar", network_mode="container:demo-vpn-1")
    unrelated = ContainerInfo(
        "u", "db", {"com.docker.compose.project": "demo"}, network_mode="bridge"
    )
    found = find_dependents(vpn, {"old-id"}, [vpn, app, worker, elsewhere, by_name, unrelated])
    assert [(c.name, why) for c, why in found] == [
        ("demo-app-1", "shares_network"),
        ("sidecar", "shares_network"),
        ("demo-worker-1", "depends_on"),
    ]
    assert find_dependents(vpn, set(), [app]) == []


@pytest.mark.parametrize(
    ("own", "policy_s", "timeout", "wait"),
    [
        (None, None, None, 10),  # nothing said: the engine's own default, by the engine
        (30, None, 30, 30),  # stop_grace_period: 30s, no policy value: the container's
        (30, 5.0, 5, 5),  # the policy's value wins when set
        (None, 0.5, 1, 1),  # rounded up, never down to an immediate SIGKILL
        (2, 12.1, 13, 13),
        (0, None, 0, 0),  # the container asked for none
    ],
)
def test_a_stop_waits_by_the_containers_own_contract(own, policy_s, timeout, wait):
    container = replace(DB, stop_timeout_s=own)
    assert stop_timeout_for(container, policy_s) == timeout
    assert stop_wait_s(container, policy_s) == wait


def test_inspect_reads_the_stop_contract_and_auto_remove():
    data = {
        "Id": "abc",
        "Name": "/db",
        "Config": {"StopTimeout": 30},
        "HostConfig": {"AutoRemove": True},
    }
    assert (_from_inspect(data).stop_timeout_s, _from_inspect(data).auto_remove) == (30, True)
    bare = _from_inspect({"Id": "abc", "Name": "/db", "Config": {}, "HostConfig": {}})
    assert (bare.stop_timeout_s, bare.auto_remove) == (None, False)
    forever = _from_inspect({"Id": "abc", "Config": {"StopTimeout": -1}})
    assert forever.stop_timeout_s is None


def test_a_compose_service_without_a_project_is_the_policy_files_own():
    """`compose_service: web` with compose.file and no project: only the containers compose
    made from that file, never a `web` of another stack (none is ambiguous)."""
    mine, theirs = Path("/srv/app/compose.yml"), "/srv/other/compose.yml"
    files = "com.docker.compose.project.config_files"
    prod = c("prod-web-1", {**WEB.labels, "com.docker.compose.project": "prod", files: str(mine)})
    other = c("other-web-1", {**WEB_OTHER.labels, files: theirs})
    by_hand = c("web-by-hand", {"com.docker.compose.service": "web"})  # no label: can't tell
    match = Match(compose_service="web")
    assert discover(match, None, [prod, other], mine) == [prod]
    assert discover(match, None, [prod, other]) == [prod, other]  # no file: every project
    assert discover(match, None, [other, by_hand], mine) == [by_hand]
    assert discover(match, "other", [prod, other], mine) == [other]  # a project wins


def test_a_policy_whose_compose_file_is_not_the_containers_project_is_refused():
    files = "com.docker.compose.project.config_files"
    prod = c("prod-web-1", {**WEB.labels, "com.docker.compose.project": "prod", files: "/a.yml"})
    policy = Policy("web", Match(name="prod-web-1"), ComposeRef(Path("/b.yml")))
    assert refusal_for(policy, prod) == REFUSED_OTHER_PROJECT
    assert refusal_for(replace(policy, compose=ComposeRef(Path("/a.yml"))), prod) is None
    named = replace(policy, compose=ComposeRef(Path("/a.yml"), "staging"))
    assert refusal_for(named, prod) == REFUSED_OTHER_PROJECT
    assert refusal_for(replace(policy, compose=None), prod) is None


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ({"Running": True, "StartedAt": "2026-01-01T00:00:20Z"}, None),
        # Still the stop made at 10 (started before it): the start is not seen yet.
        (
            {"Running": False, "StartedAt": "2026-01-01T00:00:05Z",
             "FinishedAt": "2026-01-01T00:00:11Z", "ExitCode": 143},
            None,
        ),
        # Started at 20, after the heal's stop at 10, and exited 1 at 21: fail fast.
        (
            {"Running": False, "StartedAt": "2026-01-01T00:00:20Z",
             "FinishedAt": "2026-01-01T00:00:21Z", "ExitCode": 1},
            1,
        ),
        ({"Restarting": True, "StartedAt": "2026-01-01T00:00:20Z",
          "FinishedAt": "2026-01-01T00:00:21Z", "ExitCode": 1}, None),
    ],
)  # fmt: skip
def test_exited_since_a_heals_stop(state, code):
    stop_at = parse_started_at({"StartedAt": "2026-01-01T00:00:10Z"})
    assert exited_since(state, stop_at) == code


def _running(**health):
    return {"Status": "running", "Running": True, **health}


def test_what_a_container_needs_is_its_network_parent_and_its_depends_on_services():
    from supervisor.docker.containers import Dependency, dependencies_of

    demo = {"com.docker.compose.project": "demo"}
    app = ContainerInfo("app-id", "demo-app-1", {**demo, "com.docker.compose.service": "app"})
    migrate = ContainerInfo(
        "m-id", "demo-migrate-1", {**demo, "com.docker.compose.service": "migrate"}
    )
    oneoff = ContainerInfo(
        "o-id",
        "demo-app-run-1",
        {**demo, "com.docker.compose.service": "app", "com.docker.compose.oneoff": "True"},
    )
    other_app = ContainerInfo(
        "x-id",
        "other-app-1",
        {"com.docker.compose.project": "other", "com.docker.compose.service": "app"},
    )
    vpn = ContainerInfo("vpn-id", "vpn")
    web = ContainerInfo(
        "web-id",
        "demo-web-1",
        {
            **demo,
            "com.docker.compose.service": "web",
            "com.docker.compose.depends_on": (
                "app:service_started:false,migrate:service_completed_successfully:false,"
                "cache:service_started:false"
            ),
        },
        network_mode="container:vpn",
    )
    everything = [web, app, migrate, oneoff, other_app, vpn]
    assert dependencies_of(web, everything) == [
        Dependency("vpn", vpn),  # the namespace it joins, by name
        Dependency("app", app),  # of its project only; never a one-off
        Dependency("migrate", migrate, completes=True),
        # cache has no container: an optional one is never created, so it is left out
    ]
    by_id = replace(web, labels={}, network_mode="container:vpn-id")
    assert dependencies_of(by_id, everything) == [Dependency("vpn", vpn)]
    gone = replace(web, labels={}, network_mode="container:0123456789abcdef")
    assert dependencies_of(gone, everything) == [Dependency("0123456789ab", None)]
    assert dependencies_of(replace(web, labels={}, network_mode="bridge"), everything) == []


@pytest.mark.parametrize(
    ("state", "completes", "down"),
    [
        (_running(), False, None),
        (_running(Health={"Status": "unhealthy"}), False, None),  # running: not down
        (_running(Health={"Status": "starting"}), False, None),
        ({"Status": "exited", "ExitCode": 1}, False, "exited"),
        ({"Status": "exited", "ExitCode": 0}, False, "exited"),
        ({"Status": "exited", "ExitCode": 0}, True, None),  # a one-shot that completed
        ({"Status": "exited", "ExitCode": 2}, True, "exited"),
        ({"Status": "running", "Running": True, "Paused": True}, False, "paused"),
        ({"Status": "restarting"}, False, "restarting"),
        ({"Status": "created"}, False, "created"),
        (None, False, None),  # not inspected: cannot tell, so not waited for
    ],
)
def test_a_dependency_is_down_when_no_process_of_it_runs(state, completes, down):
    from supervisor.docker.containers import Dependency, dependency_down

    container = ContainerInfo("d", "db", state=state)
    assert dependency_down(Dependency("db", container, completes)) == down
    assert dependency_down(Dependency("db", None)) == "missing"
