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

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as JobPool
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from . import healing
from .compose import DEFAULT_COMPOSE_TIMEOUT_S
from .engine import Engine, Observation, discover
from .errors import ContainerGone, SupervisorError
from .hooks import Notifications
from .logs import log_event
from .manager import ServiceManager
from .metrics import Metrics
from .notify import Notifier
from .policy import LoadResult, NotifyPolicy, Policy
from .probes import FAILED as PROBE_FAILED
from .probes import ProbeTracker, run_probe
from .state import HELD_FOREVER, StateWriter, load_state
from .status import (
    REASON_ENGINE_UNREACHABLE,
    REASON_GAVE_UP,
    REASON_HELD,
    REASON_MANUAL_STOP,
    REASON_PROBE_FAILED,
    Status,
)
from .view import ContainerView, ViewEvent

log = logging.getLogger("supervisor.agent")

DEFAULT_HEAL_CONCURRENCY = 4
DEFAULT_RELIST_S = 60.0
HEARTBEAT_S = 5.0
HEARTBEAT_TIMEOUT_S = 3.0
# After the engine comes back, its health verdicts are trusted only after this long.
ENGINE_SETTLE_S = 10.0
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
    held_until: float | None = None
    down_cycle: dict[str, Any] | None = None
    manual_stop: str | None = None  # the id of a container stopped by hand, while it stays so
    probe: ProbeTracker | None = None

    def held(self, now: float) -> bool:
        return self.held_until is not None and now < self.held_until

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
            "held_until": self.held_until,
            "down_cycle": self.down_cycle,
            "manual_stop": self.manual_stop,
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
        compose_timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S,
        heal_concurrency: int = DEFAULT_HEAL_CONCURRENCY,
        relist_s: float = DEFAULT_RELIST_S,
        metrics_addr: tuple[str, int] | None = None,
        dry_run: bool = False,
        notify_default: NotifyPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine or Engine()
        self.dry_run = dry_run
        self.notifications = Notifications(notify_default)
        self.state_dir = state_dir
        self._clock = clock
        self._started_at = clock()
        self._relist_s = relist_s
        self._stop = threading.Event()
        self._engine_lock = threading.Lock()
        self._engine_ok: bool | None = None
        self._engine_back_at: float | None = None
        self._heal_lock = threading.Lock()
        self._heal_concurrency = heal_concurrency
        self._heals_active = 0
        self._heal_pool = ThreadPoolExecutor(heal_concurrency, thread_name_prefix="heal")
        self.notifier = Notifier()
        self._metrics_addr = metrics_addr
        self.metrics: Metrics | None = None
        if metrics_addr is not None:
            self.metrics = Metrics(self._metric_rows, lambda: self.engine.api_calls)
        self._unchecked: set[str] = set()
        self._ready = False
        self._status_line = ""
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
        self._compose_bin = compose_bin
        self._compose_timeout_s = compose_timeout_s
        self.slots: dict[str, ServiceSlot] = {}
        for policy in policies:
            slot = self._new_slot(policy)
            if policy.service in saved:
                slot.tracker.restore(saved[policy.service])
                slot.last_heal = saved[policy.service].get("last_heal")
                slot.held_until = _float_or_none(saved[policy.service].get("held_until"))
                if isinstance(saved[policy.service].get("down_cycle"), dict):
                    slot.down_cycle = saved[policy.service]["down_cycle"]
                if isinstance(saved[policy.service].get("manual_stop"), str):
                    slot.manual_stop = saved[policy.service]["manual_stop"]
            self.slots[policy.service] = slot
        self._scheduler = BackgroundScheduler(
            executors={
                "default": JobPool(max(4, min(20, len(policies) + 2))),
                "probes": JobPool(max(2, min(50, sum(1 for p in policies if p.check.probe)))),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    # Lifecycle.

    def start(self) -> None:
        if self.metrics is not None and self._metrics_addr is not None:
            self.metrics.serve(*self._metrics_addr)
            log_event(
                log,
                logging.INFO,
                "metrics.serving",
                "metrics endpoint listening",
                address=f"{self._metrics_addr[0]}:{self._metrics_addr[1]}",
            )
        self.view.start()
        # The first checks read the view: give it a moment to connect and list.
        self.view.wait_first_outcome(FIRST_SYNC_WAIT_S)
        # Stops by hand that an earlier agent saw still hold while those containers stay down.
        for slot in self.slots.values():
            if slot.manual_stop:
                self.view.remember_manual_stop(slot.manual_stop)
        now = datetime.now(UTC)
        for slot in list(self.slots.values()):
            self._schedule(slot)
        self._unchecked = set(self.slots)
        self._scheduler.add_job(self._relist, "interval", id="relist", seconds=self._relist_s)
        self._scheduler.add_job(self._heartbeat, "interval", id="heartbeat", seconds=HEARTBEAT_S)
        if self.notifier.watchdog_interval_s:
            # From the scheduler's own loop: a stuck scheduler stops the pings.
            self._scheduler.add_job(
                self.notifier.watchdog,
                "interval",
                id="watchdog",
                seconds=self.notifier.watchdog_interval_s,
                next_run_time=now,
            )
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

    def _new_slot(self, policy: Policy) -> ServiceSlot:
        tracker = healing.RestartTracker(policy.heal, policy.check)
        manager = ServiceManager(
            policy,
            self.engine,
            compose_bin=self._compose_bin,
            compose_timeout_s=self._compose_timeout_s,
            clock=self._clock,
        )
        probe = ProbeTracker(policy.check.probe) if policy.check.probe else None
        return ServiceSlot(policy, manager, tracker, probe=probe)

    def _schedule(self, slot: ServiceSlot) -> None:
        self._scheduler.add_job(
            self.check,
            "interval",
            args=[slot.service],
            id=f"check:{slot.service}",
            name=slot.service,
            seconds=slot.policy.check.interval_s,
            next_run_time=datetime.now(UTC),
            replace_existing=True,
        )
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(f"probe:{slot.service}")
        if slot.policy.check.probe is not None:
            # Probes run on a pool of their own: a slow probe never delays a check.
            self._scheduler.add_job(
                self._probe,
                "interval",
                args=[slot.service],
                id=f"probe:{slot.service}",
                name=f"probe {slot.service}",
                executor="probes",
                seconds=slot.policy.check.probe.period_s,
                next_run_time=datetime.now(UTC),
                replace_existing=True,
            )

    def reload(self, result: LoadResult) -> None:
        """Apply a re-read policies directory without touching healthy containers.

        Valid changes take effect; a file that no longer validates keeps its last good
        version (policy.invalid); a service whose file is gone is no longer supervised.
        Unchanged services keep their counters and backoff; a changed one starts afresh
        (no give-up, attempt 1) but keeps its restart history.
        """
        self.notifier.reloading()
        for error in result.errors:
            log_event(
                log,
                logging.ERROR,
                "policy.invalid",
                str(error),
                file=error.file,
                line=error.line,
                field=error.field,
                error=error.message,
            )
        bad_files = {error.file for error in result.errors}
        wanted = {p.service: p for p in result.policies}
        for service, slot in list(self.slots.items()):
            if service not in wanted and str(slot.policy.source) in bad_files:
                wanted[service] = slot.policy  # its file is broken: the last good version stays
        added, changed, removed = [], [], []
        for service in list(self.slots):
            if service not in wanted:
                removed.append(service)
                for job in (f"check:{service}", f"probe:{service}"):
                    with contextlib.suppress(JobLookupError):
                        self._scheduler.remove_job(job)
                del self.slots[service]
        for service, policy in wanted.items():
            slot = self.slots.get(service)
            if slot is None:
                added.append(service)
                self.slots[service] = self._new_slot(policy)
                self._schedule(self.slots[service])
            elif slot.policy != policy:
                changed.append(service)
                fresh = self._new_slot(policy)
                with slot.lock:
                    fresh.tracker.restarts_at = list(slot.tracker.restarts_at)
                    slot.policy, slot.manager, slot.tracker = policy, fresh.manager, fresh.tracker
                    slot.shown = None
                self._schedule(slot)
        for event, services in (
            ("policy.added", added),
            ("policy.changed", changed),
            ("policy.removed", removed),
        ):
            for service in services:
                log_event(log, logging.INFO, event, event.replace(".", " "), service=service)
        log_event(
            log,
            logging.INFO,
            "policy.reloaded",
            "policies reloaded",
            services=len(self.slots),
            added=len(added),
            changed=len(changed),
            removed=len(removed),
            invalid=len(result.errors),
        )
        self._update_status_line()
        self.notifier.ready(self.summary())
        self.save()

    def stop(self) -> None:
        """Stop checking; let heal cycles in flight finish their start; save state."""
        log_event(log, logging.INFO, "agent.stopping", "agent stopping")
        self.notifier.stopping()
        self._stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._heal_pool.shutdown(wait=True)
        self.view.stop()
        if self._writer is not None:
            self._writer.close()
        self.engine.close()
        self.notifications.close()
        if self.metrics is not None:
            self.metrics.close()
        log_event(log, logging.INFO, "agent.stopped", "agent stopped")

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a stop is requested (or the timeout passes); True once requested."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def apply_command(self, command: dict[str, Any]) -> None:
        """An operator's pause, resume or reset, from `docker-supervisor pause|resume|reset`."""
        slot = self.slots.get(str(command.get("service")))
        action = command.get("command")
        if slot is None or action not in ("pause", "resume", "reset"):
            log_event(
                log,
                logging.WARNING,
                "command.ignored",
                "unknown command or service",
                command=action,
                service=command.get("service"),
            )
            return
        with slot.lock:
            if action == "pause":
                slot.held_until = float(command.get("until") or HELD_FOREVER)
                log_event(
                    log,
                    logging.INFO,
                    "service.held",
                    "held: watched, not healed",
                    service=slot.service,
                    held_until=slot.held_until,
                )
            elif action == "resume":
                slot.held_until = None
                log_event(
                    log, logging.INFO, "service.resumed", "no longer held", service=slot.service
                )
            else:
                slot.tracker.reset()
                log_event(
                    log,
                    logging.INFO,
                    "heal.reset",
                    "backoff and give-up cleared",
                    service=slot.service,
                    why="operator",
                )
            slot.shown = None
        self.save()
        self.check(slot.service)

    def flush_state(self) -> None:
        """Write the state file now (with the agent's API call count)."""
        if self._writer is not None:
            self._writer.flush()

    # What the view tells.

    def _on_event(self, change: ViewEvent) -> None:
        """Check at once every service this event may concern."""
        for service, slot in list(self.slots.items()):
            concerned = slot.container_id == change.container_id or (
                change.container is not None
                and discover(slot.policy.match, slot.project, [change.container])
            )
            if concerned:
                self.check(service)

    def _on_sync(self, synced: bool, error: str | None) -> None:
        self._set_engine(synced, error)

    def _heartbeat(self) -> None:
        """Ping the engine: a frozen engine keeps its event stream open and says nothing."""
        if not self.view.synced:
            return  # the view is reconnecting and will say when the engine is back
        try:
            self.engine.ping(HEARTBEAT_TIMEOUT_S)
        except SupervisorError as e:
            self._set_engine(False, str(e))
            return
        self._set_engine(True, None)

    def _set_engine(self, reachable: bool, error: str | None) -> None:
        """One line per change; while the engine is away nothing is decided, and once it is
        back its verdicts are trusted only after ENGINE_SETTLE_S."""
        with self._engine_lock:
            was, self._engine_ok = self._engine_ok, reachable
        if was == reachable:
            return
        if not reachable:
            log_event(
                log,
                logging.ERROR,
                "engine.unreachable",
                "Docker engine unreachable; no healing until it answers, retrying",
                error=error,
            )
            for slot in list(self.slots.values()):
                with slot.lock:
                    self._show(slot, Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE))
            return
        if was is None:
            return  # the first connection: the scheduled first checks follow
        self._engine_back_at = self._clock()
        log_event(
            log,
            logging.INFO,
            "engine.reachable",
            "Docker engine answers again",
            settle_s=ENGINE_SETTLE_S,
        )
        for service in list(self.slots):
            self.check(service)
        if self._scheduler.running:
            self._scheduler.add_job(
                self._check_all,
                "date",
                run_date=datetime.now(UTC) + timedelta(seconds=ENGINE_SETTLE_S + 0.1),
            )

    def _check_all(self) -> None:
        """At the end of the settle time: look at everything afresh (a restarted engine may
        have stopped containers without a word) and check every service."""
        self._relist()
        for service in list(self.slots):
            self.check(service)

    def _settling(self) -> bool:
        back = self._engine_back_at
        return back is not None and self._clock() - back < ENGINE_SETTLE_S

    def _relist(self) -> None:
        if not self.view.synced:
            return  # the view's own thread is reconnecting, and re-lists when it does
        try:
            self.view.resync()
        except SupervisorError as e:
            log_event(log, logging.WARNING, "view.relist_failed", "re-listing failed", error=str(e))

    # The check.

    def check(self, service: str) -> None:
        slot = self.slots.get(service)
        if slot is None:
            return  # removed by a reload
        try:
            self._check(slot)
            if self.metrics is not None:
                self.metrics.checked(service)
        except Exception as e:  # a job must never die; the next tick tries again
            log_event(
                log,
                logging.ERROR,
                "check.failed",
                "check failed",
                service=service,
                error=f"{type(e).__name__}: {e}",
            )
        if not self._ready:
            self._unchecked.discard(service)
            if not self._unchecked:
                self._ready = True
                self.notifier.ready(self.summary())
                log_event(
                    log,
                    logging.INFO,
                    "agent.ready",
                    "every service checked once",
                    summary=self.summary(),
                )

    def _check(self, slot: ServiceSlot) -> None:
        with slot.lock:
            if slot.healing or self._stop.is_set():
                return
            seen = self._observe(slot)
            if seen.reason == REASON_ENGINE_UNREACHABLE or self._engine_ok is False:
                # No decision while the engine is away: an outage is not a crash.
                self._show(
                    slot,
                    seen
                    if seen.reason == REASON_ENGINE_UNREACHABLE
                    else Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE),
                )
                return
            if slot.down_cycle is not None and not self.dry_run:
                self._resume(slot)
                seen = self._observe(slot)
            if seen.manual_stop and not seen.is_healthy:
                # Someone stopped it by hand: leave it alone until it is started again.
                if slot.manual_stop != seen.container.id:
                    slot.manual_stop = seen.container.id
                    self.save()
                self._show(slot, seen, Status.STOPPED, REASON_MANUAL_STOP)
                return
            if slot.manual_stop is not None:
                slot.manual_stop = None  # started again: supervised again
                self.save()
            if slot.held(self._clock()):
                # Maintenance: watch, but do not heal.
                self._show(slot, seen, seen.status, REASON_HELD)
                return
            if self._settling():
                # A frozen engine, or one just back: its health verdicts may be stale (a health
                # check that timed out during a freeze) and it may still be restoring.
                self._show(slot, seen)
                return
            now = self._clock()
            decision = slot.tracker.observe(seen.status, seen.reason, now, seen.started_at)
            self._show(slot, seen)
            self._act(slot, seen, decision)

    def _observe(self, slot: ServiceSlot) -> Observation:
        """Docker's view of the service, made worse by a failed agent-side probe."""
        seen = slot.manager.observe()
        probe = slot.probe
        if probe is not None and seen.is_healthy and probe.failed_for(seen.started_at):
            return replace(
                seen, status=Status.ERROR, reason=REASON_PROBE_FAILED, detail=probe.last_error
            )
        return seen

    def _probe(self, service: str) -> None:
        """One run of a service's probe (on the probes pool); a change is checked at once."""
        slot = self.slots.get(service)
        if slot is None or slot.probe is None or slot.healing or self._stop.is_set():
            return
        try:
            seen = slot.manager.observe()
            if seen.status is not Status.RUNNING or seen.container is None:
                return  # probes judge running containers; Docker's state speaks for the rest
            if not slot.probe.due(seen.started_at, self._clock()):
                return
            result = run_probe(slot.probe.probe, seen.container, self.engine)
            if slot.probe.record(result):
                if slot.probe.state == PROBE_FAILED:
                    log_event(
                        log,
                        logging.WARNING,
                        "probe.failed",
                        "probe failed",
                        service=service,
                        container=seen.container.name,
                        kind=slot.probe.probe.kind,
                        failures=slot.probe.failures,
                        error=result.error,
                    )
                else:
                    log_event(
                        log,
                        logging.INFO,
                        "probe.ok",
                        "probe succeeds",
                        service=service,
                        container=seen.container.name,
                        kind=slot.probe.probe.kind,
                    )
                self.check(service)
        except Exception as e:  # a job must never die
            log_event(
                log,
                logging.ERROR,
                "probe.error",
                "probe job raised",
                service=service,
                error=f"{type(e).__name__}: {e}",
            )

    def _act(self, slot: ServiceSlot, seen: Observation, decision: healing.Decision) -> None:
        fields = dict(
            service=slot.service,
            container=slot.container,
            status=str(seen.status),
            reason=seen.reason,
            detail=seen.detail,
        )
        if decision.action == healing.HEAL:
            log_event(
                log,
                logging.WARNING,
                "heal.started",
                "would heal (dry run)" if self.dry_run else "heal started",
                **fields,
                attempt=decision.attempt,
                delay_s=round(decision.delay_s, 3),
                scope=slot.policy.heal.scope,
            )
            if self.dry_run:
                # Nothing is done, so nothing escalates: the next bad check decides the same.
                slot.tracker.attempt -= 1
                return
            slot.healing = True
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
            if self.metrics is not None:
                self.metrics.gave_up(slot.service)
            self.notifications.send(
                slot.policy.notify,
                "heal.gave_up",
                service=slot.service,
                container=slot.container,
                reason=seen.reason,
                attempt=decision.attempt,
            )
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
                seen = self._observe(slot)
                if (
                    self._stop.is_set()
                    or seen.is_healthy
                    or not healing.is_healable(seen.reason, slot.policy.heal.on)
                    or self._engine_ok is False
                    or self._settling()
                ):
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
            container_id = seen.container.id if seen.container else None
            outcome = slot.manager.heal(
                seen.container, self._stop, lambda down: self._record_down(slot, container_id, down)
            )
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
                    if slot.policy.heal.dependents == "restart":
                        self._restart_dependents(slot, container_id)
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
                if self.metrics is not None:
                    self.metrics.healed(slot.service, outcome.recovered, outcome.duration_s)
                self.notifications.send(
                    slot.policy.notify,
                    "heal.recovered" if outcome.recovered else "heal.failed",
                    service=slot.service,
                    container=slot.container,
                    attempt=decision.attempt,
                    reason=outcome.why or seen.reason,
                    duration_s=round(outcome.duration_s, 3),
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

    def _restart_dependents(self, slot: ServiceSlot, earlier_id: str | None) -> None:
        for outcome in slot.manager.restart_dependents(earlier_id):
            log_event(
                log,
                logging.ERROR if outcome.error else logging.INFO,
                "heal.dependent",
                f"dependent {outcome.action}",
                service=slot.service,
                dependent=outcome.container,
                why=outcome.why,
                action=outcome.action,
                error=outcome.error,
            )

    def _record_down(self, slot: ServiceSlot, container_id: str | None, down: bool) -> None:
        """Record, before the stop and durably, that a cycle may leave a container down;
        an agent killed before the start finishes the cycle when it runs again."""
        slot.down_cycle = {"container_id": container_id, "at": self._clock()} if down else None
        if self._writer is not None:
            # Written before the stop, on this thread; no fsync: it must survive the agent's
            # death, which the page cache does, and an fsync here delays every heal.
            self._writer.flush(fsync=down is False)

    def _resume(self, slot: ServiceSlot) -> None:
        """Start what a cycle of an earlier agent stopped; keep it recorded until that works,
        or until there is nothing left to start."""
        cycle = slot.down_cycle or {}
        try:
            slot.manager.resume(cycle.get("container_id"))
        except ContainerGone:
            log_event(
                log,
                logging.WARNING,
                "heal.resume_abandoned",
                "the container an interrupted cycle stopped no longer exists",
                service=slot.service,
                container_id=cycle.get("container_id"),
            )
            self._record_down(slot, None, False)
            return
        except SupervisorError as e:
            log_event(
                log,
                logging.ERROR,
                "heal.resume_failed",
                "could not resume the cycle",
                service=slot.service,
                error=str(e),
            )
            return
        log_event(
            log,
            logging.WARNING,
            "heal.resumed",
            "started what an interrupted heal cycle had stopped",
            service=slot.service,
            container_id=cycle.get("container_id"),
        )
        self._record_down(slot, None, False)

    def _end_hold(self, slot: ServiceSlot) -> None:
        with slot.lock:
            slot.healing = False
        self._update_status_line()
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
            self._update_status_line()
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

    def summary(self) -> str:
        """One line for systemd's STATUS: "12 services: 11 running, 1 healing"."""
        counts: dict[str, int] = {}
        now = self._clock()
        for slot in list(self.slots.values()):
            if slot.healing:
                key = "healing"
            elif slot.held(now):
                key = "held"
            else:
                key = str(slot.status) if slot.status else "unchecked"
            counts[key] = counts.get(key, 0) + 1
        order = ["running", "starting", "stopped", "error", "healing", "held", "unchecked"]
        parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
        return f"{len(self.slots)} services: " + ", ".join(parts)

    def _metric_rows(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "service": slot.service,
                "status": str(slot.status) if slot.status else None,
                "restarts": slot.tracker.restarts_in_window(now),
                "healing": slot.healing,
                "held": slot.held(now),
                "gave_up": slot.tracker.gave_up,
            }
            for slot in list(self.slots.values())
        ]

    def _update_status_line(self) -> None:
        line = self.summary()
        if line != self._status_line:
            self._status_line = line
            self.notifier.status(line)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {service: slot.snapshot(now) for service, slot in list(self.slots.items())}

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


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
