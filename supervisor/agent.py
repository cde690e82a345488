"""The daemon: the container view, one APScheduler job per policy, heal cycles in a bounded pool.

Checks run on each policy's interval and, at once, on every Docker event about a supervised
container. A check observes (the view, no API call), classifies (status), asks the service's
RestartTracker what to do (healing) and hands a heal to the pool (manager acts); every
decision is one log line and the state file records it. A service being healed is on hold:
its checks skip until the cycle ends. While the engine is away nothing is healed. A job never
lets an exception escape: it logs, and the next tick tries again. The only module that
imports APScheduler.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as JobPool
from apscheduler.schedulers.background import BackgroundScheduler

from . import healing
from .engine import Engine, Observation, discover
from .errors import SupervisorError
from .logs import log_event
from .manager import ServiceManager
from .policy import Policy
from .state import StateWriter, load_state
from .status import REASON_ENGINE_UNREACHABLE, REASON_GAVE_UP, REASON_MANUAL_STOP, Status
from .view import ContainerView, ViewEvent

log = logging.getLogger("supervisor.agent")

DEFAULT_HEAL_CONCURRENCY = 4
DEFAULT_RELIST_S = 60.0
FIRST_SYNC_WAIT_S = 5.0


@dataclass
class ServiceSlot:
    """Everything the agent holds for one service."""

    policy: Policy
    manager: ServiceManager
    tracker: healing.RestartTracker
    lock: threading.RLock = field(default_factory=threading.RLock)
    healing: bool = False
    shown: tuple[Any, ...] | None = None
    status: Status | None = None
    reason: str | None = None
    container: str | None = None
    container_id: str | None = None
    last_heal: dict[str, Any] | None = None

    @property
    def service(self) -> str:
        return self.policy.service

    @property
    def project(self) -> str | None:
        return self.policy.compose.project if self.policy.compose else None

    def snapshot(self, now: float) -> dict[str, Any]:
        self.tracker.restarts_in_window(now)
        return {
            "status": str(self.status) if self.status else None,
            "reason": self.reason,
            "container": self.container,
            "healing": self.healing,
            "last_heal": self.last_heal,
            **self.tracker.to_snapshot(),
        }


class Agent:
    """Supervise a set of policies until `stop()` is called."""

    def __init__(
        self,
        policies: list[Policy],
        engine: Engine | None = None,
        state_dir: Path | None = None,
        compose_bin: str | None = None,
        heal_concurrency: int = DEFAULT_HEAL_CONCURRENCY,
        relist_s: float = DEFAULT_RELIST_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine or Engine()
        self.state_dir = state_dir
        self._clock = clock
        self._started_at = clock()
        self._relist_s = relist_s
        self._stop = threading.Event()
        self._save_requested = False
        self._engine_lock = threading.Lock()
        self._engine_ok: bool | None = None
        self._heal_lock = threading.Lock()
        self._heal_concurrency = heal_concurrency
        self._heals_active = 0
        self._heal_pool = ThreadPoolExecutor(heal_concurrency, thread_name_prefix="heal")
        self.view = ContainerView(
            self.engine, on_event=self._on_event, on_sync=self._on_sync, clock=clock
        )
        self.engine.attach_view(self.view)
        saved = load_state(state_dir) if state_dir else {}
        self._writer = (
            StateWriter(state_dir, lambda: (self.snapshot(), self.agent_snapshot()))
            if state_dir
            else None
        )
        self.slots: dict[str, ServiceSlot] = {}
        for policy in policies:
            tracker = healing.RestartTracker(policy.heal, policy.check)
            manager = ServiceManager(policy, self.engine, compose_bin=compose_bin, clock=clock)
            slot = ServiceSlot(policy, manager, tracker)
            if policy.service in saved:
                tracker.restore(saved[policy.service])
                slot.last_heal = saved[policy.service].get("last_heal")
            self.slots[policy.service] = slot
        self._scheduler = BackgroundScheduler(
            executors={"default": JobPool(max(4, min(20, len(policies) + 2)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    # Lifecycle.

    def start(self) -> None:
        self.view.start()
        # The first checks read the view: give it a moment to connect and list.
        self.view.wait_first_outcome(FIRST_SYNC_WAIT_S)
        now = datetime.now(UTC)
        for service, slot in self.slots.items():
            self._scheduler.add_job(
                self.check,
                "interval",
                args=[service],
                id=f"check:{service}",
                name=service,
                seconds=slot.policy.check.interval_s,
                next_run_time=now,
            )
        self._scheduler.add_job(self._relist, "interval", id="relist", seconds=self._relist_s)
        self._scheduler.start()
        log_event(
            log,
            logging.INFO,
            "agent.started",
            "agent started",
            services=len(self.slots),
            heal_concurrency=self._heal_concurrency,
            pid=os.getpid(),
        )

    def stop(self) -> None:
        """Stop checking; let heal cycles in flight finish their start; save state."""
        log_event(log, logging.INFO, "agent.stopping", "agent stopping")
        self._stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._heal_pool.shutdown(wait=True)
        self.view.stop()
        if self._writer is not None:
            self._writer.close()
        self.engine.close()
        log_event(log, logging.INFO, "agent.stopped", "agent stopped")

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a stop is requested (or the timeout passes); True once requested."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def request_save(self) -> None:
        """Ask for the state file to be written at the next beat (safe in a signal handler)."""
        self._save_requested = True

    def save_if_requested(self) -> None:
        if self._save_requested and self._writer is not None:
            self._save_requested = False
            self._writer.flush()

    # What the view tells.

    def _on_event(self, change: ViewEvent) -> None:
        """Check at once every service this event may concern."""
        for service, slot in self.slots.items():
            concerned = slot.container_id == change.container_id or (
                change.container is not None
                and discover(slot.policy.match, slot.project, [change.container])
            )
            if concerned:
                self.check(service)

    def _on_sync(self, synced: bool, error: str | None) -> None:
        with self._engine_lock:
            was, self._engine_ok = self._engine_ok, synced
        if not synced:
            log_event(
                log,
                logging.ERROR,
                "engine.unreachable",
                "Docker engine unreachable; no healing until it answers, retrying",
                error=error,
            )
            for slot in self.slots.values():
                with slot.lock:
                    self._show(slot, Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE))
            return
        if was is False:
            log_event(log, logging.INFO, "engine.reachable", "Docker engine answers again")
            for service in self.slots:
                self.check(service)

    def _relist(self) -> None:
        if not self.view.synced:
            return  # the view's own thread is reconnecting, and re-lists when it does
        try:
            self.view.resync()
        except SupervisorError as e:
            log_event(log, logging.WARNING, "view.relist_failed", "re-listing failed", error=str(e))

    # The check.

    def check(self, service: str) -> None:
        slot = self.slots[service]
        try:
            with slot.lock:
                if slot.healing or self._stop.is_set():
                    return
                seen = slot.manager.observe()
                if seen.reason == REASON_ENGINE_UNREACHABLE:
                    # No decision while the engine is away: an outage is not a crash.
                    self._show(slot, seen)
                    return
                if seen.manual_stop and not seen.is_healthy:
                    # Someone stopped it by hand: leave it alone until it is started again.
                    self._show(slot, seen, Status.STOPPED, REASON_MANUAL_STOP)
                    return
                if seen.container is not None and seen.container.restarted_by_docker:
                    # Docker's restart policy starts it again; fighting it would double up.
                    self._show(slot, seen)
                    return
                now = self._clock()
                decision = slot.tracker.observe(seen.status, seen.reason, now, seen.started_at)
                self._show(slot, seen)
                self._act(slot, seen, decision)
        except Exception as e:  # a job must never die; the next tick tries again
            log_event(
                log,
                logging.ERROR,
                "check.failed",
                "check failed",
                service=service,
                error=f"{type(e).__name__}: {e}",
            )

    def _act(self, slot: ServiceSlot, seen: Observation, decision: healing.Decision) -> None:
        fields = dict(
            service=slot.service,
            container=slot.container,
            status=str(seen.status),
            reason=seen.reason,
        )
        if decision.action == healing.HEAL:
            slot.healing = True
            log_event(
                log,
                logging.WARNING,
                "heal.started",
                "heal started",
                **fields,
                attempt=decision.attempt,
                delay_s=round(decision.delay_s, 3),
                scope=slot.policy.heal.scope,
            )
            if decision.delay_s > 0:
                # The backoff wait holds no heal slot: a one-shot job queues the cycle later.
                run_at = datetime.now(UTC) + timedelta(seconds=decision.delay_s)
                self._scheduler.add_job(
                    self._queue_heal, "date", run_date=run_at, args=[slot, decision, None]
                )
            else:
                self._queue_heal(slot, decision, seen)
            self.save()
        elif decision.action == healing.GIVE_UP:
            log_event(
                log,
                logging.ERROR,
                "heal.gave_up",
                "crash loop: giving up",
                **fields,
                attempt=decision.attempt,
                restarts=slot.tracker.restarts_in_window(self._clock()),
                window_s=slot.policy.heal.window_s,
            )
            self._show(slot, seen)
            self.save()
        elif decision.why == healing.WHY_BELOW_THRESHOLD:
            log_event(
                log,
                logging.INFO,
                "heal.pending",
                "bad check below the failure threshold",
                **fields,
                bad_checks=slot.tracker.bad_checks,
                failures=slot.policy.check.failures,
            )
        elif decision.action == healing.RESET:
            log_event(log, logging.INFO, "heal.reset", "backoff reset", **fields, why=decision.why)
            self.save()

    # The heal cycle.

    def _queue_heal(
        self, slot: ServiceSlot, decision: healing.Decision, seen: Observation | None
    ) -> None:
        """Hand a cycle to the pool; after a backoff, first make sure it is still needed."""
        try:
            if seen is None:
                seen = slot.manager.observe()
                if self._stop.is_set() or seen.is_healthy or seen.reason not in slot.policy.heal.on:
                    log_event(
                        log,
                        logging.INFO,
                        "heal.cancelled",
                        "heal cancelled: the container changed during the backoff",
                        service=slot.service,
                        attempt=decision.attempt,
                        status=str(seen.status),
                        reason=seen.reason,
                    )
                    self._end_hold(slot)
                    return
            with self._heal_lock:
                active = self._heals_active
                self._heals_active += 1
            if active >= self._heal_concurrency:
                log_event(
                    log,
                    logging.INFO,
                    "heal.queued",
                    "heal queued behind others",
                    service=slot.service,
                    attempt=decision.attempt,
                    active=active,
                )
            self._heal_pool.submit(self._heal, slot, decision, seen)
        except Exception as e:  # RuntimeError once the pool shuts down, among others
            log_event(
                log,
                logging.ERROR,
                "heal.error",
                "could not queue the heal",
                service=slot.service,
                error=f"{type(e).__name__}: {e}",
            )
            self._end_hold(slot)

    def _heal(self, slot: ServiceSlot, decision: healing.Decision, seen: Observation) -> None:
        try:
            if self._stop.is_set():
                log_event(
                    log,
                    logging.INFO,
                    "heal.cancelled",
                    "heal cancelled: stopping",
                    service=slot.service,
                    attempt=decision.attempt,
                )
                return
            log_event(
                log,
                logging.INFO,
                "heal.stopping",
                "stopping for heal",
                service=slot.service,
                container=slot.container,
                attempt=decision.attempt,
                scope=slot.policy.heal.scope,
            )
            outcome = slot.manager.heal(seen.container, self._stop)
            with slot.lock:
                now = self._clock()
                if outcome.restarted_at is not None:
                    slot.tracker.record_restart(outcome.restarted_at)
                fields = dict(
                    service=slot.service,
                    container=slot.container,
                    attempt=decision.attempt,
                    duration_s=round(outcome.duration_s, 3),
                )
                if outcome.recovered:
                    slot.tracker.record_recovered(now)
                    log_event(log, logging.INFO, "heal.recovered", "healthy again", **fields)
                else:
                    log_event(
                        log,
                        logging.ERROR,
                        "heal.failed",
                        "heal failed",
                        **fields,
                        reason=outcome.why,
                        detail=outcome.detail,
                    )
                slot.last_heal = {
                    "at": now,
                    "attempt": decision.attempt,
                    "result": "recovered" if outcome.recovered else "failed",
                    "reason": outcome.why,
                    "duration_s": round(outcome.duration_s, 3),
                }
        except Exception as e:
            log_event(
                log,
                logging.ERROR,
                "heal.error",
                "heal cycle raised",
                service=slot.service,
                error=f"{type(e).__name__}: {e}",
            )
        finally:
            with self._heal_lock:
                self._heals_active -= 1
            self._end_hold(slot)

    def _end_hold(self, slot: ServiceSlot) -> None:
        with slot.lock:
            slot.healing = False
        self.save()

    # Recording.

    def _show(
        self,
        slot: ServiceSlot,
        seen: Observation,
        status: Status | None = None,
        reason: str | None = None,
    ) -> None:
        """Remember what the service looks like; log a line when that changes."""
        status, reason = (status, reason) if status else (seen.status, seen.reason)
        if slot.tracker.gave_up and not seen.is_healthy:
            status, reason = Status.ERROR, REASON_GAVE_UP
        container = seen.container.name if seen.container else None
        if seen.container is not None:
            slot.container_id = seen.container.id
        slot.status, slot.reason, slot.container = status, reason, container
        shown = (status, reason, container)
        if shown != slot.shown:
            slot.shown = shown
            level = logging.INFO if status in (Status.RUNNING, Status.STARTING) else logging.WARNING
            log_event(
                log,
                level,
                "service.status",
                f"{slot.service} {status}" + (f" ({reason})" if reason else ""),
                service=slot.service,
                container=container,
                status=str(status),
                reason=reason,
                detail=seen.detail,
            )
            self.save()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {service: slot.snapshot(now) for service, slot in self.slots.items()}

    def agent_snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started_at": self._started_at,
            "api_calls": self.engine.api_calls,
        }

    def save(self) -> None:
        """Have the state file written soon, off this thread."""
        if self._writer is not None:
            self._writer.request()
