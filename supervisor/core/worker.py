"""One service's worker: the only writer of that service's state.

Every input arrives as a message (messages.py) and is handled one at a time, quickly, with
no I/O: the worker observes (the view and the prober's verdict, both in memory), asks the
gate and the tracker, publishes to the board, and hands the heal cycle (act/cycle.py) its
steps. What it must not do: call the engine, compose, the network or the disk itself, or
wait for anything.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..act.cycle import Cycle
from ..act.journal import COMPOSE, CONTAINER, Journal, compose_key
from ..act.manager import ServiceManager
from ..act.runner import HealRunner
from ..config.model import Policy
from ..docker.containers import REFUSALS, Observation, discover, observe_in, refusal_for
from ..docker.health import EngineHealth
from ..docker.states import (
    REASON_ENGINE_UNREACHABLE,
    REASON_PROBE_FAILED,
    REASON_UNHEALTHY,
    Status,
)
from ..logs import SaidOnce, log_event
from ..probe.prober import FAILED, OK, Prober
from ..publish.board import Board
from ..runtime.clock import Clock, Follower
from ..runtime.dispatch import Dispatcher
from ..runtime.timers import Timers
from .gate import HELD_FOREVER, WATCH_ONLY, WHY_HOST_PRESSURE, WHY_NOT_OURS, Facts, may_heal
from .messages import EffectDone, Look, NewPolicy, Operator, Remove, Shutdown, SlotGranted, Wake
from .pressure import PressureGuard, health_timed_out
from .rows import build_row, make_facts
from .tracker import (
    GIVE_UP,
    HEAL,
    NOTHING,
    RESET,
    WHY_BELOW_THRESHOLD,
    Decision,
    RestartTracker,
    policy_digest,
)

log = logging.getLogger("supervisor.agent")


# Looks after which the containers match as before: a tick, a state change of the container
# found last time, the host's pressure, a probe's verdict, a recheck, an operator's command.
# (An identity event, a new policy or the engine's return may change who matches what.)
SAME_MATCH = frozenset({"tick", "state", "pressure", "probe", "recheck", "command"})


@dataclass
class Context:
    """The parts every worker shares; the composition root (agent.py) fills it in."""

    view: Any  # view.ContainerView: containers(), is_manual_stop(), synced
    clock: Clock
    engine: EngineHealth
    prober: Prober
    runner: HealRunner
    journal: Journal
    timers: Timers
    dispatcher: Dispatcher
    board: Board
    claim: Callable[[str, str | None], None]
    make_manager: Callable[[Policy], ServiceManager]
    notify: Callable[..., None] = lambda *args, **kwargs: None
    metrics: Any = None
    dry_run: bool = False
    stopping: Callable[[], bool] = lambda: False
    rng: Callable[[], float] = random.random
    guard: PressureGuard | None = None  # None: every bad check is healed as it comes
    pressure_changed: Callable[[Any], None] = lambda change: None
    services: Callable[[], int] = lambda: 1
    # Why a container must not be restarted as a dependent (its service held, given up).
    left_alone: Callable[[Any], str | None] = lambda container: None
    # What a container needs that is down (words, that container's id), and whether all
    # it needs is healthy; and where to ask for a look when a container waited for changes.
    waits_for: Callable[[Any], tuple[str | None, str | None, bool]] = lambda container: (
        None,
        None,
        True,
    )
    wait_on: Callable[[str, str | None], None] = lambda service, container_id: None
    state_ok: Callable[[], bool] = lambda: True  # False while the state file cannot be written


class Worker:
    def __init__(self, policy: Policy, ctx: Context, saved: dict[str, Any] | None = None):
        self.policy = policy
        self.ctx = ctx
        self.manager = ctx.make_manager(policy)
        self.tracker = RestartTracker(policy.heal, policy.check, ctx.rng)
        self.digest = policy_digest(policy)
        self.held_until: float | None = None
        self.followed = Follower(ctx.clock)  # the clock's steps its instants moved by
        self.handling: int | None = None  # the thread handling its message now
        # The start it saw last (the engine's stamp), and when it first saw it.
        self.start_seen: tuple[float | None, float] = (None, 0.0)
        self.manual_stop: str | None = None
        self.last_heal: dict[str, Any] | None = None
        self.supervised = True
        # Set once, by the agent's reload, the moment the service is removed: the one field
        # another thread writes, so that a stop already asked for is not sent after that.
        self.retired = False
        self.cycle: Cycle | None = None
        self.token = 0
        self.seen: Observation | None = None
        # Since when its checks time out (told to the guard once), and a look planned for
        # when a deferral ends.
        self.timed_out_since: float | None = None
        self.recheck_at: float | None = None
        self.refused_told: str | None = None  # the container heal.refused was said of
        # Given up, and since then something it needs was down: once that is healthy
        # again, the give-up ends (the stack came back; it deserves a fresh try).
        self.gave_up_waiting = False
        self.raised = SaidOnce()  # what handling a message raised, said once per cause
        if saved:
            self._restore(saved)

    @property
    def service(self) -> str:
        return self.policy.service

    def _restore(self, saved: dict[str, Any]) -> None:
        self.tracker.restore(saved, same_policy=saved.get("policy_digest") == self.digest)
        for intent in self.ctx.journal.intents():
            if intent.service == self.service and intent.kind in (CONTAINER, COMPOSE):
                self.tracker.stop_sent_at(intent.at)
        last_heal = saved.get("last_heal")
        self.last_heal = last_heal if isinstance(last_heal, dict) else None
        held = saved.get("held_until")
        self.held_until = float(held) if isinstance(held, int | float) else None
        manual = saved.get("manual_stop")
        self.manual_stop = manual if isinstance(manual, str) else None
        # Saved before a step of the clock that this agent was not there to follow.
        self._shift(self.ctx.clock.since_saved(saved.get("clock")))

    def post(self, message: Any) -> None:
        self.ctx.dispatcher.post(self, message)

    def now(self) -> float:
        """The wall clock. On the thread handling its message, a step just noticed moves
        its instants at once; elsewhere (an effect asking `may_act_now`), the step its
        instants have not followed yet is taken back: what it compares is on one clock."""
        wall = self.ctx.clock.now()
        if self.handling == threading.get_ident():
            self._follow_clock()
            return wall
        return wall - self.followed.pending()

    def _follow_clock(self) -> None:
        """On the thread handling its message: the instants that end a duration (its hold,
        restart window, stable time, deferral, planned look, a start first seen) move by
        the clock's steps since, so each keeps what was left of it."""
        self._shift(self.followed.moved())

    def _shift(self, by: float) -> None:
        if not by:
            return
        self.tracker.shift(by)
        if self.held_until is not None and self.held_until != HELD_FOREVER:
            self.held_until += by
        if self.timed_out_since is not None:
            self.timed_out_since += by
        if self.recheck_at is not None:
            self.recheck_at += by
        stamp, seen_at = self.start_seen
        self.start_seen = (stamp, seen_at + by)

    # Messages.

    def handle(self, message: Any) -> None:
        self.handling = threading.get_ident()
        try:
            self._follow_clock()
            self._handle(message)
        except Exception as e:  # a bug ends the heal under way, never the service
            self._raised(message, e)
            return
        finally:
            self.handling = None
        if isinstance(message, Look):
            self.raised.clear()

    def _raised(self, message: Any, error: Exception) -> None:
        """Handling `message` raised. A heal under way ends, starting again what it
        stopped (`heal.error`); otherwise it is said once per cause (`worker.error`), and
        the service's next look is made as usual. The row is published either way."""
        cycle = self.cycle
        if cycle is not None and not cycle.broken:
            cycle.raised(error)
        else:
            what = "handling a message raised; the service goes on"
            handling = type(message).__name__
            self.raised.say(
                log, "worker.error", what, error, service=self.service, handling=handling
            )
        self.publish()  # the row says what is known now, not what the broken step left

    def _handle(self, message: Any) -> None:
        if isinstance(message, Look):
            self.look(message.cause)
        elif isinstance(message, Wake | SlotGranted | EffectDone):
            if self.cycle is not None and self.cycle.token == message.token:
                self.cycle.handle(message)
                self.publish()
            elif isinstance(message, SlotGranted):
                self.ctx.runner.release(self, message.token)  # for a cycle that is over
        elif isinstance(message, Operator):
            self._operator(message)
        elif isinstance(message, NewPolicy):
            self._new_policy(message.policy)
        elif isinstance(message, Remove):
            self.supervised = False
            if self.cycle is not None:
                self.cycle.interrupt("removed")
        elif isinstance(message, Shutdown) and self.cycle is not None:
            self.cycle.interrupt("stopping")

    # Looking.

    def observe(self, cause: str = "") -> Observation:
        """Docker's view of the service, made worse by a failed agent-side probe."""
        view = self.ctx.view
        if not view.synced or not self.ctx.engine.ok:
            return Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE)
        seen = observe_in(self.policy, self._candidates(view, cause), view.is_manual_stop)
        running = seen.status is Status.RUNNING
        if not self.retired:  # a successor of the same name may own the probe now
            self.ctx.prober.aim(self.service, seen.container if running else None, seen.started_at)
        if running:
            verdict, error = self.ctx.prober.verdict(self.service, seen.started_at)
            if verdict == FAILED:
                seen = replace(seen, status=Status.ERROR, reason=REASON_PROBE_FAILED, detail=error)
        return seen

    def _candidates(self, view: Any, cause: str) -> list[Any]:
        """The containers to match: for a look that changes nothing of who matches what
        (SAME_MATCH), the one found last time if it still matches the policy's only key
        (any container that appears or changes name since is routed here as an event, and
        events scan them all); otherwise every container."""
        last = self.seen.container if self.seen is not None else None
        if cause in SAME_MATCH and last is not None and _single_key(self.policy):
            container = view.get(last.id)
            if container is not None and discover(
                self.policy.match, self.policy.project, [container], self.policy.compose_file
            ):
                return [container]
        return view.containers()

    def started_at(self, seen: Observation) -> float | None:
        """When its container started, on the clock as it reads now: a start before a
        forward step of the clock is no older than it was (its grace is not over), and no
        start is younger than since this worker first saw it (a step back does not give it
        the step's length of grace)."""
        if seen.started_at is None:
            return None
        if self.start_seen[0] != seen.started_at:
            self.start_seen = (seen.started_at, self.now())
        return min(self.ctx.clock.in_frame(seen.started_at), self.start_seen[1])

    def is_ready(self, seen: Observation, since: float) -> bool:
        """Healthy after a start made after `since` (probes included, when there is one)."""
        if not seen.is_healthy or seen.started_at is None or seen.started_at <= since:
            return False
        if not self.ctx.prober.has_probe(self.service):
            return True
        return self.ctx.prober.verdict(self.service, seen.started_at)[0] == OK

    def may_act_now(self, container: Any = None) -> bool:
        """Asked by an effect as it runs (on the effects pool or the keeper's thread): a
        hold, a removal, a stop of the agent, a smaller budget, or a stop by hand of
        `container`, that came after the decision, wins. Read on the clock its instants
        are on."""
        now = self.now()
        held = self.held_until is not None and now < self.held_until
        manual = container is not None and self.ctx.view.is_manual_stop(container.id)
        # The attempt under way is already counted; a reload may have lowered the budget.
        spent = self.tracker.restarts_in_window(now) > self.policy.heal.max_restarts
        waits = container is not None and self.ctx.waits_for(container)[0] is not None
        return not (self.retired or held or self.ctx.stopping() or manual or spent or waits)

    def needs(self, seen: Observation) -> tuple[str | None, str | None, bool]:
        """What its container needs that is down (words, id), and whether all it needs is
        healthy."""
        if seen.container is None or seen.reason == REASON_ENGINE_UNREACHABLE:
            return None, None, True
        return self.ctx.waits_for(seen.container)

    def facts(
        self,
        seen: Observation,
        now: float,
        needs: tuple[str | None, str | None, bool] | None = None,
    ) -> Facts:
        """The gate's facts; `needs`, what this look already read of what it needs."""
        if needs is None and not seen.is_healthy:
            needs = self.needs(seen)
        return make_facts(
            self.policy,
            seen,
            self.tracker,
            now,
            self.held_until,
            started_at=self.started_at(seen),
            supervised=self.supervised and not self.retired,
            stopping=self.ctx.stopping(),
            settling=self.ctx.engine.settling(now),
            deferred=self.deferred_until(seen, now) is not None,
            waiting_for=None if seen.is_healthy or needs is None else needs[0],
            state_unwritable=not self.ctx.state_ok(),
        )

    def timed_out(self, seen: Observation) -> bool:
        """Bad because its checks timed out, not because they failed: Docker's health
        checks, or the agent's own probe."""
        if seen.reason == REASON_PROBE_FAILED:
            return self.ctx.prober.timed_out(self.service, seen.started_at)
        return (
            seen.reason == REASON_UNHEALTHY
            and seen.container is not None
            and health_timed_out(seen.container.state)
        )

    def deferred_until(self, seen: Observation, now: float) -> float | None:
        """While the host is pressed, a service whose checks timed out waits, at most the
        guard's `max_defer_s` from when they began to time out (None: not deferred, the heal
        goes ahead); once calm, until its next check has run."""
        guard = self.ctx.guard
        if guard is None or not self.timed_out(seen):
            return None
        if guard.pressed:
            began = self.timed_out_since if self.timed_out_since is not None else now
            until = began + guard.thresholds.max_defer_s
            return until if now < until else None
        calm = guard.calm_since()
        if calm is None or self.timed_out_since is None or self.timed_out_since > calm:
            return None  # timed out on a calm host: a real failure
        probe = self.policy.check.probe
        if seen.reason == REASON_PROBE_FAILED and probe is not None:
            until = calm + probe.period_s + probe.timeout_s
        else:
            until = calm + seen.container.health_check_s
        return until if now < until else None

    def look(self, cause: str) -> None:
        if not self.ctx.view.answered:
            return  # not "unreachable": unknown; the view's first outcome has everyone look
        now = self.now()
        seen = self.observe(cause)
        self.seen = seen
        if seen.reason != REASON_ENGINE_UNREACHABLE and not self.retired:
            self.ctx.claim(self.service, seen.container.id if seen.container else None)
            self.note_manual_stop(seen)
            self._note_compose_start(seen)
        if self.ctx.metrics is not None and not self.retired:
            self.ctx.metrics.checked(self.service)
        self._note_timeout(seen, now)
        needs = self._note_needs(seen)
        facts: Facts | None = None
        if self.cycle is not None:
            self.cycle.look(seen)
        else:
            facts = self.facts(seen, now, needs)
            why = may_heal(facts).why
            if why == WHY_NOT_OURS:
                self._refuse(seen)
            elif why == WHY_HOST_PRESSURE:
                self._defer(seen, now)
                facts = None
            elif why not in WATCH_ONLY:
                self._deferral_over(seen, now)
                decision = self.tracker.decide(seen.status, seen.reason, now, self.started_at(seen))
                self._act(decision, seen)
                if decision.action != NOTHING:
                    facts = None  # an attempt, a give-up or a reset: the facts moved
        # The facts of a look that did nothing still hold (the common case, every tick).
        self.publish(facts)

    def _note_needs(self, seen: Observation) -> tuple[str | None, str | None, bool] | None:
        """Look again when what it waits for changes; end a give-up that was the doing of
        something it needs, once that is healthy again. Returns what it read (None: read
        nothing), for the gate's facts of the same look."""
        if self.retired:
            return None
        if not self.tracker.gave_up:
            self.gave_up_waiting = False
        if seen.is_healthy and not self.gave_up_waiting:
            self.ctx.wait_on(self.service, None)  # the common case: nothing read
            return None
        needs = self.needs(seen)
        waiting, waited_id, healthy = needs
        self.ctx.wait_on(self.service, None if seen.is_healthy else waited_id)
        if waiting is not None and self.tracker.gave_up and self._down(waited_id):
            # What it needs went down: its failures may have been for want of it. (Held
            # or given up while running is no reason to doubt the give-up.)
            self.gave_up_waiting = True
        if not (self.gave_up_waiting and healthy):
            return needs
        self.gave_up_waiting = False
        self.tracker.reset()
        log_event(
            log,
            logging.INFO,
            "heal.reset",
            "give-up ended: what it needs is healthy again",
            **self.fields(seen),
            why="dependency_back",
        )
        return needs

    def _down(self, container_id: str | None) -> bool:
        """Whether a container it needs is down (gone, not running, or stopped by hand)."""
        view = self.ctx.view
        found = view.get(container_id) if container_id else None
        if found is None:
            return True
        return not (found.state or {}).get("Running") or view.is_manual_stop(found.id)

    def _note_timeout(self, seen: Observation, now: float) -> None:
        """Tell the guard once when the checks start timing out (it counts storms)."""
        guard = self.ctx.guard
        if guard is None or self.retired:
            return
        if not self.timed_out(seen):
            if seen.reason != REASON_ENGINE_UNREACHABLE:
                self.timed_out_since = None
                guard.undefer(self.service)
            return
        if self.timed_out_since is None:
            self.timed_out_since = now
            change = guard.timed_out(self.service, now, self.ctx.services())
            if change is not None:
                self.ctx.pressure_changed(change)

    def _refuse(self, seen: Observation) -> None:
        """Once per container, when it is bad: it is not the agent's to heal, and why."""
        container = seen.container
        if container is None or seen.is_healthy or self.refused_told == container.id:
            return
        self.refused_told = container.id
        why = refusal_for(self.policy, container)
        log_event(
            log,
            logging.WARNING,
            "heal.refused",
            REFUSALS.get(why or "", "not healed"),
            **self.fields(seen),
            why=why,
        )

    def _defer(self, seen: Observation, now: float) -> None:
        """Once per episode: say the heal waits; once calm, look again when it may go on."""
        guard = self.ctx.guard
        if guard is not None and guard.defer(self.service):
            log_event(
                log,
                logging.WARNING,
                "heal.deferred",
                "heal deferred: checks timed out on a pressed host",
                **self.fields(seen),
                why=WHY_HOST_PRESSURE,
            )
        until = self.deferred_until(seen, now)
        if until is not None and until != float("inf") and self.recheck_at != until:
            self.recheck_at = until
            self.ctx.timers.call_later(until - now + 0.01, self.post, Look("recheck"))

    def _deferral_over(self, seen: Observation, now: float) -> None:
        """A deferral that reached its bound while the host stays pressed: said once, and
        the heal goes ahead (a service really hung on a host that stays busy is healed)."""
        guard = self.ctx.guard
        if guard is None or self.service not in guard.deferred() or not self.timed_out(seen):
            return
        guard.undefer(self.service)
        log_event(
            log,
            logging.WARNING,
            "heal.deferral_over",
            "deferred as long as it may be on a pressed host: healing now",
            **self.fields(seen),
            deferred_s=round(now - (self.timed_out_since or now), 3),
            max_defer_s=guard.thresholds.max_defer_s,
        )

    def note_manual_stop(self, seen: Observation) -> None:
        if seen.manual_stop and not seen.is_healthy and seen.container is not None:
            self.manual_stop = seen.container.id
        elif seen.status is not Status.STOPPED or not seen.manual_stop:
            self.manual_stop = None

    def _note_compose_start(self, seen: Observation) -> None:
        """A compose-scope intent is fulfilled once the service runs from a start after it."""
        intent = self.ctx.journal.get(compose_key(self.service))
        if intent is None or seen.container is None or seen.started_at is None:
            return
        if seen.status in (Status.RUNNING, Status.STARTING) and intent.later_run(seen.started_at):
            self.ctx.journal.clear(intent.key)

    def _act(self, decision: Decision, seen: Observation) -> None:
        fields = self.fields(seen)
        if decision.action == HEAL:
            log_event(
                log,
                logging.WARNING,
                "heal.started",
                "would heal (dry run)" if self.ctx.dry_run else "heal started",
                **fields,
                attempt=decision.attempt,
                delay_s=round(decision.delay_s, 3),
                scope=self.policy.heal.scope,
            )
            if self.ctx.dry_run:
                # Nothing is done, so nothing escalates: the next bad check decides the same.
                same = replace(decision.memory, attempt=self.tracker.attempt)
                self.tracker.commit(replace(decision, memory=same))
                return
            self.tracker.commit(decision)
            self.token += 1
            self.cycle = Cycle(self, self.token, decision.attempt, seen)
            self.cycle.begin(decision.delay_s)
            return
        self.tracker.commit(decision)
        if decision.action == GIVE_UP:
            log_event(
                log,
                logging.ERROR,
                "heal.gave_up",
                "crash loop: giving up",
                **fields,
                attempt=decision.attempt,
                restarts=self.tracker.restarts_in_window(self.now()),
                window_s=self.policy.heal.window_s,
            )
            if self.ctx.metrics is not None:
                self.ctx.metrics.gave_up(self.service)
            self.ctx.notify(
                self.policy.notify,
                "heal.gave_up",
                service=self.service,
                container=fields["container"],
                reason=seen.reason,
                attempt=decision.attempt,
            )
        elif decision.why == WHY_BELOW_THRESHOLD:
            log_event(
                log,
                logging.INFO,
                "heal.pending",
                "bad check below the failure threshold",
                **fields,
                bad_checks=self.tracker.memory.bad_checks,
                failures=self.policy.check.failures,
            )
        elif decision.action == RESET:
            log_event(log, logging.INFO, "heal.reset", "backoff reset", **fields, why=decision.why)

    def fields(self, seen: Observation | None) -> dict[str, Any]:
        seen = seen or self.seen
        return {
            "service": self.service,
            "container": seen.container.name if seen and seen.container else None,
            "status": str(seen.status) if seen else None,
            "reason": seen.reason if seen else None,
            "detail": seen.detail if seen else None,
        }

    # Operators and reloads.

    def _operator(self, command: Operator) -> None:
        if command.action == "pause":
            until = command.until if command.for_s is None else self.now() + command.for_s
            self.held_until = until
            log_event(
                log,
                logging.INFO,
                "service.held",
                "held: watched, not healed",
                service=self.service,
                held_until=until,
            )
            if self.cycle is not None:
                self.cycle.interrupt("held")
        elif command.action == "resume":
            self.held_until = None
            log_event(log, logging.INFO, "service.resumed", "no longer held", service=self.service)
        else:
            self.tracker.reset()
            if self.cycle is not None and self.cycle.stop_at is not None:
                self.tracker.record_attempt(self.cycle.stop_at)  # the one under way counts
            log_event(
                log,
                logging.INFO,
                "heal.reset",
                "backoff and give-up cleared",
                service=self.service,
                why="operator",
            )
            if self.cycle is not None:
                self.cycle.interrupt("reset")
        self.look("command")
        if self.seen is None:  # not looked at yet: its row keeps what the command changed
            self.ctx.board.remember(
                self.service,
                held_until=self.held_until,
                clock=self.followed.frame(),
                **self.tracker.to_snapshot(),
            )
        if command.done is not None:
            command.done()

    def _new_policy(self, policy: Policy) -> None:
        """A changed policy starts afresh (no give-up, attempt 1) but keeps its history."""
        history = self.tracker.memory.restarts_at
        self.policy = policy
        self.digest = policy_digest(policy)
        self.manager = self.ctx.make_manager(policy)
        self.tracker = RestartTracker(policy.heal, policy.check, self.ctx.rng)
        self.tracker.memory = replace(self.tracker.memory, restarts_at=history)
        if self.cycle is not None:
            self.cycle.interrupt("policy_changed")
        self.look("policy")

    # Publishing.

    def publish(self, facts: Facts | None = None, then: Callable[[], None] | None = None) -> None:
        """Hand the board this service's row; `then` (a heal's outcome line) runs once the
        state file holds it."""
        seen = self.seen
        if seen is None or not self.supervised or self.retired:
            # A removed service's row is gone; a successor's is not ours to write.
            if then is not None:
                then()
            return
        now = self.now()
        try:
            if facts is None:
                facts = self.facts(seen, now)
            row = build_row(
                self.policy,
                seen,
                facts,
                self.tracker,
                now,
                phase=self.cycle.phase if self.cycle else None,
                held_until=self.held_until,
                manual_stop=self.manual_stop,
                last_heal=self.last_heal,
                policy_digest=self.digest,
                deferred=facts.deferred,
                clock=self.followed.frame(),  # the frame its instants are in
            )
        except Exception:
            if then is not None:  # no row to wait for: what waits on it is not lost
                then()
            raise
        self.ctx.board.publish(self.service, row, seen.detail, then)


def _single_key(policy: Policy) -> bool:
    match = policy.match
    keys = [match.compose_service, match.labels or None, match.name, match.port, match.identity]
    return sum(key is not None for key in keys) == 1
