"""Mailboxes: each service's worker takes its messages one at a time, in order.

A worker's handler is quick and does no I/O (it asks for effects instead), so a few threads
serve every worker: a message for one service never waits behind another service's work,
only behind its own earlier messages. This module runs handlers; it never decides.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from typing import Any, Protocol

from ..logs import log_event

log = logging.getLogger("supervisor.dispatch")

BATCH = 32  # messages one worker handles before letting the others have the thread


class Handler(Protocol):
    service: str

    def handle(self, message: Any) -> None: ...


class Dispatcher(Protocol):
    def post(self, worker: Handler, message: Any) -> None: ...


class ThreadDispatcher:
    """Serial per worker, parallel across workers, on `threads` threads."""

    def __init__(self, threads: int = 2) -> None:
        self._ready: queue.SimpleQueue[Handler | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._inbox: dict[int, deque[Any]] = {}
        self._scheduled: set[int] = set()
        self._idle = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._run, name=f"worker-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def post(self, worker: Handler, message: Any) -> None:
        key = id(worker)
        with self._lock:
            self._inbox.setdefault(key, deque()).append(message)
            if key in self._scheduled:
                return
            self._scheduled.add(key)
        self._ready.put(worker)

    def wait_idle(self, timeout_s: float) -> bool:
        """Until no message waits or is being handled (tests and shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._scheduled, timeout_s)

    def close(self) -> None:
        for _ in self._threads:
            self._ready.put(None)
        for thread in self._threads:
            thread.join(5)

    def _run(self) -> None:
        while (worker := self._ready.get()) is not None:
            key = id(worker)
            for _ in range(BATCH):
                with self._lock:
                    inbox = self._inbox.get(key)
                    if not inbox:
                        break
                    message = inbox.popleft()
                deliver(worker, message)
            with self._lock:
                if self._inbox.get(key):
                    self._ready.put(worker)
                    continue
                self._inbox.pop(key, None)
                self._scheduled.discard(key)
                self._idle.notify_all()


def deliver(worker: Handler, message: Any) -> None:
    """Hand one message to its worker; a handler that raises is said, and the thread that
    serves every worker goes on."""
    try:
        worker.handle(message)
    except Exception as e:  # a handler's bug must not kill the thread that serves everyone
        log_event(
            log,
            logging.ERROR,
            "check.failed",
            "worker raised",
            service=worker.service,
            handling=type(message).__name__,
            error=f"{type(e).__name__}: {e}",
        )
