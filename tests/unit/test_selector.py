"""Selector policies expanded into services: who supervises which container, named how."""

from __future__ import annotations

from supervisor.config.model import Match, Policy
from supervisor.core.selector import MORE_SPECIFIC, NAME_TAKEN, PREFERS_SINGLE, Conflict, expand
from supervisor.docker.containers import ContainerInfo, identity_of

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"


def container(cid: str, name: str, created: float, **labels: str) -> ContainerInfo:
    return ContainerInfo(cid, name, labels, created=created)


def composed(cid: str, project: str, service: str, number: int, created: float, **labels):
    compose = {PROJECT: project, SERVICE: service, NUMBER: str(number)}
    return container(cid, f"{project}-{service}-{number}", created, **compose, **labels)


def selector(name: str, **labels: str) -> Policy:
    return Policy(service=name, match=Match(selector=labels))


def single(service: str, **match) -> Policy:
    return Policy(service=service, match=Match(**match))


def test_each_selected_container_is_named_after_its_compose_service_or_its_name():
    containers = [
        composed("a", "shop", "web", 1, 10, autoheal="true"),
        container("b", "cron", 20, autoheal="true"),
        container("c", "plain", 30),
    ]
    found = expand([selector("auto", autoheal="true")], [], containers)
    assert sorted(found.policies) == ["cron", "web"]
    web = found.policies["web"]
    assert web.match == Match(identity=("compose", "shop/web/1"))
    assert web.selected_by == "auto"
    assert found.policies["cron"].match == Match(identity=("name", "cron"))
    assert found.conflicts == []


def test_a_name_taken_goes_to_the_oldest_and_the_others_get_their_container_names():
    containers = [
        composed("new", "shop", "web", 2, 50, autoheal="true"),  # a second replica
        composed("old", "shop", "web", 1, 10, autoheal="true"),
        composed("other", "blog", "web", 1, 30, autoheal="true"),  # another project's web
        composed("db", "shop", "db", 1, 5, autoheal="true"),
    ]
    found = expand([selector("auto", autoheal="true")], [single("db", name="postgres")], containers)
    assert {n: p.match.identity[1] for n, p in found.policies.items()} == {
        "web": "shop/web/1",
        "blog-web-1": "blog/web/1",
        "shop-web-2": "shop/web/2",
        "shop-db-1": "shop/db/1",  # `db` is a policy's name
    }


def test_names_given_before_stay_with_their_containers():
    containers = [
        composed("old", "shop", "web", 1, 10, autoheal="true"),
        composed("new", "blog", "web", 1, 30, autoheal="true"),
    ]
    before = {("compose", "blog/web/1"): "web"}  # the blog's web came first, to an agent
    found = expand([selector("auto", autoheal="true")], [], containers, before)
    assert found.policies["web"].match.identity == ("compose", "blog/web/1")
    assert found.policies["shop-web-1"].match.identity == ("compose", "shop/web/1")
    # A policy that takes the name since wins it back.
    found = expand(
        [selector("auto", autoheal="true")], [single("web", name="x")], containers, before
    )
    assert found.policies["blog-web-1"].match.identity == ("compose", "blog/web/1")


def test_a_policy_for_one_service_wins_and_the_more_specific_selector_next():
    containers = [
        container("a", "api", 1, autoheal="true", tier="front"),
        container("b", "batch", 2, autoheal="true"),
        container("c", "cache", 3, autoheal="true", tier="front"),
    ]
    wide, narrow = selector("all-of-them"), selector("front", autoheal="true", tier="front")
    auto = selector("auto", autoheal="true")
    found = expand([wide, auto, narrow], [single("the-api", name="api")], containers)
    assert {n: p.selected_by for n, p in found.policies.items()} == {
        "batch": "auto",
        "cache": "front",
    }
    assert found.conflicts == [
        Conflict("api", "front", "the-api", PREFERS_SINGLE),
        Conflict("api", "auto", "the-api", PREFERS_SINGLE),
        Conflict("api", "all-of-them", "the-api", PREFERS_SINGLE),
        Conflict("batch", "all-of-them", "auto", MORE_SPECIFIC),
        Conflict("cache", "auto", "front", MORE_SPECIFIC),
        Conflict("cache", "all-of-them", "front", MORE_SPECIFIC),
    ]


def test_two_selectors_as_specific_go_by_name_and_a_nameless_container_is_said():
    containers = [container("a", "web", 1, x="1", y="1"), container("b", "zeta", 2, x="1")]
    found = expand(
        [selector("b-sel", x="1"), selector("a-sel", y="1")],
        [single("web", name="zzz")],
        containers,
    )
    # `web` is taken by a policy whose own container is elsewhere; `web` is also the
    # container's name: nothing is left to call it.
    assert found.policies.keys() == {"zeta"}
    assert Conflict("web", "b-sel", "a-sel", MORE_SPECIFIC) in found.conflicts
    assert Conflict("web", "a-sel", "", NAME_TAKEN) in found.conflicts


def test_one_off_containers_are_never_selected_and_identity_survives_recreation():
    run = container(
        "r", "shop-web-run-1", 1, autoheal="true", **{"com.docker.compose.oneoff": "True"}
    )
    assert expand([selector("auto", autoheal="true")], [], [run]).policies == {}
    before = composed("x1", "shop", "web", 1, 10)
    after = composed("x2", "shop", "web", 1, 99)
    assert identity_of(before) == identity_of(after) == ("compose", "shop/web/1")
    assert identity_of(container("y", "cron", 1)) == ("name", "cron")
