"""The router: which services a container event concerns, and telling their workers.

It runs on the view's event thread and must never wait on a service: it looks the container
up in an index (container id -> services, kept by the workers as they find their
containers) and posts a `Look` to each worker concerned. Only a container it does not know,
or one whose identity may have changed (create, start, rename), is matched against the
policies, and only that one container. A start also fulfils the journal's intents for it.
"""

from __future__ import annotations

import threading

from ..act.journal import Journal
from ..docker.containers import discover, parse_started_at
from ..docker.view import ViewEvent
from ..runtime.dispatch import Dispatcher, Handler
from .messages import Look

# Actions after which a container may belong to other services than before.
IDENTITY_ACTIONS = ("create", "start", "rename", "resync")


class Router:
    def __init__(self, dispatcher: Dispatcher, journal: Journal) -> None:
        self._dispatcher = dispatcher
        self._journal = journal
        self._lock = threading.Lock()
        self._workers: dict[str, Handler] = {}
        self._index: dict[str, set[str]] = {}
        self._claimed: dict[str, str | None] = {}
        # container id -> the services waiting for it (something they need, down).
        self._awaited: dict[str, set[str]] = {}
        self._awaiting: dict[str, str] = {}

    def add(self, worker: Handler) -> None:
        with self._lock:
            self._workers[worker.service] = worker

    def remove(self, service: str) -> None:
        with self._lock:
            self._workers.pop(service, None)
            self._set_claim(service, None)
            self._set_wait(service, None)

    def wait_on(self, service: str, container_id: str | None) -> None:
        """The worker of `service` waits for this container (something it needs, down):
        each of its events is that worker's too. None: it waits for nothing."""
        with self._lock:
            if self._awaiting.get(service) != container_id and service in self._workers:
                self._set_wait(service, container_id)

    def wake(self, container_id: str) -> None:
        """What the agent knows of this container changed (its service's row): the
        services waiting for it look again."""
        with self._lock:
            waiting = [
                self._workers[n] for n in self._awaited.get(container_id, ()) if n in self._workers
            ]
        for worker in waiting:
            self._dispatcher.post(worker, Look("state"))

    def _set_wait(self, service: str, container_id: str | None) -> None:
        _tie(self._awaiting, self._awaited, service, container_id)

    def workers(self) -> list[Handler]:
        with self._lock:
            return list(self._workers.values())

    def get(self, service: str) -> Handler | None:
        with self._lock:
            return self._workers.get(service)

    def claim(self, service: str, container_id: str | None) -> None:
        """The worker of `service` found this container (or none)."""
        with self._lock:
            if self._claimed.get(service) != container_id and service in self._workers:
                self._set_claim(service, container_id)

    def _set_claim(self, service: str, container_id: str | None) -> None:
        _tie(self._claimed, self._index, service, container_id)

    def broadcast(self, cause: str) -> None:
        for worker in self.workers():
            self._dispatcher.post(worker, Look(cause))

    def on_event(self, change: ViewEvent) -> None:
        """The view's listener: route one applied event. Never blocks."""
        verb = change.action.partition(":")[0]
        container = change.container
        if container is not None and verb in ("start", "restart"):
            self._journal.seen_running(change.container_id, parse_started_at(container.state))
        with self._lock:
            names = set(self._index.get(change.container_id, ()))
            waiting = self._awaited.get(change.container_id, set()) - names
            candidates = list(self._workers.values())
            concerned = [self._workers[n] for n in names if n in self._workers]
            waiters = [self._workers[n] for n in waiting if n in self._workers]
        identity = verb in IDENTITY_ACTIONS or not names
        if container is not None and identity:
            for worker in candidates:
                policy = worker.policy
                if worker.service not in names and discover(
                    policy.match, policy.project, [container], policy.compose_file
                ):
                    concerned.append(worker)
        # A state change of a container its services already found ("state") leaves who
        # matches what as it was: they need not match every container again.
        look = Look("event" if identity else "state")
        for worker in concerned:
            self._dispatcher.post(worker, look)
        for worker in waiters:
            if worker not in concerned:
                self._dispatcher.post(worker, Look("state"))


def _tie(
    of: dict[str, str | None],
    index: dict[str, set[str]],
    service: str,
    container_id: str | None,
) -> None:
    """Tie `service` to `container_id` (None: to nothing), in both directions."""
    old = of.pop(service, None)
    if old is not None:
        index.get(old, set()).discard(service)
        if not index.get(old):
            index.pop(old, None)
    if container_id is not None:
        of[service] = container_id
        index.setdefault(container_id, set()).add(service)
