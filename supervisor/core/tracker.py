"""Decide whether to heal: thresholds, grace, exponential backoff, restart budget, give-up.

Pure, in the manner of Nomad's restart tracker: each observation goes in, a Decision comes
out (what to do, after how long, why from a fixed set, and the memory after it). Deciding
never changes the tracker: the caller commits a decision it acts on, so a dry run can decide
without escalating. The clock and the random source are injected; nothing here does I/O.

Backoff: attempt 1 starts at once; attempt n >= 2 waits

    delay_s = min(initial_s * factor ** (n - 2), max_s) * (1 + jitter * u),  u uniform in [-1, 1)

With `failures` > 1, bad checks count at most once per half `interval`, so that checks
triggered by a burst of events do not reach the threshold at once.

Every attempt that reaches its stop counts toward the budget, whether it recovered or not.
An attempt that would make more than `max_restarts` attempts inside the trailing `window_s`
is not made: the tracker gives up. A give-up ends by an operator's reset, by a changed policy
(the memory keeps a digest of the policy it was made under), or by `reset_after_s` of health
that the container found by itself. A flapping service therefore gives up once, and stays
given up (no new decision, no new notification) while it flaps.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..config.model import BackoffPolicy, CheckPolicy, HealPolicy, Policy
from ..docker.states import REASON_EXITED, REASON_GAVE_UP, REASON_PROBE_FAILED, Status

# Actions.
NOTHING = "nothing"
HEAL = "heal"
GIVE_UP = "give_up"
RESET = "reset"

# Why a decision was made.
WHY_HEALTHY = "healthy"
WHY_STARTING = "starting"
WHY_NOT_HEALABLE = "not_healable"
WHY_GAVE_UP = REASON_GAVE_UP
WHY_GRACE = "grace"
WHY_BELOW_THRESHOLD = "below_threshold"
WHY_ALREADY_COUNTED = "already_counted"
WHY_BAD = "bad"
WHY_CRASH_LOOP = "crash_loop"
WHY_STABLE = "stable"

# An agent-side probe's failure heals where `unhealthy` does: it is the same trouble, seen by
# the agent instead of by Docker.
_HEALS_AS = {REASON_PROBE_FAILED: "unhealthy"}


def is_healable(status: Status, reason: str | None, heal_on: frozenset[str]) -> bool:
    """Whether a bad state is one the policy heals (`exited` heals a failure, not code 0)."""
    if status in (Status.RUNNING, Status.STARTING):
        return False
    if reason == REASON_EXITED and status is Status.STOPPED:
        return False
    return _HEALS_AS.get(reason, reason) in heal_on


def policy_digest(policy: Policy) -> str:
    """A short fingerprint of what a give-up was decided under (the source path aside)."""
    text = repr(replace(policy, source=None))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compute_backoff_delay_s(
    attempt: int, backoff: BackoffPolicy, rng: Callable[[], float] = random.random
) -> float:
    """The wait before attempt `attempt` (1-based), per the formula in this module's docstring."""
    if attempt <= 1:
        return 0.0
    base = min(backoff.initial_s * backoff.factor ** (attempt - 2), backoff.max_s)
    return base * (1 + backoff.jitter * (2 * rng() - 1))


@dataclass(frozen=True)
class Memory:
    """One service's healing memory; immutable, replaced by each committed decision."""

    attempt: int = 0
    restarts_at: tuple[float, ...] = ()
    bad_checks: int = 0
    last_bad_at: float = 0.0
    healthy_since: float | None = None
    gave_up: bool = False


@dataclass(frozen=True)
class Decision:
    action: str
    why: str
    attempt: int = 0
    delay_s: float = 0.0
    memory: Memory = field(default_factory=Memory)


@dataclass
class RestartTracker:
    """Decides from a policy and a Memory; `commit` takes a decision's memory as its own."""

    heal: HealPolicy
    check: CheckPolicy
    rng: Callable[[], float] = random.random
    memory: Memory = field(default_factory=Memory)

    @property
    def attempt(self) -> int:
        return self.memory.attempt

    @property
    def gave_up(self) -> bool:
        return self.memory.gave_up

    def decide(
        self, status: Status, reason: str | None, now: float, started_at: float | None = None
    ) -> Decision:
        """What to do about one observation; changes nothing."""
        m = self.memory
        if status is Status.RUNNING:
            return self._decide_healthy(m, now)
        m = replace(m, healthy_since=None)
        if status is Status.STARTING:
            return Decision(NOTHING, WHY_STARTING, memory=m)
        if not is_healable(status, reason, self.heal.on):
            return Decision(NOTHING, WHY_NOT_HEALABLE, memory=replace(m, bad_checks=0))
        if m.gave_up:
            return Decision(NOTHING, WHY_GAVE_UP, memory=m)
        if started_at is not None and now - started_at < self.check.grace_s:
            return Decision(NOTHING, WHY_GRACE, memory=m)
        if m.bad_checks and now - m.last_bad_at < self.check.interval_s / 2:
            # Events trigger checks between the periodic ones; the threshold counts at most
            # one bad check per half interval, so a burst of events is one bad check.
            return Decision(NOTHING, WHY_ALREADY_COUNTED, memory=m)
        m = replace(m, bad_checks=m.bad_checks + 1, last_bad_at=now)
        if m.bad_checks < self.check.failures:
            return Decision(NOTHING, WHY_BELOW_THRESHOLD, memory=m)
        m = replace(m, bad_checks=0)
        if self.restarts_in_window(now) >= self.heal.max_restarts:
            return Decision(GIVE_UP, WHY_CRASH_LOOP, m.attempt, memory=replace(m, gave_up=True))
        attempt = m.attempt + 1
        delay_s = compute_backoff_delay_s(attempt, self.heal.backoff, self.rng)
        return Decision(HEAL, WHY_BAD, attempt, delay_s, replace(m, attempt=attempt))

    def _decide_healthy(self, m: Memory, now: float) -> Decision:
        since = now if m.healthy_since is None else m.healthy_since
        m = replace(m, bad_checks=0, healthy_since=since)
        stable = now - since >= self.heal.reset_after_s
        if m.gave_up and stable:
            return Decision(RESET, WHY_HEALTHY, memory=replace(m, gave_up=False, attempt=0))
        if m.attempt and not m.gave_up and stable:
            return Decision(RESET, WHY_STABLE, memory=replace(m, attempt=0))
        return Decision(NOTHING, WHY_HEALTHY, memory=m)

    def commit(self, decision: Decision) -> None:
        self.memory = decision.memory

    def observe(
        self, status: Status, reason: str | None, now: float, started_at: float | None = None
    ) -> Decision:
        """Decide and commit: what the agent does with every decision it acts on."""
        decision = self.decide(status, reason, now, started_at)
        self.commit(decision)
        return decision

    def record_attempt(self, now: float) -> None:
        """An attempt reached its stop: it counts toward the budget, recovered or not."""
        cutoff = now - self.heal.window_s
        kept = tuple(t for t in self.memory.restarts_at if t > cutoff)
        self.memory = replace(self.memory, restarts_at=(*kept, now))

    def retime_attempt(self, sent_at: float) -> None:
        """The attempt under way (the last one recorded) reached the engine at `sent_at`."""
        *kept, _ = self.memory.restarts_at or (sent_at,)
        self.memory = replace(self.memory, restarts_at=(*kept, sent_at))

    def stop_sent_at(self, at: float) -> None:
        """An intent on disk says an attempt's stop was sent at `at`. The row saved with it
        holds when that attempt was decided (the last one up to then) if the agent died
        before the stop returned: it counts from the stop, as the engine does."""
        times = self.memory.restarts_at
        if at in times:
            return
        before = [t for t in times if t < at]
        if before:
            decided = max(before)
            times = tuple(at if t == decided else t for t in times)
        else:
            times = (*times, at)
        self.memory = replace(self.memory, restarts_at=tuple(sorted(times)))

    def shift(self, by: float) -> None:
        """The wall clock stepped by `by`: every instant it keeps moves with it, so the
        window, the half interval and the stable time keep what was left of them."""
        m = self.memory
        self.memory = replace(
            m,
            restarts_at=tuple(t + by for t in m.restarts_at),
            last_bad_at=m.last_bad_at + by if m.bad_checks else m.last_bad_at,
            healthy_since=None if m.healthy_since is None else m.healthy_since + by,
        )

    def forget_attempt(self) -> None:
        """The attempt under way (the last one recorded) never sent its stop: it does not
        count."""
        self.memory = replace(self.memory, restarts_at=self.memory.restarts_at[:-1])

    def record_recovered(self, now: float) -> None:
        """The heal ended with a healthy container: continuous health counts from now."""
        self.memory = replace(self.memory, healthy_since=now)

    def restarts_in_window(self, now: float) -> int:
        """How many attempts began inside the trailing window (a pure count)."""
        cutoff = now - self.heal.window_s
        return sum(1 for t in self.memory.restarts_at if t > cutoff)

    def budget_left(self, now: float) -> bool:
        return self.restarts_in_window(now) < self.heal.max_restarts

    def reset(self) -> None:
        """An operator cleared the service: no backoff, no give-up, an empty budget."""
        self.memory = Memory()

    def to_snapshot(self) -> dict[str, Any]:
        m = self.memory
        return {"attempt": m.attempt, "restarts_at": list(m.restarts_at), "gave_up": m.gave_up}

    def restore(self, snapshot: Mapping[str, Any], same_policy: bool = True) -> None:
        """Take back what a previous agent saved; ignore what does not fit. Under a changed
        policy the history stays but the backoff and the give-up do not."""
        try:
            restarts = tuple(float(t) for t in snapshot.get("restarts_at", []))
            attempt = max(0, int(snapshot.get("attempt", 0)))
            gave_up = bool(snapshot.get("gave_up", False))
        except (TypeError, ValueError, AttributeError):
            self.reset()
            return
        if not same_policy:
            attempt, gave_up = 0, False
        self.memory = Memory(attempt=attempt, restarts_at=restarts, gave_up=gave_up)
