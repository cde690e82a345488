"""keeper.py: which due intents still name a container of their service (pure)."""

from supervisor.engine import ContainerInfo
from supervisor.journal import COMPOSE, CONTAINER, DEPENDENT, Intent
from supervisor.keeper import belongs
from supervisor.policy import Match, Policy

WEB = Policy("web", Match(compose_service="web"))
WEB_LABELS = {"com.docker.compose.service": "web", "com.docker.compose.project": "demo"}
web = ContainerInfo("w1", "demo-web-1", labels=WEB_LABELS)
worker = ContainerInfo(
    "k1",
    "demo-worker-1",
    labels={
        "com.docker.compose.service": "worker",
        "com.docker.compose.project": "demo",
        "com.docker.compose.depends_on": "web:service_healthy:false",
    },
)
stranger = ContainerInfo("s1", "database", labels={"role": "db"})


def intent(kind: str, container_id: str) -> Intent:
    return Intent(container_id, "web", kind, container_id, 5.0)


def test_an_own_intent_starts_only_a_container_the_policy_still_matches():
    assert belongs(intent(CONTAINER, "w1"), web, WEB, [web])
    assert not belongs(intent(CONTAINER, "s1"), stranger, WEB, [web, stranger])


def test_a_dependent_intent_starts_only_what_still_depends_on_the_service():
    assert belongs(intent(DEPENDENT, "k1"), worker, WEB, [web, worker])
    assert not belongs(intent(DEPENDENT, "s1"), stranger, WEB, [web, stranger])
    # The service's own container is not known (down, or being recreated): nothing to check
    # against, so what the agent stopped is started again.
    assert belongs(intent(DEPENDENT, "s1"), stranger, WEB, [stranger])


def test_a_compose_intent_is_the_services_own_by_construction():
    assert belongs(Intent("compose:web", "web", COMPOSE, None, 5.0), stranger, WEB, [])
