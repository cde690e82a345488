"""Decide whether to heal: thresholds, grace, exponential backoff, restart budget, give-up.

Pure, in the manner of Nomad's restart tracker: each observation goes in, a Decision comes
out (what to do, after how long, and why, from a fixed set of reasons). The clock and the
random source are injected; nothing here does I/O or sleeps.

Backoff: attempt 1 starts at once; attempt n >= 2 waits

    delay_s = min(initial_s * factor ** (n - 2), max_s) * (1 + jitter * u),  u uniform in [-1, 1)

With `failures` > 1, bad checks count at most once per half `interval`, so that checks
triggered by a burst of events do not reach the threshold at once.

An attempt that would make more than `max_restarts` restarts inside the trailing `window_s`
is not made: the tracker gives up until an operator resets it, the policy changes, or the
container turns healthy by itself. `reset_after_s` of continuous health sets n back to 1.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .policy import BackoffPolicy, CheckPolicy, HealPolicy
from .status import REASON_EXITED, REASON_GAVE_UP, REASON_PROBE_FAILED, Status

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


def is_healable(reason: str | None, heal_on: frozenset[str]) -> bool:
    """Whether a bad state with this reason is one the policy heals."""
    return _HEALS_AS.get(reason, reason) in heal_on


@dataclass(frozen=True)
class Decision:
    action: str
    why: str
    attempt: int = 0
    delay_s: float = 0.0


def compute_backoff_delay_s(
    attempt: int, backoff: BackoffPolicy, rng: Callable[[], float] = random.random
) -> float:
    """The wait before attempt `attempt` (1-based), per the formula in this module's docstring."""
    if attempt <= 1:
        return 0.0
    base = min(backoff.initial_s * backoff.factor ** (attempt - 2), backoff.max_s)
    return base * (1 + backoff.jitter * (2 * rng() - 1))


@dataclass
class RestartTracker:
    """One service's healing memory. Feed it every check; act on what `observe` returns."""

    heal: HealPolicy
    check: CheckPolicy
    rng: Callable[[], float] = random.random
    attempt: int = 0
    restarts_at: list[float] = field(default_factory=list)
    bad_checks: int = 0
    last_bad_at: float = 0.0
    healthy_since: float | None = None
    gave_up: bool = False

    def observe(
        self, status: Status, reason: str | None, now: float, started_at: float | None = None
    ) -> Decision:
        """Take one observation of the container and decide what to do about it."""
        if status is Status.RUNNING:
            return self._observe_healthy(now)
        self.healthy_since = None
        if status is Status.STARTING:
            return Decision(NOTHING, WHY_STARTING)
        if not is_healable(reason, self.heal.on) or (
            reason == REASON_EXITED and status is Status.STOPPED
        ):
            # `exited` heals a failure (non-zero); a clean exit (code 0) is not one.
            self.bad_checks = 0
            return Decision(NOTHING, WHY_NOT_HEALABLE)
        if self.gave_up:
            return Decision(NOTHING, WHY_GAVE_UP)
        if started_at is not None and now - started_at < self.check.grace_s:
            return Decision(NOTHING, WHY_GRACE)
        if self.bad_checks and now - self.last_bad_at < self.check.interval_s / 2:
            # Events trigger checks between the periodic ones; the threshold counts at most
            # one bad check per half interval, so a burst of events is one bad check.
            return Decision(NOTHING, WHY_ALREADY_COUNTED)
        self.bad_checks += 1
        self.last_bad_at = now
        if self.bad_checks < self.check.failures:
            return Decision(NOTHING, WHY_BELOW_THRESHOLD)
        self.bad_checks = 0
        if self.restarts_in_window(now) >= self.heal.max_restarts:
            self.gave_up = True
            return Decision(GIVE_UP, WHY_CRASH_LOOP, attempt=self.attempt)
        self.attempt += 1
        delay_s = compute_backoff_delay_s(self.attempt, self.heal.backoff, self.rng)
        return Decision(HEAL, WHY_BAD, attempt=self.attempt, delay_s=delay_s)

    def _observe_healthy(self, now: float) -> Decision:
        self.bad_checks = 0
        if self.gave_up:
            self.gave_up = False
            self.attempt = 0
            self.healthy_since = now
            return Decision(RESET, WHY_HEALTHY)
        if self.healthy_since is None:
            self.healthy_since = now
        if self.attempt and now - self.healthy_since >= self.heal.reset_after_s:
            self.attempt = 0
            return Decision(RESET, WHY_STABLE)
        return Decision(NOTHING, WHY_HEALTHY)

    def record_restart(self, now: float) -> None:
        """The agent started the container (or stack) again as part of a heal."""
        self.restarts_at.append(now)
        self.restarts_in_window(now)

    def record_recovered(self, now: float) -> None:
        """The heal ended with a healthy container: continuous health counts from now."""
        self.healthy_since = now

    def restarts_in_window(self, now: float) -> int:
        """Forget restarts older than the window and return how many remain."""
        cutoff = now - self.heal.window_s
        self.restarts_at = [t for t in self.restarts_at if t > cutoff]
        return len(self.restarts_at)

    def reset(self) -> None:
        """An operator cleared the service: no backoff, no give-up, an empty budget."""
        self.attempt = 0
        self.restarts_at = []
        self.bad_checks = 0
        self.gave_up = False

    def to_snapshot(self) -> dict:
        return {
            "attempt": self.attempt,
            "restarts_at": list(self.restarts_at),
            "gave_up": self.gave_up,
        }

    def restore(self, snapshot: dict) -> None:
        """Take back what a previous agent saved; ignore what does not fit."""
        try:
            self.attempt = max(0, int(snapshot.get("attempt", 0)))
            self.restarts_at = [float(t) for t in snapshot.get("restarts_at", [])]
            self.gave_up = bool(snapshot.get("gave_up", False))
        except (TypeError, ValueError, AttributeError):
            self.reset()
