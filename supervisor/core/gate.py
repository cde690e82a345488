"""The gate: may this service be healed now? And the status it shows for the same facts.

Pure: Facts go in, a Verdict comes out, with a reason from a fixed set, in a fixed order of
precedence. The worker asks it before it decides a heal, again when a backoff wait ends and
again when a queued cycle gets its slot; `docker-supervisor status` asks it with the saved
memory, so the command and the agent cannot disagree. No I/O, no clock, no state.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..docker.states import (
    REASON_DEPENDENCY_DOWN,
    REASON_ENGINE_UNREACHABLE,
    REASON_GAVE_UP,
    REASON_HELD,
    REASON_HOST_PRESSURE,
    REASON_MANUAL_STOP,
    REASON_NOT_HEALABLE,
    REASON_STATE_UNWRITABLE,
    Status,
)

# A hold with no end: `pause` without --for lasts until `resume` (9999-12-31).
HELD_FOREVER = 253402300799.0

ALLOW = "allow"
WHY_NOT_SUPERVISED = "not_supervised"
WHY_STOPPING = "stopping"
WHY_ENGINE_UNREACHABLE = REASON_ENGINE_UNREACHABLE
WHY_ENGINE_SETTLING = "engine_settling"
WHY_MANUAL_STOP = REASON_MANUAL_STOP
WHY_HELD = REASON_HELD
WHY_HEALTHY = "healthy"
WHY_NOT_HEALABLE = "not_healable"
WHY_GAVE_UP = REASON_GAVE_UP
WHY_GRACE = "grace"
WHY_CRASH_LOOP = "crash_loop"
WHY_HOST_PRESSURE = REASON_HOST_PRESSURE
WHY_NOT_OURS = "not_ours"  # a Swarm task, or another compose project than the policy's
WHY_DEPENDENCY_DOWN = REASON_DEPENDENCY_DOWN
WHY_STATE_UNWRITABLE = REASON_STATE_UNWRITABLE

# Reasons that stop the agent from even deciding (the tracker is not asked).
WATCH_ONLY = frozenset(
    {
        WHY_NOT_SUPERVISED,
        WHY_STOPPING,
        WHY_ENGINE_UNREACHABLE,
        WHY_ENGINE_SETTLING,
        WHY_MANUAL_STOP,
        WHY_HELD,
        WHY_HOST_PRESSURE,
        WHY_NOT_OURS,
        WHY_DEPENDENCY_DOWN,
        WHY_STATE_UNWRITABLE,
    }
)


@dataclass(frozen=True)
class Facts:
    """What the gate needs to know about one service, now."""

    supervised: bool = True
    stopping: bool = False
    engine_ok: bool = True
    settling: bool = False
    manual_stop: bool = False
    held: bool = False
    healthy: bool = False
    healable: bool = True
    gave_up: bool = False
    in_grace: bool = False
    budget_left: bool = True
    deferred: bool = False  # its checks timed out while the host is (or just was) pressed
    not_ours: bool = False  # its container belongs to an orchestrator (a Swarm task)
    # What it needs and is down, stopped by hand, held, given up or being healed, in
    # words ("app (exited)"); None when nothing it needs is missing.
    waiting_for: str | None = None
    # The state file cannot be written: no intent can reach the disk, so no stop is sent.
    state_unwritable: bool = False


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str


def may_heal(facts: Facts) -> Verdict:
    """Whether a heal may start (or go on to its stop) now, and why not."""
    for blocked, why in (
        (not facts.supervised, WHY_NOT_SUPERVISED),
        (facts.stopping, WHY_STOPPING),
        (not facts.engine_ok, WHY_ENGINE_UNREACHABLE),
        (facts.settling, WHY_ENGINE_SETTLING),
        (facts.state_unwritable, WHY_STATE_UNWRITABLE),
        (facts.not_ours, WHY_NOT_OURS),
        (facts.manual_stop and not facts.healthy, WHY_MANUAL_STOP),
        (facts.held, WHY_HELD),
        (facts.healthy, WHY_HEALTHY),
        (facts.waiting_for is not None, WHY_DEPENDENCY_DOWN),
        (not facts.healable, WHY_NOT_HEALABLE),
        (facts.deferred, WHY_HOST_PRESSURE),
        (facts.gave_up, WHY_GAVE_UP),
        (facts.in_grace, WHY_GRACE),
        (not facts.budget_left, WHY_CRASH_LOOP),
    ):
        if blocked:
            return Verdict(False, why)
    return Verdict(True, ALLOW)


def present(status: Status, reason: str | None, facts: Facts) -> tuple[Status, str | None]:
    """The status and reason a service shows: Docker's, overlaid by what the agent knows."""
    if not facts.engine_ok:
        return Status.ERROR, REASON_ENGINE_UNREACHABLE
    if facts.state_unwritable and status is not Status.RUNNING:
        return status, REASON_STATE_UNWRITABLE
    if facts.not_ours and status is not Status.RUNNING:
        return status, REASON_NOT_HEALABLE
    if facts.manual_stop and status is not Status.RUNNING:
        return Status.STOPPED, REASON_MANUAL_STOP
    if facts.held:
        return status, REASON_HELD
    if facts.waiting_for is not None and status is not Status.RUNNING:
        return status, REASON_DEPENDENCY_DOWN
    if facts.gave_up and status is not Status.RUNNING:
        return Status.ERROR, REASON_GAVE_UP
    if facts.deferred and not facts.healthy:
        return Status.ERROR, REASON_HOST_PRESSURE
    return status, reason


def next_action(
    verdict: Verdict,
    attempt: int,
    delay_s: float,
    held_until: float | None,
    now: float,
    phase: str | None = None,
    waiting_for: str | None = None,
) -> str:
    """What the agent will do next, in words, for `status` and the state file."""
    if phase is not None:
        return f"healing ({phase})"
    if verdict.why == WHY_DEPENDENCY_DOWN:
        return f"wait: for {waiting_for}"
    if verdict.allowed:
        return f"heal (attempt {attempt + 1}, after {delay_s:g}s)"
    if verdict.why == WHY_HELD:
        forever = held_until is None or held_until >= HELD_FOREVER
        return "none: held" + ("" if forever else f" for {int(held_until - now)}s")
    words = {
        WHY_MANUAL_STOP: "none: stopped by hand (start it to supervise it again)",
        WHY_GAVE_UP: "none: gave up (reset to retry)",
        WHY_CRASH_LOOP: "give up (restart budget spent)",
        WHY_ENGINE_UNREACHABLE: "wait: engine unreachable",
        WHY_ENGINE_SETTLING: "wait: engine settling",
        WHY_GRACE: "wait: grace after start",
        WHY_HOST_PRESSURE: "deferred: checks timed out on a pressed host",
        WHY_NOT_SUPERVISED: "none: not supervised",
        WHY_STOPPING: "none: agent stopping",
        WHY_NOT_OURS: "none: not the agent's to heal (see heal.refused)",
        WHY_STATE_UNWRITABLE: "wait: the state file cannot be written",
    }
    return words.get(verdict.why, "watch")
