"""One heal cycle as steps: backoff, queued, stopping, pausing, starting, ready, dependents.

A cycle belongs to its service's worker and runs on the worker's messages: timers wake it,
the runner grants its slot and reports its effects. The gate is asked when the backoff
ends and when the slot comes; from the stop on, the cycle always starts what it stopped
(the journal's intent is written before the stop is sent). Waiting for health is reading
the worker's looks, probes included, for a start made after this cycle's stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ..core.gate import WHY_STATE_UNWRITABLE, Verdict, may_heal
from ..core.messages import EffectDone, SlotGranted, Wake
from ..docker.containers import exited_since, stop_wait_s
from ..errors import ContainerGone, StateUnwritable, SupervisorError
from ..logs import log_event
from .journal import DEPENDENT, PROJECT, Intent
from .keeper import hand_to_keeper, stopped_by_agent, taken_down
from .manager import (
    FAILED_EXITED,
    FAILED_GONE,
    FAILED_NOT_READY,
    FAILED_START,
    FAILED_STOP,
    FAILED_TAKEN_OVER,
    describe_error,
)

if TYPE_CHECKING:
    from ..config.model import Policy
    from ..core.gate import Facts
    from ..core.tracker import RestartTracker
    from ..docker.containers import Observation
    from .manager import ServiceManager


class Worker(Protocol):
    """The service's worker a cycle belongs to (core/worker.py), as the cycle uses it."""

    ctx: Any  # the parts every worker shares (core/worker.py's Context)
    cycle: Cycle | None
    policy: Policy
    manager: ServiceManager
    tracker: RestartTracker
    seen: Observation | None
    last_heal: dict[str, Any] | None
    retired: bool

    @property
    def service(self) -> str: ...
    def now(self) -> float: ...
    def facts(self, seen: Observation, now: float, needs: Any = None) -> Facts: ...
    def is_ready(self, seen: Observation, since: float) -> bool: ...
    def may_act_now(self, container: Any = None) -> bool: ...
    def note_manual_stop(self, seen: Observation) -> None: ...
    def observe(self, cause: str) -> Observation: ...
    def post(self, message: Any) -> None: ...
    def publish(
        self, facts: Facts | None = None, then: Callable[[], None] | None = None
    ) -> None: ...


log = logging.getLogger("supervisor.agent")

BACKOFF = "backoff"
QUEUED = "queued"
STOPPING = "stopping"
PAUSING = "pausing"
STARTING = "starting"
READY = "ready"
DEPENDENTS = "dependents"
PRE_STOP = frozenset({BACKOFF, QUEUED})

# What the stop and start effects report.
CANCELLED = "cancelled"
STOPPED = "stopped"
STARTED = "started"
TAKEN_OVER = "taken_over"
UNWRITABLE = "unwritable"  # its intent could not be written: no stop was sent
SKIPPED = "skipped"


class Cycle:
    def __init__(self, worker: Worker, token: int, attempt: int, seen: Observation) -> None:
        self.w = worker
        self.ctx = worker.ctx
        self.token = token
        self.attempt = attempt
        self.phase = BACKOFF
        self.timer: Any = None
        self.has_slot = False
        self.container = seen.container
        self.reason = seen.reason  # what was wrong: a recovery's notification says it
        self.stop_at: float | None = None
        self.stop_error: str | None = None
        self.intent_key: str | None = None
        self.neighbour_keys: tuple[str, ...] = ()  # scope project: the rest of the project
        self.in_flight: str | None = None  # the step whose effect runs now
        self.broken = False  # a step raised: the cycle ends once no effect runs

    def begin(self, delay_s: float) -> None:
        if delay_s > 0:
            self._wait(BACKOFF, delay_s)  # the wait holds no slot
        else:
            self._ask_slot()

    def handle(self, message: Wake | SlotGranted | EffectDone) -> None:
        if isinstance(message, EffectDone) and message.step == self.in_flight:
            self.in_flight = None
            if message.step == STOPPING and message.value:
                self.neighbour_keys = message.value[2]  # what the stop recorded is owed
            if self.broken:
                self._abandon()
                return
        if self.broken:
            return
        if isinstance(message, Wake):
            if message.step != self.phase:
                return
            self.timer = None
            if self.phase == BACKOFF:
                verdict = self._ask_gate()
                if verdict.allowed:
                    self._ask_slot()
                else:
                    self._cancel(verdict.why)
            elif self.phase == PAUSING:
                self._start()
            elif self.phase == READY:
                seen = self.w.seen
                detail = f"{seen.status} {seen.reason}" if seen else None
                self._finish(False, FAILED_NOT_READY, detail)
        elif isinstance(message, SlotGranted):
            if self.phase == QUEUED:
                self._go()
        elif message.step == STOPPING:
            value = message.value or (None, self.stop_at, (), None, None)
            outcome, at, _, failed, sent = value
            if self.stop_at is not None and at != self.stop_at:
                # The budget counts the attempt from when the stop was really sent: so long
                # ago on the steady clock (the wall clock may have stepped since).
                ago = 0.0 if sent is None else max(0.0, self.ctx.clock.steady() - sent)
                self.w.tracker.retime_attempt(self.w.now() - ago)
                self.stop_at = at
            if outcome == CANCELLED:
                self._cancel("held, removed or stopped by hand before the stop")
            elif outcome == UNWRITABLE:
                self.w.tracker.forget_attempt()  # nothing was done
                self._cancel(WHY_STATE_UNWRITABLE)
            else:
                self._stopped(message.error or failed)
        elif message.step == STARTING:
            self._started(message.error, message.value)
        elif message.step == DEPENDENTS:
            self._dependents_done(message.value or [], message.error)

    def look(self, seen: Observation) -> None:
        """Every look of the worker's while this cycle runs: is it ready yet? Or did it
        exit after this cycle's start (no point waiting out ready_timeout)?"""
        if self.phase != READY:
            return
        if self.w.is_ready(seen, self.stop_at or 0.0):
            self._recovered()
            return
        code = exited_since(seen.container.state if seen.container else None, self.stop_at)
        if code is not None:
            self._finish(False, FAILED_EXITED, f"exited with code {code} after its start")

    def interrupt(self, why: str) -> None:
        """Pause, reset, a changed policy, removal or shutdown. Before the stop, the cycle
        is cancelled; after it, the start still happens (a shutdown cuts the pause short)."""
        if self.phase in PRE_STOP or self.phase == READY:
            self._cancel(why)
        elif self.phase == PAUSING and why == "stopping":
            self._start()

    def raised(self, error: Exception) -> None:
        """A step of this cycle raised (a bug, or a fault no step expects): say so once, and
        end it without leaving anything down. What it stopped is handed to the keeper; an
        effect still running ends the cycle when it answers, not before (the keeper must not
        judge a stop still under way)."""
        log_event(
            log,
            logging.ERROR,
            "heal.error",
            "a heal step raised; the heal ends, and what it stopped is started again",
            service=self.w.service,
            attempt=self.attempt,
            phase=self.phase,
            error=f"{type(error).__name__}: {error}",
        )
        self.broken = True
        if self.in_flight is None and self.w.cycle is self:
            self._abandon()

    def _abandon(self) -> None:
        """End a broken cycle: its slot back, its intents the keeper's (started again after
        the service's first backoff, as a failed start's are), the worker free to look."""
        journal = self.ctx.journal
        try:
            for key in self.neighbour_keys:
                journal.release(key)
            if self.intent_key is not None and journal.get(self.intent_key) is not None:
                backoff = self.w.policy.heal.backoff
                hand_to_keeper(journal, self.intent_key, backoff, self.w.now(), self.ctx.rng)
        finally:
            self._end()

    # Steps.

    def _effect(self, step: str, fn: Callable[[], Any]) -> None:
        self.in_flight = step
        self.ctx.runner.effect(self.w, self.token, step, fn)

    def _wait(self, step: str, delay_s: float) -> None:
        self.phase = step
        self.timer = self.ctx.timers.call_later(delay_s, self.w.post, Wake(self.token, step))

    def _ask_gate(self) -> Verdict:
        seen = self.w.observe()
        self.w.seen = seen
        self.w.note_manual_stop(seen)  # the row it publishes next says what this look saw
        return may_heal(self.w.facts(seen, self.w.now()))

    def _ask_slot(self) -> None:
        self.phase = QUEUED
        active = self.ctx.runner.want_slot(self.w, self.token)
        if active is None:
            self._go()
        else:
            log_event(
                log,
                logging.INFO,
                "heal.queued",
                "heal queued behind others",
                service=self.w.service,
                attempt=self.attempt,
                active=active,
            )

    def _go(self) -> None:
        self.has_slot = True
        verdict = self._ask_gate()
        if not verdict.allowed:
            self._cancel(verdict.why)
            return
        policy, container = self.w.policy, self.w.seen.container
        compose = policy.heal.scope != "container"
        if not compose and container is None:
            self._finish(False, FAILED_GONE, None)
            return
        now, wall = self.w.now(), self.ctx.clock.now()  # wall: to compare with the engine's
        self.stop_at, self.container = wall, container
        self.w.tracker.record_attempt(now)
        found = container.state if container else None
        if compose:
            cid = container.id if container else None
            intent = Intent.for_compose(self.w.service, cid, wall, found)
        else:
            intent = Intent.for_container(self.w.service, container.id, wall, found=found)
        self.intent_key = intent.key
        self.phase = STOPPING
        log_event(
            log,
            logging.INFO,
            "heal.stopping",
            "stopping for heal",
            service=self.w.service,
            container=container.name if container else None,
            attempt=self.attempt,
            scope=policy.heal.scope,
            stop_timeout_s=stop_wait_s(container, policy.heal.stop_timeout_s),
        )
        self.w.publish()  # the attempt is in the row the intent's write-through saves
        journal, manager, worker, clock = self.ctx.journal, self.w.manager, self.w, self.ctx.clock

        def stop() -> tuple[str, float, tuple[str, ...], Exception | None, float]:
            at, sent = clock.now(), clock.steady()  # at: compared with the engine's stamps
            if not worker.may_act_now(container) or (compose and _gone(manager, container)):
                return CANCELLED, at, (), None, sent
            # Stamped as it is written, just before the stop, and again as the stop returns:
            # only a later start fulfils it, and only a container that finished in between
            # was taken down by this stop.
            neighbours = [
                Intent.for_container(worker.service, c.id, at, PROJECT, c.state)
                for c in manager.project_neighbours(container)
            ]
            keys = (intent.key, *(n.key for n in neighbours))
            own = replace(intent, at=at)
            if clock.stepped_back and container is not None:
                # Its stamps read from the view may be older than the run this stop ends;
                # after a step back a stamp is no order: the engine's word, just before.
                own = own.found(manager.state_of(container))
            try:
                journal.record(own, *neighbours)
            except StateUnwritable:
                return UNWRITABLE, at, (), None, sent
            try:
                manager.stop_step(container)
            except Exception as e:  # it may have half happened: what it recorded is owed
                return STOPPED, at, keys[1:], e, sent
            finally:
                journal.stopped(keys, clock.now())
            return STOPPED, at, keys[1:], None, sent

        self._effect(STOPPING, stop)

    def _stopped(self, error: Exception | None) -> None:
        if error is not None:
            # The stop may have half happened: start anyway, so nothing stays down.
            self.stop_error = describe_error(error)
            self._start()
            return
        log_event(
            log,
            logging.INFO,
            "heal.stopped",
            "stopped for heal",
            service=self.w.service,
            container=self.container.name if self.container else None,
            scope=self.w.policy.heal.scope,
        )
        pause_s = 0.0 if self.ctx.stopping() else self.w.policy.heal.pause_s
        if pause_s > 0:
            self._wait(PAUSING, pause_s)
        else:
            self._start()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _start(self) -> None:
        self._cancel_timer()
        self.phase = STARTING
        worker, manager, container = self.w, self.w.manager, self.container
        journal, key, neighbours = self.ctx.journal, self.intent_key or "", self.neighbour_keys

        def start() -> str:
            # Held or removed now, and not taken down by the agent's stop (this cycle's, or
            # an earlier failed attempt's it still owes): not the agent's to start.
            # No intent left: its start was seen since (an operator's), nothing is owed.
            if not worker.may_act_now():
                owed = journal.get(key)
                if owed is None or not stopped_by_agent(manager.state_of(container), owed):
                    return SKIPPED
            # A project heal starts with its own service those its stop took down, and only
            # those: an exited one-shot or a neighbour stopped by hand stays down.
            taken = taken_down(journal, neighbours, manager.engine) if neighbours else []
            return STARTED if manager.start_step(container, neighbours=taken) else TAKEN_OVER

        self._effect(STARTING, start)

    def _started(self, error: Exception | None, outcome: str | None) -> None:
        journal, key = self.ctx.journal, self.intent_key or ""
        for neighbour in self.neighbour_keys:
            # Started with the project (their start events fulfil them), or not: the
            # keeper judges what is left from the engine's word.
            journal.release(neighbour)
        if error is None or isinstance(error, ContainerGone):
            # Started (the engine's answer is the start, seen), left to an operator, or
            # nothing left to start: the intent is done with.
            journal.clear(key)
        else:
            # Still down: the keeper owns the intent now. This failure is reported below
            # (heal.failed), so the keeper's first try waits a backoff, as a next attempt would.
            hand_to_keeper(journal, key, self.w.policy.heal.backoff, self.w.now(), self.ctx.rng)
        if outcome == TAKEN_OVER:
            self._finish(False, FAILED_TAKEN_OVER, "stopped by hand during the cycle")
        elif outcome == SKIPPED:
            self._cancel("held or removed; it was down before the stop")
        elif isinstance(error, ContainerGone):
            self._finish(False, FAILED_GONE, describe_error(error))
        elif error is not None:
            self._finish(False, FAILED_START, describe_error(error))
        elif self.stop_error is not None:
            self._finish(False, FAILED_STOP, self.stop_error)
        elif self.ctx.stopping():
            self._cancel("stopping")
        elif self.w.retired:  # started again as owed; no longer its to wait for
            self._cancel("removed")
        else:
            self._wait(READY, self.w.policy.heal.ready_timeout_s)
            self.look(self.w.observe())

    def _recovered(self) -> None:
        self._cancel_timer()
        self.w.tracker.record_recovered(self.w.now())
        say = self._report(True, None, None)
        w = self.w
        facts = w.facts(w.seen, w.now()) if w.seen else None
        if w.policy.heal.dependents != "restart" or facts is None or facts.held or facts.stopping:
            self._end(say)
            return
        self.phase = DEPENDENTS
        w.publish(then=say)
        journal, service, clock = self.ctx.journal, w.service, self.ctx.clock
        earlier = self.container.id if self.container else None

        def before_stop(dependent: Any) -> str:
            intent = Intent.for_container(
                service, dependent.id, clock(), DEPENDENT, dependent.state
            )
            journal.record(intent)
            return intent.key

        def after_start(key: str, started: bool) -> None:
            journal.stopped((key,), clock())
            if started:
                journal.clear(key)
            else:  # reported (heal.dependent): the keeper tries again after a backoff
                hand_to_keeper(journal, key, w.policy.heal.backoff, clock(), self.ctx.rng)

        since, left_alone = self.stop_at, self.ctx.left_alone

        def leave(dependent: Any) -> str | None:
            # Held, removed or the agent stopping since it recovered: the heal ends here.
            if not w.may_act_now():
                return "its parent's heal was held or ended"
            return left_alone(dependent)

        self._effect(
            DEPENDENTS,
            lambda: w.manager.restart_dependents(earlier, before_stop, after_start, since, leave),
        )

    def _dependents_done(self, outcomes: list[Any], error: Exception | None) -> None:
        for outcome in outcomes:
            log_event(
                log,
                logging.ERROR if outcome.error else logging.INFO,
                "heal.dependent",
                f"dependent {outcome.action}",
                service=self.w.service,
                dependent=outcome.container,
                why=outcome.why,
                action=outcome.action,
                error=outcome.error,
                detail=outcome.detail,
            )
        if error is not None:
            log_event(
                log,
                logging.ERROR,
                "heal.error",
                "restarting dependents raised",
                service=self.w.service,
                error=f"{type(error).__name__}: {error}",
            )
        self._end()

    # Endings.

    def _finish(self, recovered: bool, why: str | None, detail: str | None) -> None:
        self._end(self._report(recovered, why, detail))

    def _report(self, recovered: bool, why: str | None, detail: str | None) -> Callable[[], None]:
        """Record the attempt's outcome; return its log line, to be said once the state
        file carries the outcome (`status` is never behind the journal)."""
        w, now = self.w, self.w.now()
        duration_s = round(now - self.stop_at, 3) if self.stop_at is not None else 0.0
        fields = dict(
            service=w.service,
            container=self.container.name if self.container else None,
            attempt=self.attempt,
            duration_s=duration_s,
        )
        if self.ctx.metrics is not None:
            self.ctx.metrics.healed(w.service, recovered, duration_s)
        self.ctx.notify(
            w.policy.notify,
            "heal.recovered" if recovered else "heal.failed",
            **fields,
            reason=why or self.reason,
        )
        w.last_heal = {
            "at": now,
            "attempt": self.attempt,
            "result": "recovered" if recovered else "failed",
            "reason": why,
            "duration_s": duration_s,
        }

        def say() -> None:
            if recovered:
                log_event(log, logging.INFO, "heal.recovered", "healthy again", **fields)
            else:
                log_event(
                    log,
                    logging.ERROR,
                    "heal.failed",
                    "heal failed",
                    **fields,
                    reason=why,
                    detail=detail,
                )

        return say

    def _cancel(self, why: str) -> None:
        seen = self.w.seen
        log_event(
            log,
            logging.INFO,
            "heal.cancelled",
            "heal cancelled",
            service=self.w.service,
            attempt=self.attempt,
            why=why,
            status=str(seen.status) if seen else None,
            reason=seen.reason if seen else None,
        )
        self._end()

    def _end(self, then: Callable[[], None] | None = None) -> None:
        """The cycle is over. With an outcome to say (`then`), the slot is given back once
        it is said: the journal shows it ending before the next cycle begins."""
        self._cancel_timer()
        runner, worker, token, had_slot = self.ctx.runner, self.w, self.token, self.has_slot

        def give_back() -> None:
            if had_slot:
                runner.release(worker, token)
            else:
                runner.withdraw(worker, token)

        self.w.cycle = None
        if then is None:
            give_back()
            self.w.publish()
            return

        def say_and_give_back() -> None:
            try:
                then()
            finally:
                give_back()

        self.w.publish(then=say_and_give_back)


def _gone(manager: Any, container: Any) -> bool:
    """Whether the container a compose heal decided on was removed since (or cannot be told
    of): compose stops by service, so it would stop whatever replaced it (a `compose down`
    and `up` meanwhile), which is not this heal's to stop."""
    if container is None:
        return False
    try:
        return manager.state_of(container) is None
    except SupervisorError:
        return True
