"""The heal runner: a bounded number of heal cycles at once, and the effects they ask for.

A cycle asks for a slot; it gets one at once or queues (first come, first served) and is
told with `SlotGranted`. A slot belongs to one cycle (the worker's token): a grant that
reaches a worker after its cycle ended gives back nothing that a later cycle holds.
Effects (a stop, a start, restarting dependents) run on the effects pool and answer with
`EffectDone`; this is where the agent's I/O happens, never on a worker's thread. The runner
decides nothing: whether a cycle may go on is the gate's, asked by the worker when its slot
comes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.messages import EffectDone, SlotGranted
from ..runtime.dispatch import Dispatcher, Handler


class HealRunner:
    def __init__(
        self,
        concurrency: int,
        dispatcher: Dispatcher,
        submit: Callable[[Callable[[], None]], Any],
    ) -> None:
        self.concurrency = concurrency
        self._dispatcher = dispatcher
        self._submit = submit
        self._changed = threading.Condition()
        self._holders: dict[int, int] = {}  # id(worker) -> the token of the cycle holding
        self._queue: deque[tuple[Handler, int]] = deque()

    def set_limit(self, limit: int) -> None:
        """Cycles allowed at once from now on (the host-pressure guard lowers it): cycles
        running go on; a raised limit grants queued cycles at once."""
        granted = []
        with self._changed:
            self.concurrency = max(1, limit)
            while self._queue and len(self._holders) < self.concurrency:
                worker, token = self._queue.popleft()
                self._holders[id(worker)] = token
                granted.append((worker, token))
        for worker, token in granted:
            self._dispatcher.post(worker, SlotGranted(token))

    @property
    def active(self) -> int:
        with self._changed:
            return len(self._holders)

    def want_slot(self, worker: Handler, token: int) -> int | None:
        """None when the slot is granted now; else how many cycles run (it queues)."""
        with self._changed:
            if id(worker) in self._holders or len(self._holders) < self.concurrency:
                self._holders[id(worker)] = token
                return None
            self._queue.append((worker, token))
            return len(self._holders)

    def release(self, worker: Handler, token: int) -> None:
        """Cycle `token` ended (or gave back its slot): the next queued one gets it."""
        with self._changed:
            if self._holders.get(id(worker)) != token:
                return
            del self._holders[id(worker)]
            granted = None
            if self._queue and len(self._holders) < self.concurrency:
                granted = self._queue.popleft()
                self._holders[id(granted[0])] = granted[1]
            self._changed.notify_all()
        if granted is not None:
            self._dispatcher.post(granted[0], SlotGranted(granted[1]))

    def withdraw(self, worker: Handler, token: int) -> None:
        """A queued cycle was cancelled: leave the queue (a slot granted meanwhile is
        released)."""
        with self._changed:
            self._queue = deque(item for item in self._queue if item[0] is not worker)
        self.release(worker, token)

    def effect(self, worker: Handler, token: int, step: str, fn: Callable[[], Any]) -> None:
        """Run `fn` on the effects pool; the worker hears `EffectDone` with its value or error."""

        def run() -> None:
            try:
                done = EffectDone(token, step, value=fn())
            except Exception as e:  # every failure goes back to the cycle that asked
                done = EffectDone(token, step, error=e)
            self._dispatcher.post(worker, done)

        self._submit(run)

    def wait_idle(self, timeout_s: float) -> bool:
        """Until no cycle holds a slot (shutdown waits for the starts it owes)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._holders, timeout_s)
