"""The status board: the one place that publishes what each service looks like.

Each worker hands it a snapshot (the saved-state schema: status, reason, container, phase,
hold, memory, next action); the board logs `service.status` when status, reason or
container change, keeps systemd's STATUS= summary, serves the metrics rows and the state
file's contents, and sends READY once every service was looked at. It decides nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..docker.states import (
    REASON_GAVE_UP,
    REASON_HELD,
    REASON_MANUAL_STOP,
    Status,
)
from ..logs import log_event
from .sdnotify import Notifier

log = logging.getLogger("supervisor.agent")

SUMMARY_ORDER = ("running", "starting", "stopped", "error", "healing", "held", "unchecked")


class Board:
    def __init__(self, notifier: Notifier, request_save: Callable[..., Any]) -> None:
        self._notifier = notifier
        self._request_save = request_save
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self._waiting: set[str] = set()
        self._ready = False
        self._line = ""
        # Told the container of each row that changed: what waits for it looks again.
        self.on_change: Callable[[str], None] = lambda container_id: None

    def expect(self, service: str, saved: dict[str, Any] | None = None) -> None:
        """This service exists: READY waits until it was looked at. Until then its row is
        what was saved, so a state file written meanwhile keeps its memory."""
        with self._lock:
            self._rows.setdefault(service, dict(saved or {}))
            self._waiting.add(service)
            if self._ready:
                self._waiting.discard(service)

    def wait_for(self, what: str) -> None:
        """READY also waits for `what` (no row of its own) until `done_waiting`."""
        with self._lock:
            if not self._ready:
                self._waiting.add(what)

    def done_waiting(self, what: str) -> None:
        with self._lock:
            if what not in self._waiting:
                return
            self._waiting.discard(what)
        self._after_change()

    def drop(self, service: str) -> None:
        with self._lock:
            self._rows.pop(service, None)
            self._waiting.discard(service)
        self._after_change()

    def remember(self, service: str, **memory: Any) -> None:
        """Keep what an operator's command changed in the service's row before its first
        look (the engine not answered yet): the state file holds it from now on."""
        with self._lock:
            if service not in self._rows:
                return
            self._rows[service] = {**self._rows[service], **memory}
        self._request_save()

    def publish(
        self,
        service: str,
        row: dict[str, Any],
        detail: str | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Show `row`; `then` runs once the state file holds it (at once with no state file),
        so what it logs is never ahead of what `status` reads."""
        with self._lock:
            known = service in self._rows
            waiting = service in self._waiting
            before = {} if waiting or not known else self._rows[service]
            if known and row != before:
                self._rows[service] = row
                self._waiting.discard(service)
        if not known or row == before:
            # Removed meanwhile, or the common case, every tick: nothing to log or count.
            if then is not None:
                self._request_save(then=then)
            return
        if row.get("container_id"):
            self.on_change(row["container_id"])
        shown = (row.get("status"), row.get("reason"), row.get("container"))
        if shown != (before.get("status"), before.get("reason"), before.get("container")):
            status = row.get("status")
            calm = status in (Status.RUNNING, Status.STARTING)
            reason = row.get("reason")
            log_event(
                log,
                logging.INFO if calm else logging.WARNING,
                "service.status",
                f"{service} {status}" + (f" ({reason})" if reason else ""),
                service=service,
                container=row.get("container"),
                status=status,
                reason=reason,
                detail=detail,
            )
        self._request_save(then=then)
        self._after_change()

    def _after_change(self) -> None:
        line = self.summary()
        with self._lock:
            changed, self._line = line != self._line, line
            ready_now = not self._ready and not self._waiting
            self._ready = self._ready or ready_now
        if ready_now:
            self._notifier.ready(line)
            log_event(log, logging.INFO, "agent.ready", "every service checked once", summary=line)
        elif changed and self._ready:
            self._notifier.status(line)

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    def summary(self) -> str:
        """One line for systemd's STATUS: "12 services: 11 running, 1 healing"."""
        counts: dict[str, int] = {}
        with self._lock:
            rows = list(self._rows.values())
        for row in rows:
            if row.get("healing"):
                key = "healing"
            elif row.get("reason") == "held":
                key = "held"
            else:
                key = row.get("status") or "unchecked"
            counts[key] = counts.get(key, 0) + 1
        parts = [f"{counts[k]} {k}" for k in SUMMARY_ORDER if counts.get(k)]
        return f"{len(rows)} services: " + ", ".join(parts)

    def rows(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {s: dict(r) for s, r in self._rows.items() if r}

    def row(self, service: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._rows.get(service) or {})

    def waited_for(self, container_id: str) -> str | None:
        """Why what needs this container waits, as far as the services' rows tell (being
        healed, held, given up), or None. (Whether it is down is the engine's to tell.)"""
        with self._lock:
            rows = [r for r in self._rows.values() if r.get("container_id") == container_id]
        for row in rows:
            if row.get("healing"):
                return "being healed"
            if row.get("reason") in (REASON_HELD, REASON_GAVE_UP):
                return str(row["reason"]).replace("_", " ")
        return None

    def left_alone(self, container_id: str) -> str | None:
        """Why the service whose container this is must not be restarted as someone's
        dependent (held, given up, stopped by hand), or None."""
        with self._lock:
            rows = [r for r in self._rows.values() if r.get("container_id") == container_id]
        for row in rows:
            if row.get("reason") in (REASON_HELD, REASON_GAVE_UP, REASON_MANUAL_STOP):
                return str(row["reason"]).replace("_", " ")
            if row.get("gave_up"):
                return "gave up"
        return None

    def metric_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "service": service,
                "status": row.get("status"),
                "restarts": row.get("restarts_in_window", 0),
                "healing": bool(row.get("healing")),
                "held": row.get("reason") == "held",
                "gave_up": bool(row.get("gave_up")),
                "deferred": bool(row.get("deferred")),
            }
            for service, row in self.rows().items()
        ]
