"""Containers as the agent reasons about them (pure): what a container is, which service
and identity it has, what it depends on, whose it is to heal, and what its state says.

No I/O: the adapter (engine.py) and the view fill these in; the core reads them.
"""

import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config.model import Match, Policy
from .states import (
    REASON_AMBIGUOUS,
    REASON_CREATED,
    REASON_DEAD,
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
    return parse_time((state or {}).get("StartedAt"))


def parse_finished_at(state: Mapping[str, Any] | None) -> float | None:
    """Docker's FinishedAt as epoch seconds, or None when the container never finished."""
    return parse_time((state or {}).get("FinishedAt"))


def parse_time(text: Any) -> float | None:
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
