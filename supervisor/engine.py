"""The Docker adapter: list and inspect containers, find a service's container, stop and start.

The only module that imports `docker`. Every error from the SDK or its HTTP layer is wrapped
into EngineUnreachable, ContainerGone or EngineError here. It decides nothing: it observes and
it acts when told. It counts the API calls it makes, so their cost can be measured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import docker
import docker.errors
import docker.utils
import requests.exceptions

from .errors import ContainerGone, EngineError, EngineUnreachable
from .policy import Match, Policy
from .status import (
    REASON_AMBIGUOUS,
    REASON_CREATED,
    REASON_DEAD,
    REASON_ENGINE_UNREACHABLE,
    REASON_EXITED,
    REASON_MISSING,
    REASON_OOM_KILLED,
    Status,
    classify_state,
)

DOWN_REASONS = frozenset(
    {REASON_MISSING, REASON_CREATED, REASON_EXITED, REASON_OOM_KILLED, REASON_DEAD}
)

LABEL_COMPOSE_SERVICE = "com.docker.compose.service"
LABEL_COMPOSE_PROJECT = "com.docker.compose.project"
LABEL_COMPOSE_ONEOFF = "com.docker.compose.oneoff"


@dataclass(frozen=True)
class ContainerInfo:
    """What a listing tells about one container, and its inspected State when known."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: frozenset[int] = frozenset()
    state: Mapping[str, Any] | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class Observation:
    """One look at a service: its status, why, and the container behind it."""

    status: Status
    reason: str | None
    container: ContainerInfo | None = None
    started_at: float | None = None
    detail: str | None = None

    @property
    def is_healthy(self) -> bool:
        return self.status is Status.RUNNING

    @property
    def is_down(self) -> bool:
        """No process runs: the container is missing, created, exited or dead."""
        return self.reason in DOWN_REASONS


def discover(
    match: Match, project: str | None, containers: Iterable[ContainerInfo]
) -> list[ContainerInfo]:
    """Return the containers found by the first match key that finds any, in schema order.

    compose_service, then label, then name, then port. Compose one-off containers (`compose
    run`) are never a service's container. A name that equals the key exactly wins over names
    that only contain it. More than one result means the match is ambiguous.
    """
    candidates = [c for c in containers if c.labels.get(LABEL_COMPOSE_ONEOFF) != "True"]

    def by_name(c: ContainerInfo) -> bool:
        return match.name in c.name

    finders = []
    if match.compose_service is not None:
        finders.append(
            lambda c: (
                c.labels.get(LABEL_COMPOSE_SERVICE) == match.compose_service
                and (project is None or c.labels.get(LABEL_COMPOSE_PROJECT) == project)
            )
        )
    if match.labels:
        finders.append(lambda c: all(c.labels.get(k) == v for k, v in match.labels.items()))
    if match.name is not None:
        finders.append(by_name)
    if match.port is not None:
        finders.append(lambda c: match.port in c.ports)
    for finds in finders:
        found = [c for c in candidates if finds(c)]
        if len(found) > 1 and finds is by_name:
            exact = [c for c in found if c.name == match.name]
            if len(exact) == 1:
                return exact
        if found:
            return found
    return []


def parse_started_at(state: Mapping[str, Any] | None) -> float | None:
    """Docker's StartedAt as epoch seconds, or None when the container never started."""
    text = (state or {}).get("StartedAt")
    if not text or text.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class Engine:
    """A thread-safe, lazily connected Docker engine client."""

    def __init__(self, base_url: str | None = None, timeout_s: float = 15.0) -> None:
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def api_calls(self) -> int:
        """How many engine API requests this adapter has made."""
        return self._calls

    def _client(self) -> docker.APIClient:
        with self._lock:
            if self._api is None:
                kwargs = docker.utils.kwargs_from_env()
                if self._base_url:
                    kwargs["base_url"] = self._base_url
                self._calls += 1  # version negotiation
                try:
                    self._api = docker.APIClient(version="auto", timeout=self._timeout_s, **kwargs)
                except docker.errors.DockerException as e:
                    raise EngineUnreachable(f"Docker engine did not answer: {e}") from None
            return self._api

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        api = self._client()
        with self._lock:
            self._calls += 1
        try:
            return getattr(api, method)(*args, **kwargs)
        except docker.errors.NotFound as e:
            raise ContainerGone(str(e.explanation or e)) from None
        except docker.errors.APIError as e:
            raise EngineError(str(e.explanation or e)) from None
        except (requests.exceptions.RequestException, docker.errors.DockerException) as e:
            self._forget_client()
            raise EngineUnreachable(f"Docker engine did not answer: {e}") from None

    def _forget_client(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()

    def ping(self) -> None:
        self._call("ping")

    def list_containers(self) -> list[ContainerInfo]:
        """Every container, running or not, from one listing (no State yet)."""
        rows = self._call("containers", all=True)
        return [_summary(row) for row in rows]

    def inspect(self, container: ContainerInfo) -> ContainerInfo:
        """The same container with its current State."""
        data = self._call("inspect_container", container.id)
        name = (data.get("Name") or container.name).lstrip("/")
        return ContainerInfo(container.id, name, container.labels, container.ports, data["State"])

    def observe(self, policy: Policy, containers: list[ContainerInfo] | None = None) -> Observation:
        """Find the policy's container and classify it. Never raises for engine trouble."""
        try:
            if containers is None:
                containers = self.list_containers()
            project = policy.compose.project if policy.compose else None
            found = discover(policy.match, project, containers)
            if len(found) > 1:
                names = ", ".join(sorted(c.name for c in found))
                return Observation(Status.ERROR, REASON_AMBIGUOUS, detail=f"matches {names}")
            if not found:
                status, reason = classify_state(None)
                return Observation(status, reason)
            container = self.inspect(found[0])
        except ContainerGone:
            status, reason = classify_state(None)
            return Observation(status, reason)
        except EngineError as e:
            return Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE, detail=str(e))
        status, reason = classify_state(container.state)
        return Observation(status, reason, container, parse_started_at(container.state))

    def stop(self, container: ContainerInfo, timeout_s: float) -> None:
        """Stop gracefully, SIGKILL after `timeout_s`."""
        self._call("stop", container.id, timeout=max(0, round(timeout_s)))

    def start(self, container: ContainerInfo) -> None:
        self._call("start", container.id)

    def close(self) -> None:
        self._forget_client()


def _summary(row: Mapping[str, Any]) -> ContainerInfo:
    names = row.get("Names") or []
    name = names[0].lstrip("/") if names else row.get("Id", "")[:12]
    ports: set[int] = set()
    for port in row.get("Ports") or []:
        for key in ("PrivatePort", "PublicPort"):
            if isinstance(port.get(key), int):
                ports.add(port[key])
    return ContainerInfo(row["Id"], name, dict(row.get("Labels") or {}), frozenset(ports))
