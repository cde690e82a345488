"""ServiceManager: start, stop, restart, status and health of one service, and its heal cycle.

It acts (through the engine and compose) and waits for end states; it does not decide when to
heal (healing.py does) and does not schedule (agent.py does). Waits are bounded and can be cut
short by a stop event, except the start that follows a stop of ours: a container this manager
stopped is always started again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .compose import DEFAULT_COMPOSE_TIMEOUT_S, Compose, find_compose_command
from .engine import (
    LABEL_COMPOSE_PROJECT,
    SHARES_NETWORK,
    ContainerInfo,
    Engine,
    Observation,
    find_dependents,
)
from .errors import ComposeError, ContainerGone, EngineError, SupervisorError
from .logs import log_event
from .policy import Policy
from .status import Status

log = logging.getLogger("supervisor.manager")

POLL_S = 0.25

# Why a heal cycle ended without a healthy container.
FAILED_NOT_READY = "not_ready"
FAILED_STOP = "stop_failed"
FAILED_START = "start_failed"
FAILED_GONE = "container_gone"


@dataclass(frozen=True)
class DependentOutcome:
    container: str
    why: str  # engine.SHARES_NETWORK or engine.DEPENDS_ON
    action: str  # restarted, recreated or failed
    error: str | None = None


@dataclass(frozen=True)
class HealOutcome:
    recovered: bool
    why: str | None
    duration_s: float
    restarted_at: float | None
    detail: str | None = None


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
    ) -> None:
        self.policy = policy
        self.engine = engine or Engine()
        self._compose = compose
        self._compose_bin = compose_bin
        self._compose_timeout_s = compose_timeout_s
        self._clock = clock

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
                self.compose().up(ref.file, ref.project)
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
        try:
            if self.policy.compose is not None:
                ref = self.policy.compose
                self.compose().stop(ref.file, ref.project, self.policy.heal.stop_timeout_s)
            elif seen.container is not None:
                self.engine.stop(seen.container, self.policy.heal.stop_timeout_s)
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

    # Healing.

    def heal(
        self,
        container: ContainerInfo | None,
        stop_event: threading.Event,
        on_down: Callable[[bool], None] | None = None,
    ) -> HealOutcome:
        """One cycle: stop, pause, start, wait until healthy (ready_timeout).

        `on_down(True)` is called before the stop and `on_down(False)` once the start went
        through, so the caller can record, durably, that a container of ours may be down.
        """
        heal = self.policy.heal
        began = time.monotonic()
        on_down = on_down or (lambda down: None)

        def outcome(recovered: bool, why: str | None, restarted_at=None, detail=None):
            return HealOutcome(recovered, why, time.monotonic() - began, restarted_at, detail)

        if heal.scope != "compose" and container is None:
            return outcome(False, FAILED_GONE)
        on_down(True)
        try:
            if heal.scope == "compose":
                ref = self.policy.compose
                with self.engine.acting_on(project=self._project(container)):
                    self.compose().stop(ref.file, ref.project, heal.stop_timeout_s)
            else:
                self.engine.stop(container, heal.stop_timeout_s)
        except (EngineError, ComposeError) as e:
            # The stop may have half happened: start anyway, so nothing stays down.
            try:
                self._start_after_stop(container)
                on_down(False)
            except (EngineError, ComposeError):
                pass  # the cycle stays recorded; the next check starts it
            return outcome(False, FAILED_STOP, detail=_detail(e))
        log_event(
            log,
            logging.INFO,
            "heal.stopped",
            "stopped for heal",
            service=self.service,
            container=_name(container),
            scope=heal.scope,
        )
        # The pause is cut short on shutdown, but the start below always happens.
        _wait(stop_event, heal.pause_s)
        restarted_at = self._clock()
        try:
            self._start_after_stop(container)
        except ContainerGone as e:
            on_down(False)  # nothing left to start: the cycle is over
            return outcome(False, FAILED_GONE, None, _detail(e))
        except (EngineError, ComposeError) as e:
            return outcome(False, FAILED_START, restarted_at, _detail(e))
        on_down(False)
        seen = self.wait_until_healthy(heal.ready_timeout_s, stop_event)
        if seen.is_healthy:
            return outcome(True, None, restarted_at)
        return outcome(False, FAILED_NOT_READY, restarted_at, f"{seen.status} {seen.reason}")

    def restart_dependents(self, earlier_id: str | None) -> list[DependentOutcome]:
        """Restart what depends on this service's (healed) container: what shares its network
        namespace, and what Compose says depends on it. A namespace-sharer of a container
        that was recreated (a new id) is recreated with the blanket `compose up -d`."""
        healed = self.observe().container
        if healed is None:
            return []
        recreated = earlier_id is not None and earlier_id != healed.id
        earlier = {earlier_id} if earlier_id else set()
        outcomes: list[DependentOutcome] = []
        composed = False
        for dependent, why in find_dependents(healed, earlier, self.engine.containers_now()):
            try:
                if why == SHARES_NETWORK and recreated and self.policy.compose is not None:
                    if not composed:
                        ref = self.policy.compose
                        with self.engine.acting_on(project=self._project(healed)):
                            self.compose().up(ref.file, ref.project)
                        composed = True
                    action = "recreated"
                else:
                    self.engine.stop(dependent, self.policy.heal.stop_timeout_s)
                    self.engine.start(dependent)
                    action = "restarted"
                outcomes.append(DependentOutcome(dependent.name, why, action))
            except SupervisorError as e:
                outcomes.append(DependentOutcome(dependent.name, why, "failed", _detail(e)))
        return outcomes

    def resume(self, container_id: str | None) -> None:
        """Start, once, what an earlier cycle (of an agent that died) stopped and did not
        start. Raises ContainerGone when there is nothing left to start."""
        container = None
        if container_id:
            container = self.engine.view.get(container_id) if self.engine.view else None
            container = container or ContainerInfo(container_id, container_id[:12])
        if self.policy.heal.scope != "compose" and container is None:
            return
        self._start_after_stop(container, retry_delays_s=(0.0,))

    def _start_after_stop(
        self, container: ContainerInfo | None, retry_delays_s: tuple[float, ...] = (0, 0.5, 1, 2)
    ) -> None:
        """Start again what this manager stopped, retrying briefly: it must not stay down.
        A container that no longer exists is not retried (ContainerGone)."""
        last: SupervisorError | None = None
        for delay_s in retry_delays_s:
            time.sleep(delay_s)
            try:
                if self.policy.heal.scope == "compose":
                    ref = self.policy.compose
                    with self.engine.acting_on(project=self._project(container)):
                        self.compose().up(ref.file, ref.project)
                else:
                    self.engine.start(container)
                return
            except ContainerGone:
                raise
            except (EngineError, ComposeError) as e:
                last = e
        raise last

    def _project(self, container: ContainerInfo | None) -> str | None:
        """The compose project whose events a compose-scope cycle causes."""
        if self.policy.compose and self.policy.compose.project:
            return self.policy.compose.project
        return container.labels.get(LABEL_COMPOSE_PROJECT) if container else None

    def _log_action_error(self, event: str, message: str, error: SupervisorError) -> None:
        log_event(log, logging.ERROR, event, message, service=self.service, error=_detail(error))


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


def _detail(error: SupervisorError) -> str:
    stderr = getattr(error, "stderr", "")
    return f"{error}: {stderr.strip()}" if stderr and stderr.strip() else str(error)
