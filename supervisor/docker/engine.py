"""The Docker adapter: list and inspect containers, find a service's container, stop and start.

The only module that imports `docker`. Every error from the SDK or its HTTP layer is wrapped
into EngineUnreachable, ContainerGone or EngineError here. It decides nothing: it observes and
it acts when told. It counts the API calls it makes, so their cost can be measured.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import docker.utils
import psutil
import requests.exceptions

from ..config.policy import Match, Policy
from ..errors import ContainerGone, EngineError, EngineUnreachable, ExecTimedOut
from .states import (
    REASON_AMBIGUOUS,
    REASON_CREATED,
    REASON_DEAD,
    REASON_ENGINE_UNREACHABLE,
    REASON_EXITED,
    REASON_HEALTH_STARTING,
    REASON_MISSING,
    REASON_OOM_KILLED,
    REASON_UNHEALTHY,
    Status,
    classify_state,
)

DOWN_REASONS = frozenset(
    {REASON_MISSING, REASON_CREATED, REASON_EXITED, REASON_OOM_KILLED, REASON_DEAD}
)

if TYPE_CHECKING:
    from .view import ContainerView

EXEC_POLL_FIRST_S = 0.02
EXEC_POLL_MAX_S = 0.2

LABEL_COMPOSE_SERVICE = "com.docker.compose.service"
LABEL_COMPOSE_PROJECT = "com.docker.compose.project"
LABEL_COMPOSE_ONEOFF = "com.docker.compose.oneoff"
LABEL_COMPOSE_NUMBER = "com.docker.compose.container-number"
LABEL_COMPOSE_CONFIG_FILES = "com.docker.compose.project.config_files"
SWARM_LABEL_PREFIX = "com.docker.swarm."
# Why a container is not the agent's to stop and start (heal.refused's `why`), in words.
REFUSED_SWARM_TASK = "swarm_task"
REFUSED_ONEOFF = "compose_run_oneoff"
REFUSED_OTHER_PROJECT = "other_compose_project"
REFUSALS = {
    REFUSED_SWARM_TASK: "not healed: a Swarm task, which Swarm replaces itself",
    REFUSED_ONEOFF: "not healed: a compose run one-off",
    REFUSED_OTHER_PROJECT: "not healed: the policy's compose file or project is not this "
    "container's (fix compose.file or compose.project)",
}


@dataclass(frozen=True)
class ContainerInfo:
    """What a listing tells about one container, and its inspected State when known."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: frozenset[int] = frozenset()
    state: Mapping[str, Any] | None = None
    restart_policy: str | None = None
    restart_max_retries: int = 0
    restart_count: int = 0
    addresses: tuple[str, ...] = ()
    network_mode: str | None = None
    created: float = 0.0  # epoch seconds
    # How long one health check may take to come round: its interval plus its timeout.
    health_check_s: float = 60.0
    # Its own stop contract: Config.StopTimeout (`--stop-timeout`, compose's
    # stop_grace_period); None when it set none (the engine's default applies).
    stop_timeout_s: int | None = None
    auto_remove: bool = False  # `--rm`: a stop that ends it removes it


def identity_of(container: ContainerInfo) -> tuple[str, str]:
    """What stays the same when a container is re-created: its compose project, service and
    replica number, or else its name."""
    labels = container.labels
    project, service = labels.get(LABEL_COMPOSE_PROJECT), labels.get(LABEL_COMPOSE_SERVICE)
    if project and service:
        return ("compose", f"{project}/{service}/{labels.get(LABEL_COMPOSE_NUMBER) or '1'}")
    return ("name", container.name)


@dataclass(frozen=True)
class Observation:
    """One look at a service: its status, why, and the container behind it."""

    status: Status
    reason: str | None
    container: ContainerInfo | None = None
    started_at: float | None = None
    detail: str | None = None
    manual_stop: bool = False

    @property
    def is_healthy(self) -> bool:
        return self.status is Status.RUNNING

    @property
    def is_down(self) -> bool:
        """No process runs: the container is missing, created, exited or dead."""
        return self.reason in DOWN_REASONS


def discover(
    match: Match,
    project: str | None,
    containers: Iterable[ContainerInfo],
    compose_file: Path | None = None,
) -> list[ContainerInfo]:
    """Return the containers found by the first match key that finds any, in schema order.

    compose_service, then label, then name, then port. Compose one-off containers (`compose
    run`) are never a service's container. A compose_service is of `project`, or without
    one of `compose_file` (the policy's): never a namesake of another stack. A name that
    equals the key exactly wins over names that only contain it. More than one result
    means the match is ambiguous.
    """
    candidates = [c for c in containers if c.labels.get(LABEL_COMPOSE_ONEOFF) != "True"]
    if match.identity is not None:  # an expanded service: its one container, nothing else
        return [c for c in candidates if identity_of(c) == match.identity]

    def by_name(c: ContainerInfo) -> bool:
        return match.name in c.name

    finders = []
    if match.compose_service is not None:
        finders.append(
            lambda c: (
                c.labels.get(LABEL_COMPOSE_SERVICE) == match.compose_service
                and (project is None or c.labels.get(LABEL_COMPOSE_PROJECT) == project)
                and (
                    project is not None or compose_file is None or of_compose_file(c, compose_file)
                )
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


LABEL_COMPOSE_DEPENDS_ON = "com.docker.compose.depends_on"
DEPENDS_ON = "depends_on"
SHARES_NETWORK = "shares_network"


def find_dependents(
    healed: ContainerInfo, earlier_ids: set[str], containers: Iterable[ContainerInfo]
) -> list[tuple[ContainerInfo, str]]:
    """The containers that depend on `healed`, and why: they share its network namespace
    (`network_mode: service:X` or `container:X`, by its id now or before, or its name), or
    their Compose depends_on label names its service in the same project. Shares first."""
    targets = {f"container:{i}" for i in {healed.id, *earlier_ids}}
    targets.add(f"container:{healed.name}")
    service = healed.labels.get(LABEL_COMPOSE_SERVICE)
    project = healed.labels.get(LABEL_COMPOSE_PROJECT)
    found: list[tuple[ContainerInfo, str]] = []
    for c in containers:
        if c.id == healed.id or refusal_of(c) is not None:
            continue
        if c.network_mode in targets:
            found.append((c, SHARES_NETWORK))
        elif service and c.labels.get(LABEL_COMPOSE_PROJECT) == project:
            names = {
                item.split(":", 1)[0]
                for item in c.labels.get(LABEL_COMPOSE_DEPENDS_ON, "").split(",")
                if item
            }
            if service in names:
                found.append((c, DEPENDS_ON))
    return sorted(found, key=lambda pair: (pair[1] != SHARES_NETWORK, pair[0].name))


# A depends_on condition met by a one-shot that ran and exited 0 (a migration): down is done.
COMPLETES = "service_completed_successfully"


@dataclass(frozen=True)
class Dependency:
    """A container another one needs running: its network parent or a depends_on service."""

    name: str
    container: ContainerInfo | None  # None: no such container (a network parent gone)
    completes: bool = False  # depends_on's service_completed_successfully: exit 0 is done


def has_dependencies(container: ContainerInfo) -> bool:
    """Whether its configuration names anything it needs (cheap: no listing is read)."""
    mode = container.network_mode or ""
    return mode.startswith("container:") or bool(container.labels.get(LABEL_COMPOSE_DEPENDS_ON))


def dependencies_of(
    container: ContainerInfo, containers: Iterable[ContainerInfo]
) -> list[Dependency]:
    """What `container` needs running, from its own configuration: the container whose
    network namespace it joins (`network_mode: container:X`, compose's `service:X`), and
    the services of its project its depends_on label names. A depends_on service with no
    container is left out: an optional one (`required: false`) is never created, and the
    label does not say which are. Parent first."""
    listed = list(containers)
    found: list[Dependency] = []
    mode = container.network_mode or ""
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        parent = next((c for c in listed if ref in (c.id, c.name)), None)
        found.append(Dependency(parent.name if parent else ref[:12], parent))
    project = container.labels.get(LABEL_COMPOSE_PROJECT)
    for item in container.labels.get(LABEL_COMPOSE_DEPENDS_ON, "").split(","):
        service, _, rest = item.partition(":")
        if not service or not project:
            continue
        for c in listed:
            labels = c.labels
            if (
                labels.get(LABEL_COMPOSE_PROJECT) == project
                and labels.get(LABEL_COMPOSE_SERVICE) == service
                and labels.get(LABEL_COMPOSE_ONEOFF) != "True"
                and c.id != container.id
            ):
                found.append(Dependency(service, c, rest.split(":")[0] == COMPLETES))
    return found


def dependency_down(dependency: Dependency) -> str | None:
    """Why a dependency is down now (the reason its status shows), or None: it runs, or it
    is a one-shot that completed. A running dependency that is unhealthy is not down."""
    if dependency.container is None:
        return REASON_MISSING
    state = dependency.container.state
    if state is None:
        return None  # not inspected: cannot tell, so not waited for
    status, reason = classify_state(state)
    if status is Status.RUNNING or reason in (REASON_HEALTH_STARTING, REASON_UNHEALTHY):
        return None
    if dependency.completes and reason == REASON_EXITED and status is Status.STOPPED:
        return None  # exited 0: what it was run for is done
    return reason or str(status)


def refusal_of(container: ContainerInfo | None) -> str | None:
    """Why the agent must never stop or start this container, or None: a Swarm task (the
    orchestrator replaces it; acting would fight it) or a `compose run` one-off (an
    operator's command, not a service)."""
    if container is None:
        return None
    if any(key.startswith(SWARM_LABEL_PREFIX) for key in container.labels):
        return REFUSED_SWARM_TASK
    if container.labels.get(LABEL_COMPOSE_ONEOFF) == "True":
        return REFUSED_ONEOFF
    return None


def refusal_for(policy: Policy, container: ContainerInfo | None) -> str | None:
    """Why this policy must not act on this container, or None: a container no one may act
    on (refusal_of), or one of another compose project than the policy's compose file or
    project (acting on it would stop the wrong stack, or create a second one)."""
    why = refusal_of(container)
    if why is not None or policy.compose is None or container is None:
        return why
    project = container.labels.get(LABEL_COMPOSE_PROJECT)
    if not project:
        return None  # not a compose container: nothing to compare
    if policy.compose.project and policy.compose.project != project:
        return REFUSED_OTHER_PROJECT
    if not of_compose_file(container, policy.compose.file):
        return REFUSED_OTHER_PROJECT
    return None


def of_compose_file(container: ContainerInfo, file: Path) -> bool:
    """Whether compose made this container from `file` (its config_files label); a
    container without the label (made by hand) cannot tell, and is not excluded."""
    listed = container.labels.get(LABEL_COMPOSE_CONFIG_FILES)
    if not listed:
        return True
    return str(file) in listed.split(",") or str(file) in _real_paths(listed)


@functools.lru_cache(maxsize=1024)
def _real_paths(listed: str) -> frozenset[str]:
    """The label's files with links resolved (the policy's file is resolved at load)."""
    return frozenset(os.path.realpath(f) for f in listed.split(",") if f)


# How long the engine waits before SIGKILL when the container set no StopTimeout (Linux).
ENGINE_STOP_TIMEOUT_S = 10


def stop_timeout_for(container: ContainerInfo | None, policy_s: float | None) -> int | None:
    """How long a stop waits before SIGKILL, in whole seconds: the policy's when it sets one
    (rounded up: never less than it asks), else the container's own StopTimeout. None when
    neither says (the engine then applies the container's own, or its default)."""
    if policy_s is not None:
        return math.ceil(policy_s)
    if container is not None and container.stop_timeout_s is not None:
        return container.stop_timeout_s
    return None


def stop_wait_s(container: ContainerInfo | None, policy_s: float | None) -> int:
    """The longest a stop of `container` may take before its SIGKILL."""
    timeout_s = stop_timeout_for(container, policy_s)
    return ENGINE_STOP_TIMEOUT_S if timeout_s is None else max(0, timeout_s)


def parse_started_at(state: Mapping[str, Any] | None) -> float | None:
    """Docker's StartedAt as epoch seconds, or None when the container never started."""
    return _parse_time((state or {}).get("StartedAt"))


def parse_finished_at(state: Mapping[str, Any] | None) -> float | None:
    """Docker's FinishedAt as epoch seconds, or None when the container never finished."""
    return _parse_time((state or {}).get("FinishedAt"))


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def exited_since(state: Mapping[str, Any] | None, since: float | None) -> int | None:
    """The exit code of a container that started after `since` and has exited since then,
    or None (running, or its state still shows the stop before that start)."""
    if since is None or state is None or state.get("Running") or state.get("Restarting"):
        return None
    started, finished = parse_started_at(state), parse_finished_at(state)
    if started is None or finished is None or started <= since or finished < started:
        return None
    return int(state.get("ExitCode") or 0)


def was_down_before(state: Mapping[str, Any] | None, at: float) -> bool:
    """Whether the container was already down at `at` (it finished before then). A
    container that exists, is not running and finished at or after `at` was taken down
    then; one with no FinishedAt is not known to have been down."""
    if state is None or state.get("Running"):
        return False
    finished = parse_finished_at(state)
    return finished is not None and finished < at


def observe_in(
    policy: Policy,
    containers: Iterable[ContainerInfo],
    is_manual_stop: Callable[[str], bool] = lambda container_id: False,
) -> Observation:
    """A service's Observation from known containers (with their State). Pure."""
    found = discover(policy.match, policy.project, containers, policy.compose_file)
    if len(found) > 1:
        names = ", ".join(sorted(c.name for c in found))
        return Observation(Status.ERROR, REASON_AMBIGUOUS, detail=f"matches {names}")
    if not found:
        status, reason = classify_state(None)
        return Observation(status, reason)
    container = found[0]
    status, reason = classify_state(container.state)
    return Observation(
        status,
        reason,
        container,
        parse_started_at(container.state),
        manual_stop=is_manual_stop(container.id),
    )


class Engine:
    """A thread-safe, lazily connected Docker engine client."""

    def __init__(self, base_url: str | None = None, timeout_s: float = 15.0) -> None:
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._calls = 0
        self.view: ContainerView | None = None

    def attach_view(self, view: ContainerView) -> None:
        """Read containers from `view` from now on (no API call per observation)."""
        self.view = view

    @property
    def api_calls(self) -> int:
        """How many engine API requests this adapter has made."""
        return self._calls

    def _client(self) -> docker.APIClient:
        with self._lock:
            if self._api is not None:
                return self._api
        # Version negotiation is a request: made outside the lock, so a slow engine delays
        # only this caller (the heartbeat's short cut still holds for the others).
        kwargs = docker.utils.kwargs_from_env()
        if self._base_url:
            kwargs["base_url"] = self._base_url
        try:
            api = docker.APIClient(version="auto", timeout=self._timeout_s, **kwargs)
        except docker.errors.DockerException as e:
            raise EngineUnreachable(f"Docker engine did not answer: {e}") from None
        with self._lock:
            self._calls += 1  # version negotiation
            if self._api is None:
                self._api, api = api, None
            chosen = self._api
        if api is not None:
            api.close()  # another thread connected first
        return chosen

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

    def ping(self, timeout_s: float = 3.0) -> None:
        """Ask the engine whether it answers, within `timeout_s` (a frozen engine does not)."""
        api = self._client()
        with self._lock:
            self._calls += 1
        try:
            api.get(f"{api.base_url}/_ping", timeout=timeout_s).raise_for_status()
        except requests.exceptions.RequestException as e:
            raise EngineUnreachable(
                f"Docker engine did not answer within {timeout_s:g}s: {e}"
            ) from None

    def list_rows(self) -> list[Mapping[str, Any]]:
        """One listing of every container, running or not, as the API returns it."""
        return self._call("containers", all=True)

    def list_containers(self) -> list[ContainerInfo]:
        """Every container from one listing (no State yet)."""
        return [_summary(row) for row in self.list_rows()]

    def inspect_container(self, container_id: str) -> ContainerInfo:
        """One container, fully: name, labels, ports and State."""
        return _from_inspect(self._call("inspect_container", container_id))

    def environment_of(self, container: str) -> list[str]:
        """A container's environment (VAR=VALUE), by name or id, as its inspect says."""
        data = self._call("inspect_container", container)
        return list((data.get("Config") or {}).get("Env") or [])

    def open_events(self, actions: tuple[str, ...]) -> Any:
        """Open the container event stream, filtered to `actions`; iterate it, close() it."""
        filters = {"type": ["container"], "event": list(actions)}
        return self._call("events", filters=filters, decode=True)

    def observe(self, policy: Policy, containers: list[ContainerInfo] | None = None) -> Observation:
        """Find the policy's container and classify it. Never raises for engine trouble.

        With a view attached, this reads the view and makes no API call.
        """
        view = self.view
        try:
            if view is not None:
                if not view.synced:
                    raise EngineUnreachable("not connected to the Docker engine")
                return observe_in(policy, view.containers(), view.is_manual_stop)
            if containers is None:
                containers = self.list_containers()
            seen = observe_in(policy, containers)
            if seen.container is None:
                return seen
            container = self.inspect_container(seen.container.id)
        except ContainerGone:
            status, reason = classify_state(None)
            return Observation(status, reason)
        except EngineError as e:
            return Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE, detail=str(e))
        status, reason = classify_state(container.state)
        return Observation(status, reason, container, parse_started_at(container.state))

    def containers_now(self) -> list[ContainerInfo]:
        """Every container with its details: from the view, or listed and inspected."""
        if self.view is not None and self.view.synced:
            return self.view.containers()
        found = []
        for summary in self.list_containers():
            with contextlib.suppress(ContainerGone):
                found.append(self.inspect_container(summary.id))
        return found

    def wait_change(self, timeout_s: float) -> None:
        """Sleep until the view changes (or `timeout_s` passes); plain sleep without a view."""
        if self.view is not None and self.view.synced:
            self.view.wait_change(timeout_s)
        else:
            time.sleep(timeout_s)

    def acting_on(
        self,
        container_ids: tuple[str, ...] = (),
        project: str | None = None,
        services: tuple[str, ...] = (),
        stopping: bool = True,
    ):
        """Mark what the agent is about to do, so the view takes its events as the agent's
        (a start marks no stop events: a stop right after it is someone else's)."""
        if self.view is None:
            return contextlib.nullcontext()
        return self.view.acting_on(container_ids, project, services, stopping)

    def exec_probe(self, container_id: str, argv: list[str], timeout_s: float) -> tuple[int, str]:
        """Run argv inside the container (no shell), detached; return (exit code, "").

        At the deadline the command's process (and what it started) is killed from the host,
        so a hanging probe leaves no process, thread or connection behind, and EngineError
        says it timed out.
        """
        deadline = time.monotonic() + timeout_s
        exec_id = self._call("exec_create", container_id, argv, stdout=False, stderr=False)["Id"]
        self._call("exec_start", exec_id, detach=True)
        pause_s = EXEC_POLL_FIRST_S
        while True:
            info = self._call("exec_inspect", exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return (-1 if code is None else int(code)), ""
            if time.monotonic() >= deadline:
                killed = kill_process_tree(int(info.get("Pid") or 0))
                raise ExecTimedOut(
                    f"timed out after {timeout_s:g}s: {' '.join(argv)}"
                    + ("" if killed else " (its process could not be killed)")
                )
            time.sleep(min(pause_s, max(0.0, deadline - time.monotonic())))
            pause_s = min(pause_s * 2, EXEC_POLL_MAX_S)

    def stop(self, container: ContainerInfo, timeout_s: int | None) -> None:
        """Stop gracefully, SIGKILL after `timeout_s` (None: the container's own StopTimeout,
        which the engine applies). The request waits as long as the stop may take."""
        with self.acting_on((container.id,)):
            self._call("stop", container.id, **_timeout_kwargs(timeout_s))

    def start(self, container: ContainerInfo) -> None:
        with self.acting_on((container.id,), stopping=False):
            self._call("start", container.id)

    def restart(self, container: ContainerInfo, timeout_s: int | None) -> None:
        """The engine's own restart: stop (SIGKILL after `timeout_s`, None: the container's
        own) and start in one call. A `--rm` container survives it; a stop would remove it."""
        with self.acting_on((container.id,)):
            self._call("restart", container.id, **_timeout_kwargs(timeout_s))

    def close(self) -> None:
        self._forget_client()


def _timeout_kwargs(timeout_s: int | None) -> dict[str, int]:
    """A stop's or restart's timeout for docker-py, which adds it (10 s when none is given)
    to the request's HTTP timeout; none given, the engine applies the container's own."""
    return {} if timeout_s is None else {"timeout": max(0, int(timeout_s))}


def _from_inspect(data: Mapping[str, Any]) -> ContainerInfo:
    config = data.get("Config") or {}
    ports: set[int] = set()
    exposed = list((config.get("ExposedPorts") or {}).keys())
    published = (data.get("NetworkSettings") or {}).get("Ports") or {}
    for key in [*exposed, *published.keys()]:
        with contextlib.suppress(ValueError):
            ports.add(int(key.split("/")[0]))
    for bindings in published.values():
        for binding in bindings or []:
            with contextlib.suppress(ValueError, TypeError):
                ports.add(int(binding.get("HostPort")))
    host = data.get("HostConfig") or {}
    restart = host.get("RestartPolicy") or {}
    stop_timeout = config.get("StopTimeout")
    if not isinstance(stop_timeout, int) or stop_timeout < 0:
        stop_timeout = None  # none set (or "wait forever", which the agent does not ask)
    return ContainerInfo(
        id=data["Id"],
        name=(data.get("Name") or data["Id"][:12]).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        ports=frozenset(ports),
        state=data.get("State"),
        restart_policy=restart.get("Name") or None,
        restart_max_retries=int(restart.get("MaximumRetryCount") or 0),
        restart_count=int(data.get("RestartCount") or 0),
        addresses=_addresses(data),
        network_mode=host.get("NetworkMode") or None,
        created=_parse_time(data.get("Created")) or 0.0,
        health_check_s=_health_check_s(config.get("Healthcheck")),
        stop_timeout_s=stop_timeout,
        auto_remove=bool(host.get("AutoRemove")),
    )


def _health_check_s(check: Mapping[str, Any] | None) -> float:
    """Interval plus timeout of a health check (Docker's defaults, 30 s each, for zeros)."""
    check = check or {}
    interval = (check.get("Interval") or 30_000_000_000) / 1e9
    timeout = (check.get("Timeout") or 30_000_000_000) / 1e9
    return interval + timeout


def _addresses(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The container's IP addresses, one per network it is attached to."""
    settings = data.get("NetworkSettings") or {}
    found = [settings.get("IPAddress")]
    found += [n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n]
    return tuple(dict.fromkeys(a for a in found if a))


def _summary(row: Mapping[str, Any]) -> ContainerInfo:
    names = row.get("Names") or []
    name = names[0].lstrip("/") if names else row.get("Id", "")[:12]
    ports: set[int] = set()
    for port in row.get("Ports") or []:
        for key in ("PrivatePort", "PublicPort"):
            if isinstance(port.get(key), int):
                ports.add(port[key])
    created = row.get("Created")
    return ContainerInfo(
        row["Id"],
        name,
        dict(row.get("Labels") or {}),
        frozenset(ports),
        created=float(created) if isinstance(created, int | float) else 0.0,
    )


def kill_process_tree(pid: int) -> bool:
    """SIGKILL a process and its descendants (an exec probe's, seen from the host)."""
    if pid <= 0:
        return False
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.Error:
        return False
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return True
