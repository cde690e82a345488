"""The Docker adapter: list and inspect containers, find a service's container, stop and start.

The only module that imports `docker`. Every error from the SDK or its HTTP layer is wrapped
into EngineUnreachable, ContainerGone or EngineError here. It decides nothing: it observes and
it acts when told. It counts the API calls it makes, so their cost can be measured.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import docker.utils
import psutil
import requests.exceptions

from ..config.model import Policy
from ..errors import ContainerGone, EngineError, EngineUnreachable, ExecTimedOut
from .containers import ContainerInfo, Observation, observe_in, parse_started_at, parse_time
from .states import (
    REASON_ENGINE_UNREACHABLE,
    Status,
    classify_state,
)

if TYPE_CHECKING:
    from .view import ContainerView

EXEC_POLL_FIRST_S = 0.02
EXEC_POLL_MAX_S = 0.2


class Engine:
    """A thread-safe, lazily connected Docker engine client."""

    def __init__(self, base_url: str | None = None, timeout_s: float = 15.0) -> None:
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._calls = 0
        self.view: ContainerView | None = None

    def attach_view(self, view: ContainerView) -> None:
        """Read containers from `view` from now on (no API call per observation)."""
        self.view = view

    @property
    def api_calls(self) -> int:
        """How many engine API requests this adapter has made."""
        return self._calls

    def _client(self) -> docker.APIClient:
        with self._lock:
            if self._api is not None:
                return self._api
        # Version negotiation is a request: made outside the lock, so a slow engine delays
        # only this caller (the heartbeat's short cut still holds for the others).
        kwargs = docker.utils.kwargs_from_env()
        if self._base_url:
            kwargs["base_url"] = self._base_url
        try:
            api = docker.APIClient(version="auto", timeout=self._timeout_s, **kwargs)
        except docker.errors.DockerException as e:
            raise EngineUnreachable(f"Docker engine did not answer: {e}") from None
        with self._lock:
            self._calls += 1  # version negotiation
            if self._api is None:
                self._api, api = api, None
            chosen = self._api
        if api is not None:
            api.close()  # another thread connected first
        return chosen

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        api = self._client()
        with self._lock:
            self._calls += 1
        try:
            return getattr(api, method)(*args, **kwargs)
        except docker.errors.NotFound as e:
            raise ContainerGone(str(e.explanation or e)) from None
        except docker.errors.APIError as e:
            raise EngineError(str(e.explanation or e)) from None
        except (requests.exceptions.RequestException, docker.errors.DockerException) as e:
            self._forget_client()
            raise EngineUnreachable(f"Docker engine did not answer: {e}") from None

    def _forget_client(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()

    def ping(self, timeout_s: float = 3.0) -> None:
        """Ask the engine whether it answers, within `timeout_s` (a frozen engine does not)."""
        api = self._client()
        with self._lock:
            self._calls += 1
        try:
            api.get(f"{api.base_url}/_ping", timeout=timeout_s).raise_for_status()
        except requests.exceptions.RequestException as e:
            raise EngineUnreachable(
                f"Docker engine did not answer within {timeout_s:g}s: {e}"
            ) from None

    def list_rows(self) -> list[Mapping[str, Any]]:
        """One listing of every container, running or not, as the API returns it."""
        return self._call("containers", all=True)

    def list_containers(self) -> list[ContainerInfo]:
        """Every container from one listing (no State yet)."""
        return [_summary(row) for row in self.list_rows()]

    def inspect_container(self, container_id: str) -> ContainerInfo:
        """One container, fully: name, labels, ports and State."""
        return _from_inspect(self._call("inspect_container", container_id))

    def environment_of(self, container: str) -> list[str]:
        """A container's environment (VAR=VALUE), by name or id, as its inspect says."""
        data = self._call("inspect_container", container)
        return list((data.get("Config") or {}).get("Env") or [])

    def open_events(self, actions: tuple[str, ...]) -> Any:
        """Open the container event stream, filtered to `actions`; iterate it, close() it."""
        filters = {"type": ["container"], "event": list(actions)}
        return self._call("events", filters=filters, decode=True)

    def observe(self, policy: Policy, containers: list[ContainerInfo] | None = None) -> Observation:
        """Find the policy's container and classify it. Never raises for engine trouble.

        With a view attached, this reads the view and makes no API call.
        """
        view = self.view
        try:
            if view is not None:
                if not view.synced:
                    raise EngineUnreachable("not connected to the Docker engine")
                return observe_in(policy, view.containers(), view.is_manual_stop)
            if containers is None:
                containers = self.list_containers()
            seen = observe_in(policy, containers)
            if seen.container is None:
                return seen
            container = self.inspect_container(seen.container.id)
        except ContainerGone:
            status, reason = classify_state(None)
            return Observation(status, reason)
        except EngineError as e:
            return Observation(Status.ERROR, REASON_ENGINE_UNREACHABLE, detail=str(e))
        status, reason = classify_state(container.state)
        return Observation(status, reason, container, parse_started_at(container.state))

    def containers_now(self) -> list[ContainerInfo]:
        """Every container with its details: from the view, or listed and inspected."""
        if self.view is not None and self.view.synced:
            return self.view.containers()
        found = []
        for summary in self.list_containers():
            with contextlib.suppress(ContainerGone):
                found.append(self.inspect_container(summary.id))
        return found

    def wait_change(self, timeout_s: float) -> None:
        """Sleep until the view changes (or `timeout_s` passes); plain sleep without a view."""
        if self.view is not None and self.view.synced:
            self.view.wait_change(timeout_s)
        else:
            time.sleep(timeout_s)

    def acting_on(
        self,
        container_ids: tuple[str, ...] = (),
        project: str | None = None,
        services: tuple[str, ...] = (),
        stopping: bool = True,
    ):
        """Mark what the agent is about to do, so the view takes its events as the agent's
        (a start marks no stop events: a stop right after it is someone else's)."""
        if self.view is None:
            return contextlib.nullcontext()
        return self.view.acting_on(container_ids, project, services, stopping)

    def exec_probe(self, container_id: str, argv: list[str], timeout_s: float) -> tuple[int, str]:
        """Run argv inside the container (no shell), detached; return (exit code, "").

        At the deadline the command's process (and what it started) is killed from the host,
        so a hanging probe leaves no process, thread or connection behind, and EngineError
        says it timed out.
        """
        deadline = time.monotonic() + timeout_s
        exec_id = self._call("exec_create", container_id, argv, stdout=False, stderr=False)["Id"]
        self._call("exec_start", exec_id, detach=True)
        pause_s = EXEC_POLL_FIRST_S
        while True:
            info = self._call("exec_inspect", exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return (-1 if code is None else int(code)), ""
            if time.monotonic() >= deadline:
                killed = kill_process_tree(int(info.get("Pid") or 0))
                raise ExecTimedOut(
                    f"timed out after {timeout_s:g}s: {' '.join(argv)}"
                    + ("" if killed else " (its process could not be killed)")
                )
            time.sleep(min(pause_s, max(0.0, deadline - time.monotonic())))
            pause_s = min(pause_s * 2, EXEC_POLL_MAX_S)

    def stop(self, container: ContainerInfo, timeout_s: int | None) -> None:
        """Stop gracefully, SIGKILL after `timeout_s` (None: the container's own StopTimeout,
        which the engine applies). The request waits as long as the stop may take."""
        with self.acting_on((container.id,)):
            self._call("stop", container.id, **_timeout_kwargs(timeout_s))

    def start(self, container: ContainerInfo) -> None:
        with self.acting_on((container.id,), stopping=False):
            self._call("start", container.id)

    def restart(self, container: ContainerInfo, timeout_s: int | None) -> None:
        """The engine's own restart: stop (SIGKILL after `timeout_s`, None: the container's
        own) and start in one call. A `--rm` container survives it; a stop would remove it."""
        with self.acting_on((container.id,)):
            self._call("restart", container.id, **_timeout_kwargs(timeout_s))

    def close(self) -> None:
        self._forget_client()


def _timeout_kwargs(timeout_s: int | None) -> dict[str, int]:
    """A stop's or restart's timeout for docker-py, which adds it (10 s when none is given)
    to the request's HTTP timeout; none given, the engine applies the container's own."""
    return {} if timeout_s is None else {"timeout": max(0, int(timeout_s))}


def _from_inspect(data: Mapping[str, Any]) -> ContainerInfo:
    config = data.get("Config") or {}
    ports: set[int] = set()
    exposed = list((config.get("ExposedPorts") or {}).keys())
    published = (data.get("NetworkSettings") or {}).get("Ports") or {}
    for key in [*exposed, *published.keys()]:
        with contextlib.suppress(ValueError):
            ports.add(int(key.split("/")[0]))
    for bindings in published.values():
        for binding in bindings or []:
            with contextlib.suppress(ValueError, TypeError):
                ports.add(int(binding.get("HostPort")))
    host = data.get("HostConfig") or {}
    restart = host.get("RestartPolicy") or {}
    stop_timeout = config.get("StopTimeout")
    if not isinstance(stop_timeout, int) or stop_timeout < 0:
        stop_timeout = None  # none set (or "wait forever", which the agent does not ask)
    return ContainerInfo(
        id=data["Id"],
        name=(data.get("Name") or data["Id"][:12]).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        ports=frozenset(ports),
        state=data.get("State"),
        restart_policy=restart.get("Name") or None,
        restart_max_retries=int(restart.get("MaximumRetryCount") or 0),
        restart_count=int(data.get("RestartCount") or 0),
        addresses=_addresses(data),
        network_mode=host.get("NetworkMode") or None,
        created=parse_time(data.get("Created")) or 0.0,
        health_check_s=_health_check_s(config.get("Healthcheck")),
        stop_timeout_s=stop_timeout,
        auto_remove=bool(host.get("AutoRemove")),
    )


def _health_check_s(check: Mapping[str, Any] | None) -> float:
    """Interval plus timeout of a health check (Docker's defaults, 30 s each, for zeros)."""
    check = check or {}
    interval = (check.get("Interval") or 30_000_000_000) / 1e9
    timeout = (check.get("Timeout") or 30_000_000_000) / 1e9
    return interval + timeout


def _addresses(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The container's IP addresses, one per network it is attached to."""
    settings = data.get("NetworkSettings") or {}
    found = [settings.get("IPAddress")]
    found += [n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n]
    return tuple(dict.fromkeys(a for a in found if a))


def _summary(row: Mapping[str, Any]) -> ContainerInfo:
    names = row.get("Names") or []
    name = names[0].lstrip("/") if names else row.get("Id", "")[:12]
    ports: set[int] = set()
    for port in row.get("Ports") or []:
        for key in ("PrivatePort", "PublicPort"):
            if isinstance(port.get(key), int):
                ports.add(port[key])
    created = row.get("Created")
    return ContainerInfo(
        row["Id"],
        name,
        dict(row.get("Labels") or {}),
        frozenset(ports),
        created=float(created) if isinstance(created, int | float) else 0.0,
    )


def kill_process_tree(pid: int) -> bool:
    """SIGKILL a process and its descendants (an exec probe's, seen from the host)."""
    if pid <= 0:
        return False
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.Error:
        return False
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return True
