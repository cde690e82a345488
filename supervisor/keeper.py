"""Finishing due intents: start again what the agent stopped and nobody started.

An intent is due when no cycle owns it: its cycle's start failed, or the agent that wrote it
died. Run now and then and after every (re)connection, on an I/O thread. A container that
runs again, is gone, or was stopped by hand since is dropped from the journal; the rest is
started (a compose-scope intent with its service's blanket `up -d`). A failed start stays
due and is tried again on the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .engine import observe_in, parse_started_at
from .errors import ContainerGone, SupervisorError
from .journal import COMPOSE, DONE, Journal, judge
from .logs import log_event

log = logging.getLogger("supervisor.agent")

# A just-released intent's start event may still be on its way.
MIN_AGE_S = 1.0


def finish_due_intents(
    journal: Journal, view: Any, engine: Any, worker_of: Callable[[str], Any], now: float
) -> None:
    for intent in journal.due():
        if now - intent.at < MIN_AGE_S:
            continue
        worker = worker_of(intent.service)
        may_act = worker is not None and worker.may_stop_now(None)
        if intent.kind == COMPOSE:
            if worker is None:
                _abandon(journal, intent, "its service is no longer supervised")
                continue
            seen = observe_in(worker.policy, view.containers(), view.is_manual_stop)
            container, manager = seen.container, worker.manager
            gone, taken_over = False, seen.manual_stop  # compose creates what is missing
            started_at = seen.started_at

            def start(manager=manager, container=container) -> None:
                manager.start_step(container, retry_delays_s=(0.0,))
        else:
            container = view.get(intent.container_id)
            gone = container is None
            taken_over = view.is_manual_stop(intent.container_id)
            started_at = None if gone else parse_started_at(container.state)

            def start(container=container) -> None:
                engine.start(container)

        if judge(intent, started_at, gone, taken_over, may_act) == DONE:
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
