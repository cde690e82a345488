"""The composition root: builds the parts, wires them, and orders start, reload and stop.

view (events) -> router -> one worker per service -> gate and tracker -> heal runner ->
manager, engine and compose (the only I/O) -> board (status lines, STATUS=, metrics, state).

The agent itself decides nothing about a service: it owns the periodic jobs (ticks, the
heartbeat, the re-listing, finishing due intents), applies reloads and operator commands by
sending messages, and on stop lets every cycle start what it stopped before it returns.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .act.journal import Journal
from .act.keeper import Rounds, finish_due_intents
from .act.manager import ServiceManager
from .act.runner import HealRunner
from .config.model import NotifyPolicy, Policy
from .config.policy import LoadResult
from .config.reload import plan_reload
from .core.gate import HELD_FOREVER
from .core.messages import Look, NewPolicy, Operator, Remove, Shutdown
from .core.pressure import HostSample, PressureGuard, Thresholds, read_host
from .core.router import Router
from .core.selector import Identity, expand, saved_names
from .core.worker import Context, Worker
from .docker.compose import DEFAULT_COMPOSE_TIMEOUT_S
from .docker.containers import dependencies_of, dependency_down, has_dependencies, identity_of
from .docker.engine import Engine
from .docker.health import EngineHealth
from .docker.states import Status, classify_state
from .docker.view import ContainerView
from .errors import SupervisorError
from .logs import log_event
from .probe.checks import run_probe
from .probe.prober import Prober
from .publish.board import Board
from .publish.metrics import Metrics
from .publish.notifications import Notifications
from .publish.sdnotify import Notifier
from .runtime.clock import Clock, Follower
from .runtime.dispatch import ThreadDispatcher
from .runtime.timers import SchedulerTimers, Ticks
from .store.commands import Command
from .store.state import Saved, StateWriter, load_state

log = logging.getLogger("supervisor.agent")

DEFAULT_HEAL_CONCURRENCY = 4
DEFAULT_RELIST_S = 60.0
HEARTBEAT_S = 5.0
PRESSURE_S = 2.0  # how often the host's pressure is read (PSI's avg10 moves slowly)
# Deferred services whose health log is read again each time: a check that now fails
# rather than times out is a broken service, pressure or not. Bounded, so that a storm of
# deferrals adds at most this many calls every PRESSURE_S to a busy engine.
REFRESH_PER_SAMPLE = 5
HEARTBEAT_TIMEOUT_S = 3.0
KEEPER_S = 2.0
# How long stop() waits for cycles to start what they stopped.
STOP_WAIT_S = 150.0
# How long a selected container may be gone before its service is forgotten: a re-created
# container (compose up, a new image) comes back meanwhile and keeps its service's memory.
FORGET_AFTER_S = 10.0
# The view events after which the selected containers may be others.
MEMBERSHIP_ACTIONS = ("create", "destroy", "rename", "resync")


@dataclass
class Parts:
    """What the core runs on: real threads and timers, or a simulation's."""

    timers: Any  # timers.Timers, with start() and shutdown()
    dispatcher: Any  # dispatch.Dispatcher, with wait_idle() and close()
    submit_effect: Callable[[Callable[[], None]], Any]
    submit_probe: Callable[[Callable[[], None]], Any]
    make_store: Callable[[Callable[[], Any]], Any]  # a StateWriter or None
    run_probe: Callable[..., Any] | None = None
    make_manager: Callable[[Policy], ServiceManager] | None = None
    pools: tuple[ThreadPoolExecutor, ...] = ()
    saved: Saved | None = None  # what the store holds, when it is not the state directory
    rng: Callable[[], float] = random.random  # backoff jitter
    read_host: Callable[[], HostSample] = read_host  # the host's pressure


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
        clock: Clock | None = None,
        parts: Parts | None = None,
        pressure: Thresholds | None = Thresholds(),  # None: no guard  # noqa: B008 - frozen
    ) -> None:
        self.engine = engine or Engine()
        self.dry_run = dry_run
        clock = clock or Clock()
        self._clock = clock
        self._started_at = clock()
        self._relist_s = relist_s
        self._keeper = Rounds(self._keeper_round)
        self._heal_concurrency = heal_concurrency
        self._stopping = False
        self._compose = (compose_bin, compose_timeout_s)
        parts = parts or self._real_parts(heal_concurrency, state_dir, clock)
        saved = parts.saved or (load_state(state_dir) if state_dir else Saved())
        self.notifier = Notifier()
        self.notifications = Notifications(notify_default)
        self.parts = parts
        self.timers = parts.timers
        self.dispatcher = parts.dispatcher
        self._writer = parts.make_store(self._snapshot)
        self.journal = Journal(
            self._writer.write_through if self._writer else lambda: None,
            self._writer.request if self._writer else lambda: None,
            clock,
        )
        self.journal.restore(saved.intents)
        self.board = Board(self.notifier, self._writer.request if self._writer else _at_once)
        self.health = EngineHealth(clock)
        self.router = Router(self.dispatcher, self.journal)
        self.board.on_change = self.router.wake
        if self._writer is not None:
            # Unwritable: every service shows it (and starts no heal); written again: each
            # is looked at, and heals what waited.
            self._writer.on_health = lambda writable: self.router.broadcast("recheck")
        manual = [
            entry["manual_stop"]
            for entry in saved.services.values()
            if isinstance(entry.get("manual_stop"), str)
        ] + saved.manual_stops
        self.view = ContainerView(
            self.engine,
            on_event=self._on_event,
            on_sync=self._on_sync,
            clock=clock,
            manual_stops=manual,
            steady=clock.steady,
            steady_of=clock.steady_of,
        )
        self.engine.attach_view(self.view)
        self.runner = HealRunner(heal_concurrency, self.dispatcher, parts.submit_effect)
        self.guard = (
            PressureGuard(pressure, ceiling=heal_concurrency, followed=Follower(clock))
            if pressure is not None
            else None
        )
        self._pressed_at = 0.0
        self._refresh_turn = 0
        self.metrics: Metrics | None = None
        self._metrics_addr = metrics_addr
        if metrics_addr is not None:
            self.metrics = Metrics(
                self.board.metric_rows,
                lambda: self.engine.api_calls,
                lambda: self.health.ok,
                lambda: self.guard is not None and self.guard.pressed,
                self._state_ok,
            )
        self.prober = Prober(
            self.timers,
            parts.submit_probe,
            parts.run_probe or (lambda probe, container: run_probe(probe, container, self.engine)),
            lambda service: self._post(service, Look("probe")),
            self.metrics.probed if self.metrics is not None else lambda service, ok: None,
            clock,
        )
        self.context = Context(
            view=self.view,
            clock=clock,
            engine=self.health,
            prober=self.prober,
            runner=self.runner,
            journal=self.journal,
            timers=self.timers,
            dispatcher=self.dispatcher,
            board=self.board,
            claim=self.router.claim,
            make_manager=parts.make_manager or self._make_manager,
            notify=self.notifications.send,
            metrics=self.metrics,
            dry_run=dry_run,
            stopping=lambda: self._stopping,
            rng=parts.rng,
            guard=self.guard,
            pressure_changed=self._pressure_changed,
            services=lambda: len(self._singles) + len(self._expanded),
            left_alone=lambda container: self.board.left_alone(container.id),
            waits_for=self._waits_for,
            wait_on=self.router.wait_on,
            state_ok=self._state_ok,
        )
        self._ticks = Ticks(self.timers, lambda service: self._post(service, Look("tick")))
        # What is in force: the policies for one service, the selector policies, and the
        # services these expanded to. Changed under _membership only; the workers' own copy
        # of a policy may lag (a NewPolicy on its way), these never do.
        self._membership = threading.RLock()
        self._singles: dict[str, Policy] = {}
        self._selectors: dict[str, Policy] = {}
        self._expanded: dict[str, Policy] = {}
        self._names: dict[Identity, str] = {}
        self._gone: dict[str, float] = {}
        self._followed = Follower(clock)  # the steps _gone and the kept rows moved by
        self._conflicts_told: set[tuple[str, str, str]] = set()
        # The saved rows of services not added yet (a selector's, until its first
        # expansion): the state file keeps them meanwhile, or an agent that stops before
        # it saw the engine would write their holds and give-ups away.
        self._saved_services = dict(saved.services)
        self._expanded_once = not any(p.is_selector for p in policies)
        for policy in policies:
            if policy.is_selector:
                self._selectors[policy.service] = policy
            else:
                self._singles[policy.service] = policy
                self._add(policy, saved.services.get(policy.service))
        self._names = saved_names(saved.services, self._selectors)
        if self._selectors:
            self.board.wait_for("selectors")  # READY waits for the first expansion

    @staticmethod
    def _real_parts(heal_concurrency: int, state_dir: Path | None, clock: Clock) -> Parts:
        effects = ThreadPoolExecutor(heal_concurrency + 2, thread_name_prefix="heal")
        probes = ThreadPoolExecutor(4, thread_name_prefix="probe")
        return Parts(
            timers=SchedulerTimers(clock),
            dispatcher=ThreadDispatcher(),
            submit_effect=effects.submit,
            submit_probe=probes.submit,
            make_store=lambda snapshot: StateWriter(state_dir, snapshot) if state_dir else None,
            pools=(effects, probes),
        )

    def _state_ok(self) -> bool:
        """Whether the state file can be written (always, with none)."""
        return self._writer is None or not self._writer.failing

    def _waits_for(self, container: Any) -> tuple[str | None, str | None, bool]:
        """What `container` needs that is down, stopped by hand, held, given up or being
        healed, as "name (why)", with that container's id; and whether all it needs is
        healthy (running, and passing its health check)."""
        if not has_dependencies(container):
            return None, None, True
        needed = dependencies_of(container, self.view.containers())
        for dependency in needed:
            why = dependency_down(dependency)
            found = dependency.container
            if found is not None:
                if self.view.is_manual_stop(found.id):
                    # Its stop was seen, even if its die was not (yet): down by hand.
                    why = "stopped by hand"
                why = why or self.board.waited_for(found.id)
            if why is not None:
                return f"{dependency.name} ({why})", found.id if found else None, False
        healthy = all(
            d.container is not None and classify_state(d.container.state)[0] is Status.RUNNING
            for d in needed
            if not d.completes
        )
        return None, None, healthy

    def _make_manager(self, policy: Policy) -> ServiceManager:
        bin_, timeout_s = self._compose
        return ServiceManager(
            policy, self.engine, compose_bin=bin_, compose_timeout_s=timeout_s, clock=self._clock
        )

    def _add(self, policy: Policy, saved: dict[str, Any] | None = None) -> None:
        worker = Worker(policy, self.context, saved)
        self.router.add(worker)
        self.board.expect(policy.service, saved)
        self._ticks.add(policy.service, policy.check.interval_s)

    def _retire(self, service: str) -> None:
        """No longer supervise `service`: its worker ends what it does, its row goes."""
        worker = self.router.get(service)
        if worker is not None:
            worker.retired = True
        self.router.remove(service)
        self.board.drop(service)
        self._ticks.remove(service)
        if self.metrics is not None:
            self.metrics.forget(service)
        if self.guard is not None:
            self.guard.forget(service)
        if worker is not None:
            self.dispatcher.post(worker, Remove())

    def _post(self, service: str, message: Any) -> None:
        worker = self.router.get(service)
        if worker is not None:
            self.dispatcher.post(worker, message)

    # Lifecycle.

    def start(self) -> None:
        self.schedule()
        self.timers.start()
        self.view.start()  # its first outcome, synced or not, has every worker look
        log_event(
            log,
            logging.INFO,
            "agent.started",
            "agent started",
            services=len(self.router.workers()),
            heal_concurrency=self._heal_concurrency,
            pid=os.getpid(),
        )

    def schedule(self) -> None:
        """The metrics endpoint, the probes and the agent's periodic jobs."""
        if self.metrics is not None and self._metrics_addr is not None:
            self.metrics.serve(*self._metrics_addr)
            log_event(
                log,
                logging.INFO,
                "metrics.serving",
                "metrics endpoint listening",
                address=f"{self._metrics_addr[0]}:{self._metrics_addr[1]}",
            )
        self.prober.sync(self._in_force())
        self.timers.every(self._relist_s, self._relist, first_s=self._relist_s, io=True)
        self.timers.every(HEARTBEAT_S, self._heartbeat, first_s=HEARTBEAT_S, io=True)
        self.timers.every(KEEPER_S, self._finish_intents, first_s=KEEPER_S, io=True)
        self.timers.every(KEEPER_S, self._forget_gone, first_s=KEEPER_S)
        if self.guard is not None:
            self.timers.every(PRESSURE_S, self._sample_pressure, first_s=PRESSURE_S, io=True)
        if self.notifier.watchdog_interval_s:
            # From the scheduler's own loop: a stuck scheduler stops the pings.
            self.timers.every(self.notifier.watchdog_interval_s, self.notifier.watchdog)

    def reload(self, result: LoadResult, directory: Path) -> None:
        """Apply a re-read policies directory without touching healthy containers (reload.py
        says what is kept)."""
        self.notifier.reloading()
        with self._membership:
            current = {**self._singles, **self._selectors}
            plan = plan_reload(current, result, directory)
            for service in plan.removed:
                if self._selectors.pop(service, None) is None:
                    del self._singles[service]
                    self._retire(service)
            for policy in plan.added + plan.changed:
                service = policy.service
                if policy.is_selector:
                    self._selectors[service] = policy
                    if self._singles.pop(service, None) is not None:
                        self._retire(service)  # a single service became a selector
                    continue
                self._selectors.pop(service, None)  # a selector may become a single
                if service in self._expanded:  # the name goes to the named policy
                    self._retire_expanded(service, "named")
                before = self._singles.get(service)
                self._singles[service] = policy
                if before is None:
                    self._add(policy)
                else:
                    self._tell(before, policy)
            self._reconcile()
            self.prober.sync(self._in_force())
            for policy in plan.added:  # once its probe, if any, is there to aim
                if self.router.get(policy.service) is not None:
                    self._post(policy.service, Look("policy"))
        self.notifier.ready(self.board.summary())

    def _tell(self, before: Policy, policy: Policy) -> None:
        """A service's policy changed: its worker is told, its ticks follow the interval."""
        worker = self.router.get(policy.service)
        if worker is None:
            return
        self.dispatcher.post(worker, NewPolicy(policy))
        if before.check.interval_s != policy.check.interval_s:
            self._ticks.add(policy.service, policy.check.interval_s)

    def _in_force(self) -> list[Policy]:
        return [*self._singles.values(), *self._expanded.values()]

    # Selector policies.

    def _on_event(self, change: Any) -> None:
        self.router.on_event(change)
        if change.action in MEMBERSHIP_ACTIONS:
            self._reconcile()

    def _reconcile(self) -> None:
        """Make the expanded services what the selectors and the containers say: a service
        for each newly selected container, the changed ones told, the gone ones forgotten
        after FORGET_AFTER_S, the unselected ones at once. Only on a synced view."""
        with self._membership:
            if not (self._selectors or self._expanded) or not self.view.synced:
                return
            containers = self.view.containers()
            present = {identity_of(c) for c in containers}
            found = expand(
                self._selectors.values(), self._singles.values(), containers, self._names
            )
            self._tell_conflicts(found.conflicts)
            now = self._clock()
            self._follow_clock()
            for service, had in list(self._expanded.items()):
                if service in found.policies:
                    self._gone.pop(service, None)
                elif had.match.identity in present or had.selected_by not in self._selectors:
                    self._retire_expanded(service, "unselected")
                elif now - self._gone.setdefault(service, now) >= FORGET_AFTER_S:
                    self._retire_expanded(service, "gone")
            added, changed = [], False
            for service, policy in found.policies.items():
                before = self._expanded.get(service)
                self._expanded[service] = policy
                if before is None:
                    self._add(policy, self._saved_services.pop(service, None))
                    added.append(policy)
                    log_event(
                        log,
                        logging.INFO,
                        "selector.added",
                        f"{service} supervised by selector {policy.selected_by}",
                        service=service,
                        selector=policy.selected_by,
                        identity="/".join(policy.match.identity),
                    )
                elif before != policy:
                    self._tell(before, policy)
                    changed = True
            self._names = {
                identity: name
                for identity, name in found.names.items()
                if identity in present or name in self._expanded or name in self._saved_services
            }
            self._expanded_once = True
            if added or changed:
                self.prober.sync(self._in_force())
                for policy in added:
                    self._post(policy.service, Look("policy"))
        self.board.done_waiting("selectors")

    def _follow_clock(self) -> None:
        """Under the membership lock: how long a selected container has been gone keeps
        what was left of it across a step of the clock. (A row kept for one gone stays in
        the frame it names, `clock`: who reads it moves it.)"""
        by = self._followed.moved()
        if by:
            self._gone = {service: at + by for service, at in self._gone.items()}

    def _retire_expanded(self, service: str, why: str) -> None:
        identity = self._expanded.pop(service).match.identity
        self._gone.pop(service, None)
        row = self.board.row(service)
        self._retire(service)
        # Gone (a `compose down` for maintenance), not unselected: an operator's hold,
        # give-up or stop by hand waits for the container to come back, on disk too.
        kept = why == "gone" and operators_word(row, self._clock)
        if kept:
            self._saved_services[service] = row
        log_event(
            log,
            logging.INFO,
            "selector.removed",
            f"{service} no longer supervised ({why})",
            service=service,
            why=why,
            identity="/".join(identity),
            kept=kept,
        )

    def _tell_conflicts(self, conflicts: list[Any]) -> None:
        """Each conflict once while it lasts: the container, who supervises it, who does
        not, and why."""
        told, self._conflicts_told = self._conflicts_told, set()
        for c in conflicts:
            key = (c.container, c.loser, c.winner)
            self._conflicts_told.add(key)
            if key in told:
                continue
            log_event(
                log,
                logging.WARNING,
                "selector.conflict",
                f"{c.container}: {c.winner or 'no service'} over {c.loser}: {c.why}",
                container=c.container,
                winner=c.winner or None,
                loser=c.loser,
                why=c.why,
            )

    def apply_command(self, command: Command, done: Callable[..., None]) -> None:
        """An operator's pause, resume or reset; `done()` is called once it took effect, or
        `done(why)` when it cannot (never "done" for what was not applied)."""
        worker = self.router.get(command.service)
        if worker is None:
            why = (
                f"no service {command.service} is supervised now (a policy added since the "
                "agent started needs a reload first: systemctl reload docker-supervisor)"
            )
            log_event(
                log,
                logging.WARNING,
                "command.refused",
                "operator command refused: no such service",
                command=command.action,
                service=command.service,
            )
            done(why)
            return
        until = command.until
        if command.action == "pause" and until is None:
            until = HELD_FOREVER

        def acknowledge() -> None:
            # Answered once it is on disk: an agent killed right after still knows. What
            # cannot be saved is not "done": it would be lost on the agent's restart.
            if self._writer is not None and not self._writer.write_through():
                done(
                    f"{command.action} {command.service}: applied but not saved (the agent's "
                    "state file cannot be written: a full or read-only filesystem); lost if "
                    "the agent restarts"
                )
                return
            done()

        def took_effect() -> None:
            self.timers.call_later(0, acknowledge, io=True)

        self.dispatcher.post(worker, Operator(command.action, until, took_effect, command.for_s))

    def stop(self) -> None:
        """Stop deciding; let cycles in flight start what they stopped; save state."""
        self.begin_stop()
        self.runner.wait_idle(STOP_WAIT_S)
        self.dispatcher.wait_idle(5)
        self.timers.shutdown()
        self.prober.close()
        for pool in self.parts.pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self.dispatcher.close()
        self.view.stop()
        if self._writer is not None:
            self._writer.close()
        self.engine.close()
        self.notifications.close()
        if self.metrics is not None:
            self.metrics.close()
        log_event(log, logging.INFO, "agent.stopped", "agent stopped")

    def begin_stop(self) -> None:
        """Every worker cancels its waits; cycles past their stop go on to their start."""
        log_event(log, logging.INFO, "agent.stopping", "agent stopping")
        self.notifier.stopping()
        self._stopping = True
        for worker in self.router.workers():
            self.dispatcher.post(worker, Shutdown())

    def flush_state(self) -> None:
        if self._writer is not None:
            self._writer.write_through()

    # The engine.

    # The host's pressure.

    def _sample_pressure(self) -> None:
        if self.guard is None:
            return
        try:
            sample = self.parts.read_host()
        except OSError as e:
            log_event(log, logging.WARNING, "pressure.unreadable", str(e), error=str(e))
            return
        change = self.guard.sample(sample, self._clock())
        if change is not None:
            self._pressure_changed(change)
        self._refresh_deferred()

    def _refresh_deferred(self) -> None:
        """Read the health log of a few deferred services again, in turn."""
        deferred = self.guard.deferred() if self.guard is not None else []
        if not deferred or not self.view.synced:
            return
        start = self._refresh_turn % len(deferred)
        for service in (deferred[start:] + deferred[:start])[:REFRESH_PER_SAMPLE]:
            worker = self.router.get(service)
            seen = worker.seen if worker is not None else None
            if seen is not None and seen.container is not None:
                self.view.refresh(seen.container.id)
        self._refresh_turn += REFRESH_PER_SAMPLE

    def _pressure_changed(self, change: Any) -> None:
        """The guard began or stopped deferring: say so once, lower or restore the heal
        concurrency, and have every service look again."""
        assert self.guard is not None
        limit = self.guard.limit()
        sample = change.sample or HostSample()
        figures = {
            "cpu_pct": sample.cpu_pct,
            "memory_pct": sample.memory_pct,
            "io_pct": sample.io_pct,
            "load_per_core": round(sample.load_per_core, 2),
            "memory_available_pct": round(sample.memory_available_pct, 1),
        }
        if change.pressed:
            self._pressed_at = self._clock()
            log_event(
                log,
                logging.WARNING,
                "pressure.started",
                "host under pressure: heals of services whose checks time out wait",
                why=change.why,
                heal_concurrency=limit,
                **figures,
            )
        else:
            log_event(
                log,
                logging.INFO,
                "pressure.ended",
                "host pressure over: deferred services are healed if still bad after a check",
                deferred=change.deferred,
                duration_s=round(self._clock() - self._pressed_at, 1),
                heal_concurrency=limit,
                **figures,
            )
        self.runner.set_limit(limit)
        self.router.broadcast("pressure")

    def _forget_gone(self) -> None:
        if self._gone:
            self._reconcile()

    def _on_sync(self, synced: bool, error: str | None) -> None:
        was_ok = self.health.ok
        self.health.set(synced, error)
        self._reconcile()  # first, so that the expanded services look with the rest
        if not synced:
            self.board.done_waiting("selectors")  # READY says the engine is away
        self.router.broadcast("engine")
        if synced:
            self.timers.call_later(0, self._finish_intents, True, io=True)
        if synced and not was_ok:
            self.timers.call_later(self.health.settle_s + 0.1, self._settled, io=True)

    def _heartbeat(self) -> None:
        """Ping the engine: a frozen engine keeps its event stream open and says nothing."""
        if not self.view.synced:
            return  # the view is reconnecting and will say when the engine is back
        try:
            self.engine.ping(HEARTBEAT_TIMEOUT_S)
        except SupervisorError as e:
            if self.health.set(False, str(e)):
                self.router.broadcast("engine")
            return
        if self.health.set(True):
            self.router.broadcast("engine")
            self.timers.call_later(self.health.settle_s + 0.1, self._settled, io=True)

    def _settled(self) -> None:
        """At the end of the settle time: look at everything afresh (a restarted engine may
        have stopped containers without a word) and have every service look."""
        self._relist()
        self.router.broadcast("engine")

    def _relist(self) -> None:
        if not self.view.synced:
            return  # the view's own thread is reconnecting, and re-lists when it does
        try:
            self.view.resync()
        except SupervisorError as e:
            log_event(log, logging.WARNING, "view.relist_failed", "re-listing failed", error=str(e))

    def _finish_intents(self, eager: bool = False) -> None:
        """Start what is due; `eager` (the engine is back) tries even what waits a backoff.
        One round at a time (the periodic one, the one after a sync)."""
        self._keeper.ask(eager)

    def _keeper_round(self, eager: bool) -> None:
        if self.view.synced and self.health.ok and not self.dry_run:
            finish_due_intents(
                self.journal,
                self.view,
                self.engine,
                self.router.get,
                self._clock(),
                self.context.rng,
                eager,
            )

    def _snapshot(self) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """What the state file holds: the board's rows, the agent's figures, the intents."""
        agent = {
            "pid": os.getpid(),
            "started_at": self._started_at,
            "api_calls": self.engine.api_calls,
            "manual_stops": self.view.manual_stops(),
        }
        rows = self.board.rows()
        for service, row in list(self._saved_services.items()):
            if not self._expanded_once or operators_word(row, self._clock):
                rows.setdefault(service, dict(row))
        return rows, agent, self.journal.snapshot()


def operators_word(row: dict[str, Any], clock: Clock) -> bool:
    """Whether a service's row holds what only an operator ends: a hold not yet over (in
    the frame the row was saved in), a give-up, a stop by hand."""
    held = row.get("held_until")
    return bool(
        (isinstance(held, int | float) and held + clock.since_saved(row.get("clock")) > clock())
        or row.get("gave_up")
        or row.get("manual_stop")
    )


def _at_once(then: Callable[[], None] | None = None) -> None:
    """With no state file to wait for, what waits for a save happens now."""
    if then is not None:
        then()
