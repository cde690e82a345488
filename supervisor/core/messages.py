"""What a service's worker is told: every input is one of these messages.

Events, ticks, probe changes and engine changes become `Look`; an operator's command,
a reload and removal have their own; the heal runner answers with `SlotGranted` and
`EffectDone`; timers with `Wake`. Tokens tie answers to the cycle that asked, so an answer
for a cancelled cycle is recognised and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config.model import Policy


@dataclass(frozen=True)
class Look:
    cause: str  # tick, event, probe, engine, command, policy, start


@dataclass(frozen=True)
class Operator:
    action: str  # pause, resume, reset
    until: float | None = None
    done: Callable[[], None] | None = None  # called once it took effect
    for_s: float | None = None  # a pause for this long, from when it takes effect


@dataclass(frozen=True)
class NewPolicy:
    policy: Policy


@dataclass(frozen=True)
class Remove:
    pass


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Wake:
    token: int
    step: str  # backoff, pause, ready


@dataclass(frozen=True)
class SlotGranted:
    token: int


@dataclass(frozen=True)
class EffectDone:
    token: int
    step: str  # stop, start, dependents
    value: Any = None
    error: Exception | None = None
