"""Finishing due intents: start again what the agent stopped and nobody started.

An intent is due when no cycle owns it: its cycle's start failed, or the agent that wrote it
died. Run now and then and after every (re)connection, on an I/O thread. A container that
runs again, is gone, or was stopped by hand since is dropped from the journal, and so is one
that no longer belongs to its service (a state file names it; it does not vouch for it); the
rest is started (a compose intent as its service's heal would start it). A failed start stays
due and is tried again after its service's backoff (`heal.backoff`: initial, doubling to max,
jittered), not on every round: the failure is logged once, at error (`heal.resume_failed`, or
the cycle's own `heal.failed` when its start failed first), each later one at debug
(`heal.resume_retrying`), and the start that works at warning (`heal.resumed`). After a
(re)connection every due intent is tried at once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..config.model import BackoffPolicy
from ..core.tracker import compute_backoff_delay_s
from ..docker.containers import (
    LABEL_COMPOSE_PROJECT,
    ContainerInfo,
    find_dependents,
    observe_in,
    parse_finished_at,
    parse_started_at,
)
from ..errors import ContainerGone, SupervisorError
from ..logs import SaidOnce, log_event
from .journal import COMPOSE, CONTAINER, DEPENDENT, PROJECT, Intent, Journal
from .manager import describe_error

log = logging.getLogger("supervisor.agent")

# What to do with a due intent.
DONE = "done"
START = "start"


# Docker's FinishedAt is read to the microsecond, and the agent reads the same clock only
# after the engine answered the stop: no more slack than that rounding is needed.
STOP_SLACK_S = 1e-6


def stopped_by_agent(state: Mapping[str, Any] | None, intent: Intent) -> bool:
    """Whether the stops an intent stands for explain the container being down: it finished
    while one of them ran, from when it was sent to when it returned (a finish before the
    first, between two, or after the last is an operator's or a crash's, not the agent's);
    and it has not run since the last stop was sent (a start after that fulfilled the
    intent, whoever made it, even one the state file could not be told of; a start before
    it, the agent's next stop took down again)."""
    if state is None or state.get("Running"):
        return False
    if intent.later_run(parse_started_at(state), STOP_SLACK_S):
        return False
    finished = parse_finished_at(state)
    if finished is None:
        return True  # the engine does not say: what the agent stopped is started again
    if finished == intent.finished:
        return False  # the finish it had before the stop: down from before
    # It went down while one of the stops still owed ran, not between them (a stop that
    # failed, then a crash or an operator's stop before the next attempt's).
    return any(
        finished >= sent - STOP_SLACK_S
        and (returned is None or finished <= returned + STOP_SLACK_S)
        for sent, returned in intent.stop_windows()
    )


def judge(
    intent: Intent,
    state: Mapping[str, Any] | None,
    taken_over: bool,
    may_act: bool,
    heals_missing: bool = True,
) -> str:
    """Whether to start what a due intent names, from the engine's State (None: gone).

    Running, or stopped by hand since: done. Down: started again, unless the agent's stop
    did not take it down (it finished before the first stop owed, or after that stop
    returned) and its service is held or no longer supervised now; a neighbour a project
    heal stopped, only if that stop took it down. A compose service with no container
    (taken down since: `compose down`) is created by `up -d` only while its service may
    be acted on and its policy heals `missing`."""
    if taken_over or (state is not None and state.get("Running")):
        return DONE
    if state is None:
        return START if intent.kind == COMPOSE and may_act and heals_missing else DONE
    if not stopped_by_agent(state, intent) and (not may_act or intent.kind == PROJECT):
        return DONE
    return START


def belongs(
    intent: Intent, inspected: ContainerInfo, policy: Any, containers: list[ContainerInfo]
) -> bool:
    """Whether the container an intent names is still its service's to start: its own
    container still matches the policy; a dependent still depends on the service's container
    (when that one is known); a neighbour is still in the project a project heal stops.
    A state file is not trusted to name any container."""
    if intent.kind == CONTAINER:
        return observe_in(policy, [inspected]).container is not None
    if intent.kind == DEPENDENT:
        own = observe_in(policy, containers).container
        return own is None or bool(find_dependents(own, set(), [inspected]))
    if intent.kind == PROJECT:
        own = observe_in(policy, containers).container
        project = policy.project or (own.labels.get(LABEL_COMPOSE_PROJECT) if own else None)
        return project is None or inspected.labels.get(LABEL_COMPOSE_PROJECT) == project
    return True


def taken_down(journal: Journal, keys: tuple[str, ...], engine: Any) -> list[ContainerInfo]:
    """The neighbours a project heal's stop took down, by the engine's word, of those whose
    intents `keys` name: still owed, down, and finished while that stop ran (an exited
    one-shot, a crash before it or a stop by hand since is not). Inspected, so each names its
    compose service; one the engine cannot describe now is left to the keeper."""
    found, view = [], engine.view
    for key in keys:
        owed = journal.get(key)
        if owed is None or owed.container_id is None:
            continue
        try:
            inspected = engine.inspect_container(owed.container_id)
        except SupervisorError:
            continue
        by_hand = view is not None and view.is_manual_stop(inspected.id)
        if not by_hand and stopped_by_agent(inspected.state, owed):
            found.append(inspected)
    return found


def retry_delay_s(
    backoff: BackoffPolicy, failures: int, rng: Callable[[], float] = random.random
) -> float:
    """How long after its `failures`-th failed start (in a row) an intent is tried again:
    the wait before heal attempt `failures + 1`, so `initial` after the first."""
    return compute_backoff_delay_s(failures + 1, backoff, rng)


def hand_to_keeper(
    journal: Journal,
    key: str,
    backoff: BackoffPolicy,
    now: float,
    rng: Callable[[], float] = random.random,
) -> None:
    """A cycle's start failed, and the cycle reported it: the intent is the keeper's now, to
    be tried again after the first backoff, as a next attempt would be."""
    journal.release(key)
    journal.defer(key, 1, now + retry_delay_s(backoff, 1, rng))


class Rounds:
    """The keeper's rounds, one at a time: a round asked for while one runs (the periodic
    one, the one after a sync) is run by that one as it ends, eager if either asked so; so
    no intent is judged or started twice at once. A round that raises is said once per
    cause (`keeper.error`), and the next one runs as usual."""

    def __init__(self, run: Callable[[bool], None]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._running = False
        self._asked = 0  # 0: nothing; 1: a round; 2: an eager round
        self._told = SaidOnce()

    def ask(self, eager: bool = False) -> None:
        with self._lock:
            self._asked = max(self._asked, 2 if eager else 1)
            if self._running:
                return
            self._running = True
        while True:
            with self._lock:
                asked, self._asked = self._asked, 0
                if not asked:
                    self._running = False
                    return
            try:
                self._run(asked == 2)
            except Exception as e:
                what = "a round of starting what the agent stopped raised; the next one runs"
                self._told.say(log, "keeper.error", what, e)


def finish_due_intents(
    journal: Journal,
    view: Any,
    engine: Any,
    worker_of: Callable[[str], Any],
    now: float,
    rng: Callable[[], float] = random.random,
    eager: bool = False,
) -> None:
    """Start what is due at `now` (with `eager`, every due intent, deferred or not). One
    intent whose handling raises (a bug, a fault no step expects) is tried again after its
    backoff; the rest of the round goes on."""
    for intent in journal.due(None if eager else now):
        worker = worker_of(intent.service)
        try:
            _finish(journal, intent, worker, view, engine)
        except Exception as e:  # one intent's fault must not leave the later ones down
            backoff = worker.policy.heal.backoff if worker is not None else BackoffPolicy()
            _failed(journal, intent, e, backoff, now, rng)


def _finish(journal: Journal, intent: Intent, worker: Any, view: Any, engine: Any) -> None:
    """Judge one due intent and start what it names, or drop it; raises when the start
    failed (SupervisorError) or anything else did."""
    may_act = worker is not None and worker.may_act_now()
    if intent.kind == COMPOSE and worker is not None:
        container = observe_in(worker.policy, view.containers()).container
        manager = worker.manager

        def start(manager=manager, container=container) -> None:
            manager.start_step(container, retry_delays_s=(0.0,))
    else:
        # A compose service no longer supervised has no compose file to run: what the
        # agent stopped of it is started as a container.
        cid = intent.container_id
        container = ContainerInfo(cid, cid[:12]) if cid else None

        def start(container=container) -> None:
            engine.start(container)

    try:  # the engine's word, not the view's: the view may not have seen the stop yet
        inspected = engine.inspect_container(container.id) if container else None
    except ContainerGone:
        inspected = None
    except SupervisorError:
        return  # the next round asks again
    state = inspected.state if inspected is not None else None
    stranger = (
        inspected is not None
        and worker is not None
        and not belongs(intent, inspected, worker.policy, view.containers())
    )
    if stranger:
        _abandon(journal, intent, "the container no longer belongs to its service")
        return
    taken_over = container is not None and view.is_manual_stop(container.id)
    heals_missing = worker is not None and "missing" in worker.policy.heal.on
    if judge(intent, state, taken_over, may_act, heals_missing) == DONE:
        if state is None and intent.kind == COMPOSE and may_act:
            why = "its service was taken down since (compose down?); not created again"
            _abandon(journal, intent, f"{why}: the policy does not heal missing")
        else:
            journal.clear(intent.key)
        return
    try:
        start()
    except ContainerGone:
        _abandon(journal, intent, "the container no longer exists")
        return
    journal.clear(intent.key)  # the engine said it started: that is the start, seen
    log_event(
        log,
        logging.WARNING,
        "heal.resumed",
        "started what the agent had stopped",
        service=intent.service,
        container_id=intent.container_id,
        kind=intent.kind,
    )


def _failed(
    journal: Journal,
    intent: Intent,
    error: Exception,
    backoff: BackoffPolicy,
    now: float,
    rng: Callable[[], float],
) -> None:
    """Try again after a backoff; say so once at error, later at debug."""
    failures = journal.failures(intent.key) + 1
    delay_s = retry_delay_s(backoff, failures, rng)
    journal.defer(intent.key, failures, now + delay_s)
    first = failures == 1
    log_event(
        log,
        logging.ERROR if first else logging.DEBUG,
        "heal.resume_failed" if first else "heal.resume_retrying",
        "could not start what the agent stopped; trying again"
        if first
        else "still cannot start what the agent stopped",
        service=intent.service,
        container_id=intent.container_id,
        kind=intent.kind,
        error=describe_error(error)
        if isinstance(error, SupervisorError)
        else f"{type(error).__name__}: {error}",
        failures=failures,
        retry_in_s=round(delay_s, 3),
    )


def _abandon(journal: Journal, intent: Any, why: str) -> None:
    journal.clear(intent.key)
    log_event(
        log,
        logging.WARNING,
        "heal.resume_abandoned",
        f"nothing to start: {why}",
        service=intent.service,
        container_id=intent.container_id,
    )
