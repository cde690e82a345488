"""The journal of intents: before the agent stops anything, it records that it must start it
again; the record goes when the start is seen.

A heal's own container, a dependent, or a compose service: each stop is preceded by an intent
that is written through to the state file before the stop is sent, so an agent killed between
the stop and the start finishes the start when it runs again. A cycle owns its intent while
it runs; an intent nobody owns (its start failed, or the agent that made it died) is due, and
`finish_due` starts it again. An intent is dropped when the container runs again, is gone, or
was taken over by an operator (stopped by hand after ours). Holds no lock across I/O: the
write-through and the starts are the callers'.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

CONTAINER = "container"
DEPENDENT = "dependent"
COMPOSE = "compose"


@dataclass(frozen=True)
class Intent:
    key: str  # the container id, or "compose:SERVICE"
    service: str
    kind: str
    container_id: str | None
    at: float  # when it was written, just before the stop was sent

    @staticmethod
    def for_container(service: str, container_id: str, at: float, kind: str = CONTAINER):
        return Intent(container_id, service, kind, container_id, at)

    @staticmethod
    def for_compose(service: str, container_id: str | None, at: float) -> Intent:
        return Intent(compose_key(service), service, COMPOSE, container_id, at)


def compose_key(service: str) -> str:
    """The key of a compose-scope service's intent."""
    return f"{COMPOSE}:{service}"


class Journal:
    """The intents in memory; `write_through` and `request_save` persist the state file."""

    def __init__(
        self,
        write_through: Callable[[], None] = lambda: None,
        request_save: Callable[[], None] = lambda: None,
    ) -> None:
        self._write_through = write_through
        self._request_save = request_save
        self._lock = threading.Lock()
        self._intents: dict[str, Intent] = {}
        self._owned: set[str] = set()

    def record(self, intent: Intent, owned: bool = True) -> None:
        """Record before a stop; returns once the record is on disk."""
        with self._lock:
            self._intents[intent.key] = intent
            if owned:
                self._owned.add(intent.key)
        self._write_through()

    def release(self, key: str) -> None:
        """The cycle that owned it is done with it; if it is still here it becomes due."""
        with self._lock:
            self._owned.discard(key)

    def clear(self, key: str) -> bool:
        with self._lock:
            found = self._intents.pop(key, None) is not None
            self._owned.discard(key)
        if found:
            self._request_save()
        return found

    def seen_running(self, container_id: str, started_at: float | None) -> bool:
        """A container runs from a start at `started_at`: the intents it fulfils (those made
        before that start; a late or repeated event of an older start fulfils none) go."""
        with self._lock:
            keys = [
                k
                for k, i in self._intents.items()
                if i.container_id == container_id and started_at is not None and started_at > i.at
            ]
        return any([self.clear(k) for k in keys])

    def get(self, key: str) -> Intent | None:
        with self._lock:
            return self._intents.get(key)

    def intents(self) -> list[Intent]:
        with self._lock:
            return list(self._intents.values())

    def due(self) -> list[Intent]:
        """The intents no running cycle owns."""
        with self._lock:
            return [i for k, i in self._intents.items() if k not in self._owned]

    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(i) for i in self.intents()]

    def restore(self, saved: Iterable[Mapping[str, Any]]) -> None:
        """Take back what an earlier agent recorded (all of it due); skip what does not fit."""
        for row in saved:
            try:
                intent = Intent(
                    str(row["key"]),
                    str(row["service"]),
                    str(row["kind"]),
                    row.get("container_id"),
                    float(row["at"]),
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            with self._lock:
                self._intents[intent.key] = intent
