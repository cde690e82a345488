"""The agent's clock: the wall clock, and the steps it takes.

Instants the agent saves, shows or compares with the engine's stamps are wall instants: the
engine stamps with the same clock. A step of the wall clock (NTP on a VM after a suspend, an
operator's `date -s`) would change every duration measured between two wall instants:
stepped forward, a hold given for ten minutes, a restart window and a start's grace would
end at once; stepped back, the engine's settle and a start's retry would wait an hour.

The clock notices a step the moment anyone reads it (the wall clock and the boot-time clock
part by more than STEP_S; NTP slews move them far less) and counts it, once
(`clock.stepped`). Whoever keeps an instant that ends a duration follows the steps (a
`Follower`): it moves that instant by each step it has not followed yet, so every duration
keeps what was left of it. An instant compared with the engine's stamps (when an intent's
stop was sent) is not moved: those stamps stepped too. A stamp the engine took before a
forward step is as old as it was, not older by the step (`in_frame`): a start's grace is not
over because the clock jumped. One taken before a backward step cannot be told from one
taken after it, and stays as it reads (a grace longer by at most the step: the safe side).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..logs import log_event

log = logging.getLogger("supervisor.agent")

# The gap between the wall clock and the boot-time one that counts as a step: NTP slews by
# at most 0.5 ms a second, and the clock is read many times a second.
STEP_S = 0.5


def _boot_id() -> str:
    """This boot's id: a clock frame saved in another boot cannot be compared."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _boot_time() -> float:
    """Seconds since boot, counting a suspend (the monotonic clock stops during one, while
    the wall clock goes on: a resume is not a step)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Step:
    at: float  # the wall clock as the step was noticed, after it
    by: float  # how far it stepped: forward if positive


class Clock:
    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        steady: Callable[[], float] = _boot_time,
        boot: Callable[[], str] = _boot_id,
    ) -> None:
        self._wall, self._steady = wall, steady
        self.boot = boot()
        self._lock = threading.Lock()
        self._offset = wall() - steady()
        self._steps: list[Step] = []
        # Each frame the wall clock read in: from when (steady), and its offset then.
        self._frames: list[tuple[float, float]] = [(steady(), self._offset)]

    def __call__(self) -> float:
        return self.now()

    def now(self) -> float:
        """The wall clock; a step since the last read is noticed and counted first."""
        with self._lock:
            wall = self._wall()
            offset = wall - self._steady()
            by = offset - self._offset
            self._offset = offset  # a slew is followed as it goes
            if abs(by) < STEP_S:
                return wall
            self._steps.append(Step(wall, by))
            self._frames.append((wall - offset, offset))
        log_event(
            log,
            logging.WARNING,
            "clock.stepped",
            "the wall clock stepped; every wait and hold keeps what was left of it",
            step_s=round(by, 3),
        )
        return wall

    def offset(self) -> float:
        """The wall clock less the steady one, as last read: the frame it reads in."""
        with self._lock:
            return self._offset

    def since_saved(self, frame: Mapping[str, Any] | None) -> float:
        """How far the clock stepped since instants were saved in `frame` (a `Follower`'s
        `frame()`, by an earlier agent): 0.0 when not at all, or when it cannot be told
        (another boot, no frame: an older agent's file)."""
        try:
            if not frame or frame.get("boot") != self.boot or not self.boot:
                return 0.0
            self.now()
            by = self.offset() - float(frame["offset"])
        except (TypeError, ValueError, KeyError, AttributeError):
            return 0.0
        return by if abs(by) >= STEP_S else 0.0

    def steady_of(self, stamp: float) -> float:
        """Where a wall stamp (the engine's) falls on the steady clock, by the frame the wall
        clock was in when it read so: the latest frame whose span holds it (after a step
        back, spans overlap and the latest is the likelier)."""
        with self._lock:
            frames, offset = list(self._frames), self._offset
        now = self._steady()  # no stamp was read later than now
        for i in range(len(frames) - 1, -1, -1):
            since, frame_offset = frames[i]
            frame_offset = offset if i == len(frames) - 1 else frame_offset
            until = frames[i + 1][0] if i + 1 < len(frames) else now
            if since - STEP_S <= stamp - frame_offset <= until + STEP_S:
                return stamp - frame_offset
        return stamp - offset

    def steady(self) -> float:
        """A clock that never steps: how long ago this process saw something."""
        return self._steady()

    @property
    def stepped_back(self) -> bool:
        """Whether the clock stepped back since this process began (the engine's stamps
        then overlap, and none of them orders two events by itself)."""
        return any(step.by < 0 for step in self._steps)

    @property
    def steps(self) -> int:
        """How many steps were noticed so far."""
        return len(self._steps)

    def moved_since(self, seen: int) -> tuple[float, int]:
        """How far the clock stepped after its first `seen` steps, and how many there are."""
        later = self._steps[seen:]
        return sum(step.by for step in later), seen + len(later)

    def in_frame(self, stamp: float) -> float:
        """A wall stamp the engine took, where it would read had the clock not stepped
        forward since (a stamp at or before `at - by` was taken before that step)."""
        return stamp + sum(s.by for s in self._steps if s.by > 0 and stamp <= s.at - s.by)


class Follower:
    """The steps one keeper of durations has moved its instants by."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen = clock.steps
        self._offset = clock.offset()  # the frame its instants are in

    def moved(self) -> float:
        """How far the clock stepped since the last call (0.0: not at all): the caller
        moves its instants by it. The clock is read first: a step not noticed yet is."""
        self._clock.now()
        by, self._seen = self._clock.moved_since(self._seen)
        self._offset += by
        return by

    def frame(self) -> dict[str, Any]:
        """The frame its instants are in, saved beside them (`Clock.since_saved`)."""
        return {"boot": self._clock.boot, "offset": round(self._offset, 3)}

    def pending(self) -> float:
        """How far it stepped since the last `moved`, without following it."""
        return self._clock.moved_since(self._seen)[0]
