"""ServiceManager: start, stop, restart, status and health of one service, and the heal steps.

It acts (through the engine and compose). The lifecycle commands (`start`, `stop`, `restart`)
wait for their end states, bounded; the heal cycle's steps (`stop_step`, `start_step`,
`restart_dependents`) each do one thing and return, and the agent's workers sequence them.
It never decides when to heal (the tracker and the gate do) and never schedules.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.model import Policy
from ..docker.compose import DEFAULT_COMPOSE_TIMEOUT_S, Compose, find_compose_command
from ..docker.containers import (
    LABEL_COMPOSE_ONEOFF,
    LABEL_COMPOSE_PROJECT,
    LABEL_COMPOSE_SERVICE,
    SHARES_NETWORK,
    ContainerInfo,
    Observation,
    find_dependents,
    parse_finished_at,
    parse_started_at,
    stop_timeout_for,
    stop_wait_s,
    was_down_before,
)
from ..docker.engine import Engine
from ..docker.states import Status
from ..errors import ComposeError, ContainerGone, EngineError, SupervisorError
from ..logs import log_event

log = logging.getLogger("supervisor.manager")

POLL_S = 0.25

# Why a heal cycle ended without a healthy container.
FAILED_NOT_READY = "not_ready"
FAILED_STOP = "stop_failed"
FAILED_START = "start_failed"
FAILED_GONE = "container_gone"
FAILED_TAKEN_OVER = "taken_over"
FAILED_EXITED = "exited"  # the container exited after the heal's start


@dataclass(frozen=True)
class DependentOutcome:
    container: str
    why: str  # engine.SHARES_NETWORK or engine.DEPENDS_ON
    action: str  # restarted, recreated, skipped or failed
    error: str | None = None
    detail: str | None = None  # why it was skipped


class ServiceManager:
    """The lifecycle of one service, as the policy describes it."""

    def __init__(
        self,
        policy: Policy,
        engine: Engine | None = None,
        compose: Compose | None = None,
        compose_bin: str | None = None,
        compose_timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.engine = engine or Engine()
        self._compose = compose
        self._compose_bin = compose_bin
        self._compose_timeout_s = compose_timeout_s
        self._clock = clock
        self._sleep = sleep

    @property
    def service(self) -> str:
        return self.policy.service

    def compose(self) -> Compose:
        """The compose runner, found on first use (only policies with compose need one)."""
        if self._compose is None:
            self._compose = Compose(
                find_compose_command(self._compose_bin), self._compose_timeout_s
            )
        return self._compose

    # The seed's interface: booleans and a Status.

    def observe(self) -> Observation:
        return self.engine.observe(self.policy)

    def get_service_status(self) -> Status:
        return self.observe().status

    def is_service_healthy(self) -> bool:
        return self.observe().is_healthy

    def start_service(self, stop_event: threading.Event | None = None) -> bool:
        """Bring the service up and wait until it is healthy; reuse it when it already is."""
        seen = self.observe()
        if seen.is_healthy:
            log_event(
                log,
                logging.INFO,
                "service.reused",
                "service already running",
                service=self.service,
                container=_name(seen.container),
            )
            return True
        try:
            if self.policy.compose is not None:
                ref = self.policy.compose
                self.compose().up(ref.file, self._project(seen.container))
            elif seen.container is not None:
                self.engine.start(seen.container)
            else:
                log_event(
                    log,
                    logging.ERROR,
                    "service.start_failed",
                    "no container and no compose file to create one",
                    service=self.service,
                    reason=seen.reason,
                )
                return False
        except SupervisorError as e:
            self._log_action_error("service.start_failed", "start failed", e)
            return False
        return self.wait_until_healthy(self.policy.heal.ready_timeout_s, stop_event).is_healthy

    def stop_service(self) -> bool:
        """Stop the service (the whole stack when compose is known) and confirm it stopped."""
        seen = self.observe()
        policy_s = self.policy.heal.stop_timeout_s
        try:
            if self.policy.compose is not None:
                ref = self.policy.compose
                grace_s = self._longest_stop_s(self._project_containers(seen.container))
                self.compose().stop(
                    ref.file, self._project(seen.container), policy_s, grace_s=grace_s
                )
            elif seen.container is not None:
                self.engine.stop(seen.container, stop_timeout_for(seen.container, policy_s))
        except SupervisorError as e:
            self._log_action_error("service.stop_failed", "stop failed", e)
            return False
        return self.observe().is_down

    def restart_service(self, stop_event: threading.Event | None = None) -> bool:
        """Stop, pause, start: the same cycle the agent uses to heal."""
        if not self.stop_service():
            return False
        _wait(stop_event, self.policy.heal.pause_s)
        return self.start_service(stop_event)

    # Waiting.

    def wait_until_healthy(
        self, timeout_s: float, stop_event: threading.Event | None = None
    ) -> Observation:
        """Poll until healthy, the timeout passes, or `stop_event` is set; return the last look."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.observe()
            if seen.is_healthy or time.monotonic() >= deadline:
                return seen
            if stop_event is not None and stop_event.is_set():
                return seen
            # With the agent's view this wakes on the next event, not on the next poll.
            self.engine.wait_change(min(POLL_S, max(0.0, deadline - time.monotonic())))

    # The heal cycle's effects: each is one step, run on the heal runner's pool.

    def stop_step(self, container: ContainerInfo | None) -> None:
        """Stop for a heal: the container; (scope compose) its compose service's containers;
        (scope project) the whole project."""
        heal = self.policy.heal
        if heal.scope == "container":
            timeout_s = stop_timeout_for(container, heal.stop_timeout_s)
            if container is not None and container.auto_remove:
                # `--rm`: a stop would remove it (and its anonymous volumes); the engine's
                # restart keeps it. The start step then finds it running.
                self.engine.restart(container, timeout_s)
            else:
                self.engine.stop(container, timeout_s)
            return
        ref = self.policy.compose
        services = self._heal_services(container) if heal.scope == "compose" else ()
        with self._acting_on_compose(container, services):
            if services:  # scope compose: the service's containers
                wait_s = self._longest_stop_s([container])
                self.compose().stop(
                    ref.file, self._project(container), heal.stop_timeout_s, services, wait_s
                )
                return
            # Scope project: the policy's timeout is its own service's; the rest of the
            # project is stopped within each container's own stop_grace_period.
            own = self._service_of(container)
            if heal.stop_timeout_s is not None and own:
                wait_s = self._longest_stop_s([container])
                self.compose().stop(
                    ref.file, self._project(container), heal.stop_timeout_s, (own,), wait_s
                )
            wait_s = self._longest_stop_s([container, *self.project_neighbours(container)])
            self.compose().stop(ref.file, self._project(container), None, (), wait_s)

    def _longest_stop_s(self, containers: list[ContainerInfo | None]) -> int:
        """How long stopping these may rightly take, each by its own contract (the policy's
        timeout for the service's own container)."""
        waits = [stop_wait_s(c, None) for c in containers if c is not None]
        if self.policy.heal.stop_timeout_s is not None:
            waits.append(stop_wait_s(None, self.policy.heal.stop_timeout_s))
        return max(waits, default=stop_wait_s(None, None))

    def _project_containers(self, container: ContainerInfo | None) -> list[ContainerInfo]:
        """Every container of its project, as the engine lists them now (not as the view
        last heard: the project's stop reaches one made a moment ago too, and it is owed
        its start like the rest)."""
        project = self._project(container)
        if not project:
            return [container] if container is not None else []
        found = []
        for row in self.engine.list_rows():
            if (row.get("Labels") or {}).get(LABEL_COMPOSE_PROJECT) == project:
                with contextlib.suppress(ContainerGone):
                    found.append(self.engine.inspect_container(row["Id"]))
        return found

    def project_neighbours(self, container: ContainerInfo | None) -> list[ContainerInfo]:
        """What a `scope: project` heal stops besides the service's own container: every
        other container of its project (none for the other scopes)."""
        if self.policy.heal.scope != "project" or not self._project(container):
            return []
        own = container.id if container is not None else None
        return [
            c
            for c in self._project_containers(container)
            if c.id != own and c.labels.get(LABEL_COMPOSE_ONEOFF) != "True"
        ]

    def state_of(self, container: ContainerInfo | None) -> dict[str, Any] | None:
        """The engine's State of the container (one inspect); None when it is gone."""
        if container is None:
            return None
        try:
            return dict(self.engine.inspect_container(container.id).state or {})
        except ContainerGone:
            return None

    def start_step(
        self,
        container: ContainerInfo | None,
        retry_delays_s: tuple[float, ...] = (0, 0.5, 1, 2),
        neighbours: Sequence[ContainerInfo] = (),
    ) -> bool:
        """Start again what `stop_step` stopped, retrying briefly: it must not stay down.
        A container that no longer exists is not retried (ContainerGone). False when an
        operator stopped it by hand since: theirs now, it is left as it is. A `scope:
        project` heal starts `neighbours` (those its stop took down) with it."""
        last: SupervisorError | None = None
        for delay_s in retry_delays_s:
            self._sleep(delay_s)
            view = self.engine.view
            if container is not None and view is not None and view.is_manual_stop(container.id):
                return False
            try:
                if self.policy.heal.scope == "container":
                    if container is not None and container.auto_remove:
                        return True  # restarted by the stop step, in one call
                    self.engine.start(container)
                else:
                    self._compose_up(container, neighbours)
                return True
            except ContainerGone:
                raise
            except (EngineError, ComposeError) as e:
                last = e
        raise last

    def _heal_services(self, container: ContainerInfo | None) -> tuple[str, ...]:
        """The compose service a heal names: the container's (from its label, or the
        policy's match). A `scope: project` stop names none (the whole stack); its start
        names this one and the neighbours it took down."""
        service = self._service_of(container)
        if not service:
            raise ComposeError(
                f"cannot tell which compose service to heal: {_name(container)} has no "
                f"{LABEL_COMPOSE_SERVICE} label and the policy no match.compose_service"
            )
        return (service,)

    def _service_of(self, container: ContainerInfo | None) -> str | None:
        labels = container.labels if container is not None else {}
        return labels.get(LABEL_COMPOSE_SERVICE) or self.policy.match.compose_service

    def _compose_up(
        self, container: ContainerInfo | None, neighbours: Sequence[ContainerInfo] = ()
    ) -> None:
        """Start what `stop_step` stopped, as it is (`--no-deps --no-recreate`: nothing of
        the file deployed that nobody applied yet): the one service, and for a project heal
        the `neighbours` its stop took down (compose starts them in depends_on order). A
        service whose container is missing is created, with what it depends on that is not
        up (nothing recreated). The container the heal stopped, removed since, is created
        again only by a policy that heals `missing` (ContainerGone otherwise)."""
        ref = self.policy.compose
        taken = {c.labels.get(LABEL_COMPOSE_SERVICE) for c in neighbours}
        services = tuple(sorted({*self._heal_services(container), *(s for s in taken if s)}))
        exists = self.state_of(container) is not None
        if container is not None and not exists and "missing" not in self.policy.heal.on:
            # Removed since the stop (`compose down`, `docker rm`): an operator's doing.
            # `up` would create it anew, on fresh anonymous volumes; only a policy that
            # heals `missing` asks for that.
            raise ContainerGone(
                f"{container.name} was removed after the heal's stop (compose down?); not "
                "created again: the policy does not heal missing"
            )
        # An `up` marks no stops: one that recreates removes what it stopped, and an
        # operator's stop just after it is the operator's.
        with self._acting_on_compose(container, services, stopping=False):
            self.compose().up(ref.file, self._project(container), services, exists, True)

    def _acting_on_compose(
        self, container: ContainerInfo | None, services: tuple[str, ...], stopping: bool = True
    ):
        """Mark the compose events this heal causes as the agent's: its services' (or the
        whole project's, when it names none); an `up` that only starts marks no stops."""
        return self.engine.acting_on(
            project=self._project(container), services=services, stopping=stopping
        )

    def restart_dependents(
        self,
        earlier_id: str | None,
        before_stop: Callable[[ContainerInfo], str] = lambda dependent: "",
        after_start: Callable[[str, bool], None] = lambda key, started: None,
        since: float | None = None,
        left_alone: Callable[[ContainerInfo], str | None] = lambda dependent: None,
    ) -> list[DependentOutcome]:
        """Restart what depends on this service's (healed) container: what shares its network
        namespace, and what Compose says depends on it. A namespace-sharer of a container
        that was recreated (a new id) is recreated with `compose up -d --no-deps` of its
        own service. Only what was running before the heal (`since`) is touched: a dependent
        down before it, stopped by hand, or that `left_alone` names a reason for (held,
        given up) is skipped, with that reason; so is every one while the healed container
        is down again (what needs it would fail for want of it).

        `before_stop(dependent)` records the intent to start it again and returns its key;
        `after_start(key, started)` is called once the start was tried."""
        healed = self.observe().container
        if healed is None:
            return []
        recreated = earlier_id is not None and earlier_id != healed.id
        earlier = {earlier_id} if earlier_id else set()
        outcomes: list[DependentOutcome] = []
        recreated_services: set[str] = set()
        for dependent, why in find_dependents(healed, earlier, self.engine.containers_now()):
            key, started = None, False
            service = dependent.labels.get(LABEL_COMPOSE_SERVICE)
            skip = self._leave_dependent(dependent, since, left_alone, healed)
            if skip is not None:
                outcomes.append(DependentOutcome(dependent.name, why, "skipped", detail=skip))
                continue
            try:
                if why == SHARES_NETWORK and recreated and self.policy.compose and service:
                    # It joined the namespace of a container that is gone: only compose,
                    # recreating its service (and nothing else), can join it to the new one.
                    if service not in recreated_services:
                        ref = self.policy.compose
                        with self._acting_on_compose(healed, (service,)):
                            self.compose().up(ref.file, self._project(healed), (service,), True)
                        recreated_services.add(service)
                    action = "recreated"
                else:
                    key = before_stop(dependent)
                    # Its own contract: the policy's timeout is for the service it names.
                    timeout_s = stop_timeout_for(dependent, None)
                    if dependent.auto_remove:
                        self.engine.restart(dependent, timeout_s)  # a stop would remove it
                    else:
                        self.engine.stop(dependent, timeout_s)
                        self.engine.start(dependent)
                    started, action = True, "restarted"
                outcomes.append(DependentOutcome(dependent.name, why, action))
            except SupervisorError as e:
                outcomes.append(DependentOutcome(dependent.name, why, "failed", describe_error(e)))
            finally:
                if key is not None:
                    after_start(key, started)
        return outcomes

    def _leave_dependent(
        self,
        dependent: ContainerInfo,
        since: float | None,
        left_alone: Callable[[ContainerInfo], str | None],
        healed: ContainerInfo,
    ) -> str | None:
        """Why a dependent is not the agent's to restart now, or None."""
        try:
            parent = self.state_of(healed)
        except SupervisorError:
            return "its parent's state is unknown"  # cannot tell: leave it as it is
        if not (parent or {}).get("Running"):
            return "its parent is down again"  # it would fail for want of it
        view = self.engine.view
        if view is not None and view.is_manual_stop(dependent.id):
            return "stopped by hand"
        state = self.state_of(dependent)
        if state is None:
            return "gone"
        if not state.get("Running") and (since is None or was_down_before(state, since)):
            return "down before the heal"
        # Down since its parent was back: not for want of it (a stop by hand, a crash).
        back, finished = parse_started_at(parent), parse_finished_at(state)
        if not state.get("Running") and back and finished and finished > back:
            return "went down after its parent was back"
        return left_alone(dependent)

    def _project(self, container: ContainerInfo | None) -> str | None:
        """The compose project to act on (always passed with -p): the container's own, as
        its labels say; the policy's without a container; else what compose derives."""
        own = container.labels.get(LABEL_COMPOSE_PROJECT) if container else None
        return own or self.policy.project

    def _log_action_error(self, event: str, message: str, error: SupervisorError) -> None:
        log_event(
            log, logging.ERROR, event, message, service=self.service, error=describe_error(error)
        )


def _wait(stop_event: threading.Event | None, seconds: float) -> bool:
    """Sleep `seconds`, or less when `stop_event` is set; True when it was set."""
    if seconds <= 0:
        return bool(stop_event and stop_event.is_set())
    if stop_event is None:
        time.sleep(seconds)
        return False
    return stop_event.wait(seconds)


def _name(container: ContainerInfo | None) -> str | None:
    return container.name if container else None


def describe_error(error: Exception) -> str:
    stderr = getattr(error, "stderr", "")
    return f"{error}: {stderr.strip()}" if stderr and stderr.strip() else str(error)
