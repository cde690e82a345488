"""Finishing due intents: start again what the agent stopped and nobody started.

An intent is due when no cycle owns it: its cycle's start failed, or the agent that wrote it
died. Run now and then and after every (re)connection, on an I/O thread. A container that
runs again, is gone, or was stopped by hand since is dropped from the journal, and so is one
that no longer belongs to its service (a state file names it; it does not vouch for it); the
rest is started (a compose-scope intent with its service's blanket `up -d`). A failed start stays
due and is tried again on the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .engine import ContainerInfo, find_dependents, observe_in, was_down_before
from .errors import ContainerGone, SupervisorError
from .journal import COMPOSE, CONTAINER, DEPENDENT, Intent, Journal
from .logs import log_event

log = logging.getLogger("supervisor.agent")

# What to do with a due intent.
DONE = "done"
START = "start"


def judge(intent: Intent, state: Mapping[str, Any] | None, taken_over: bool, may_act: bool) -> str:
    """Whether to start what a due intent names, from the engine's State (None: gone).

    Running, or stopped by hand since: done. Down: started again, unless it was down
    already before the agent's stop (FinishedAt before the intent) and its service is
    held or no longer supervised now. A compose service with no container is created by
    `up -d` only while its service may be acted on."""
    if taken_over or (state is not None and state.get("Running")):
        return DONE
    if state is None:
        return START if intent.kind == COMPOSE and may_act else DONE
    if was_down_before(state, intent.at) and not may_act:
        return DONE
    return START


def belongs(
    intent: Intent, inspected: ContainerInfo, policy: Any, containers: list[ContainerInfo]
) -> bool:
    """Whether the container an intent names is still its service's to start: its own
    container still matches the policy; a dependent still depends on the service's container
    (when that one is known). A state file is not trusted to name any container."""
    if intent.kind == CONTAINER:
        return observe_in(policy, [inspected]).container is not None
    if intent.kind == DEPENDENT:
        own = observe_in(policy, containers).container
        return own is None or bool(find_dependents(own, set(), [inspected]))
    return True


def finish_due_intents(
    journal: Journal, view: Any, engine: Any, worker_of: Callable[[str], Any]
) -> None:
    for intent in journal.due():
        worker = worker_of(intent.service)
        may_act = worker is not None and worker.may_act_now()
        if intent.kind == COMPOSE:
            if worker is None:
                _abandon(journal, intent, "its service is no longer supervised")
                continue
            container = observe_in(worker.policy, view.containers()).container
            manager = worker.manager

            def start(manager=manager, container=container) -> None:
                manager.start_step(container, retry_delays_s=(0.0,))
        else:
            container = ContainerInfo(intent.container_id, intent.container_id[:12])

            def start(container=container) -> None:
                engine.start(container)

        try:  # the engine's word, not the view's: the view may not have seen the stop yet
            inspected = engine.inspect_container(container.id) if container else None
        except ContainerGone:
            inspected = None
        except SupervisorError:
            continue  # the next round asks again
        state = inspected.state if inspected is not None else None
        stranger = (
            inspected is not None
            and worker is not None
            and not belongs(intent, inspected, worker.policy, view.containers())
        )
        if stranger:
            _abandon(journal, intent, "the container no longer belongs to its service")
            continue
        taken_over = container is not None and view.is_manual_stop(container.id)
        if judge(intent, state, taken_over, may_act) == DONE:
            journal.clear(intent.key)
            continue
        try:
            start()
        except ContainerGone:
            _abandon(journal, intent, "the container no longer exists")
            continue
        except SupervisorError as e:
            log_event(
                log,
                logging.ERROR,
                "heal.resume_failed",
                "could not start what the agent stopped; trying again",
                service=intent.service,
                container_id=intent.container_id,
                kind=intent.kind,
                error=str(e),
            )
            continue
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
