"""Fixtures for tests against a real Docker engine. Everything they create is labelled with
this run's id and removed afterwards (containers and networks; never volumes' data)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
from docker.models.containers import _create_container_args

from supervisor.docker.compose import find_compose_command
from tests.support import REPO, AgentProcess, engine_client

IMAGE = "docker-supervisor/busybox:local"
RUN_ID = uuid.uuid4().hex[:8]
TEST_LABEL = "docker-supervisor.test"
SECOND_NS = 1_000_000_000


def pytest_collection_modifyitems(items):
    """Tests that restart the engine run last, so they disturb no other test."""
    items.sort(key=lambda item: item.get_closest_marker("engine_restart") is not None)


@pytest.fixture(scope="session")
def client():
    try:
        client = engine_client()
        client.ping()
    except docker.errors.DockerException as e:
        pytest.fail(f"no Docker engine answers ({e}); `make test` starts one", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def image(client, tmp_path_factory):
    """The busybox image the demo uses, built the same way if `make images` has not run."""
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        context = tmp_path_factory.mktemp("busybox")
        shutil.copy("/bin/busybox", context / "busybox")
        subprocess.run(
            [
                "docker",
                "build",
                "-q",
                "-t",
                IMAGE,
                "-f",
                str(REPO / "compose/demo/busybox.Dockerfile"),
                str(context),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return IMAGE


def file_healthcheck(interval_s: float = 1, retries: int = 1, start_period_s: float = 0):
    """Healthy while /tmp/healthy exists; a test removes the file to make it unhealthy."""
    check = {
        "test": ["CMD", "test", "-f", "/tmp/healthy"],
        "interval": int(interval_s * SECOND_NS),
        "timeout": SECOND_NS,
        "retries": retries,
    }
    if start_period_s:
        check["start_period"] = int(start_period_s * SECOND_NS)
    return check


HEALTHY_CMD = ["sh", "-c", "touch /tmp/healthy; exec sleep 86400"]


class Containers:
    def __init__(self, client, image: str, test_name: str) -> None:
        self.client = client
        self.image = image
        self.prefix = f"dst-{RUN_ID}-{test_name}"[:40]
        self.created = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def run(self, suffix: str, command=None, start: bool = True, **kwargs):
        labels = {TEST_LABEL: RUN_ID, **kwargs.pop("labels", {})}
        kwargs.setdefault("init", True)
        stop_timeout = kwargs.pop("stop_timeout", None)
        image = kwargs.pop("image", self.image)
        if command is None and image == self.image:
            command = HEALTHY_CMD  # another image runs its own command
        if stop_timeout is None:
            container = self.client.containers.create(
                image, command, name=self.name(suffix), labels=labels, **kwargs
            )
        else:
            # `--stop-timeout`: the API's create takes it, docker-py's high-level one does not.
            args = _create_container_args(
                {
                    "image": image,
                    "command": command,
                    "name": self.name(suffix),
                    "labels": labels,
                    "version": self.client.api._version,
                    **kwargs,
                }
            )
            made = self.client.api.create_container(**args, stop_timeout=stop_timeout)
            container = self.client.containers.get(made["Id"])
        self.created.append(container)
        if start:
            container.start()
        return container

    def remove_all(self) -> None:
        for container in self.created:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=False)


@pytest.fixture
def containers(client, image, request):
    made = Containers(
        client,
        image,
        request.node.name.replace("[", "-").replace("]", "").replace("_", "-").lower(),
    )
    yield made
    made.remove_all()


@pytest.fixture
def agent_env() -> dict[str, str]:
    """Environment every agent of a test gets on top of the test's own (a module may aim the
    agents elsewhere, through a socket proxy)."""
    return {}


@pytest.fixture
def agents(agent_env):
    """Start agents with `agents.start(policies_dir)`; every one is stopped afterwards."""
    started: list[AgentProcess] = []

    class Starter:
        def start(
            self, policies: Path, state_dir: Path, *extra: str, env: dict | None = None, **kw
        ) -> AgentProcess:
            agent = AgentProcess(
                policies, state_dir, *extra, env={**(env or {}), **agent_env}, **kw
            )
            started.append(agent)
            return agent

    yield Starter()
    for agent in started:
        agent.stop()
        agent.kill()


@pytest.fixture(scope="session")
def compose_cmd():
    return find_compose_command(os.environ.get("SUPERVISOR_COMPOSE_BIN"))


def container_state(client, container) -> dict:
    container.reload()
    return container.attrs["State"]


def health_of(client, container) -> str | None:
    return (container_state(client, container).get("Health") or {}).get("Status")


def supervise(agents, tmp_path: Path, service: str, container, heal: dict, *extra: str):
    """An agent supervising `container` as `service` (checked every second, with `heal`),
    started and past its first look of it running."""
    from tests.support import write_policy

    write_policy(
        tmp_path / "p", service, match={"name": container.name}, check={"interval": "1s"}, heal=heal
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state", *extra)
    agent.wait_event("service.status", service=service, status="running")
    return agent


def by_service(client, project: str, service: str):
    """The one container of a compose service of `project`."""
    [found] = client.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={service}",
            ]
        }
    )
    return found


def failing_streak(client, container) -> int:
    health = client.api.inspect_container(container.id)["State"].get("Health") or {}
    return int(health.get("FailingStreak") or 0)
