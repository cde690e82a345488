"""One service's facts for the gate and the row it shows (pure): what the agent saves and
publishes, and what the `status` command prints, from the same facts and gate."""

from __future__ import annotations

from typing import Any

from ..config.model import Policy
from ..docker.containers import Observation, refusal_for
from ..docker.states import REASON_ENGINE_UNREACHABLE
from .gate import Facts, may_heal, next_action, present
from .tracker import RestartTracker, compute_backoff_delay_s, is_healable


def make_facts(
    policy: Policy,
    seen: Observation,
    tracker: RestartTracker,
    now: float,
    held_until: float | None,
    waiting_for: str | None = None,
    started_at: float | None = None,
    **live: bool,
) -> Facts:
    """The gate's facts for one service; `live` adds what only a running agent knows
    (supervised, stopping, settling); `waiting_for`, what it needs that is down;
    `started_at`, when its container started if not as the engine stamped it."""
    started_at = seen.started_at if started_at is None else started_at
    return Facts(
        engine_ok=seen.reason != REASON_ENGINE_UNREACHABLE,
        not_ours=refusal_for(policy, seen.container) is not None,
        manual_stop=seen.manual_stop,
        held=held_until is not None and now < held_until,
        healthy=seen.is_healthy,
        healable=is_healable(seen.status, seen.reason, policy.heal.on),
        gave_up=tracker.gave_up,
        in_grace=started_at is not None and now - started_at < policy.check.grace_s,
        budget_left=tracker.budget_left(now),
        waiting_for=None if seen.is_healthy else waiting_for,
        **live,
    )


def build_row(
    policy: Policy,
    seen: Observation,
    facts: Facts,
    tracker: RestartTracker,
    now: float,
    **memory: Any,
) -> dict[str, Any]:
    """One service's row: what it shows, what it remembers, and what happens next. The
    agent saves it and the `status` command prints it, from the same facts and gate."""
    status, reason = present(seen.status, seen.reason, facts)
    delay_s = compute_backoff_delay_s(tracker.attempt + 1, policy.heal.backoff, lambda: 0.5)
    phase = memory.get("phase")
    return {
        "status": str(status),
        "reason": reason,
        "container": seen.container.name if seen.container else None,
        "container_id": seen.container.id if seen.container else None,
        "healing": phase is not None,
        "restarts_in_window": tracker.restarts_in_window(now),
        **_selected(policy),
        "next_action": next_action(
            may_heal(facts),
            tracker.attempt,
            delay_s,
            memory.get("held_until"),
            now,
            phase,
            facts.waiting_for,
        ),
        "waiting_for": facts.waiting_for,
        "state_unwritable": facts.state_unwritable,
        **memory,
        **tracker.to_snapshot(),
    }


def _selected(policy: Policy) -> dict[str, Any]:
    """An expanded service's row says which selector and container identity it is (the
    next agent and the command line give it the same name)."""
    if policy.selected_by is None or policy.match.identity is None:
        return {}
    return {"selected_by": policy.selected_by, "identity": list(policy.match.identity)}
