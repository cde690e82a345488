"""The real core (workers, gate, tracker, runner, journal, prober, board, router, view) on a
simulated engine, clock and scheduler, single-threaded and deterministic from a seed.

Fakes of our own interfaces only: SimTimers for timers.Timers, SimDispatcher for the
mailboxes, SimEngine for engine.Engine (and the view's ContainerSource), SimCompose for
compose.Compose, SimStore for state.StateWriter. Nothing here sleeps or starts a thread.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from supervisor.docker.containers import ContainerInfo, observe_in
from supervisor.errors import ComposeError, ContainerGone, EngineError, EngineUnreachable
from supervisor.probe.checks import ProbeResult
from supervisor.store.state import Saved

START_AT = 1_800_000_000.0
# How long Docker waits before SIGKILL for a container that set no StopTimeout (Linux).
DOCKER_STOP_TIMEOUT_S = 10


class SimHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimTimers:
    """A heap of timers on simulated time; the world runs what is due. Timers belong to an
    agent generation: those of a killed agent never run. The world's own use `world_later`."""

    def __init__(self) -> None:
        self.t = START_AT
        self.gen = 0
        self._heap: list[tuple] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def _push(self, at, handle, fn, args, io, every, gen) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), handle, fn, args, io, every, gen))

    def call_later(self, delay_s, fn, *args, io=False) -> SimHandle:
        handle = SimHandle()
        self._push(self.t + max(0.0, delay_s), handle, fn, args, io, 0.0, self.gen)
        return handle

    def every(self, interval_s, fn, *args, first_s=0.0, io=False) -> SimHandle:
        handle = SimHandle()
        self._push(self.t + first_s, handle, fn, args, io, interval_s, self.gen)
        return handle

    def world_later(self, delay_s, fn, *args) -> None:
        self._push(self.t + max(0.0, delay_s), SimHandle(), fn, args, True, 0.0, None)

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        self.gen += 1

    def _live(self, entry) -> bool:
        return not entry[2].cancelled and (entry[7] is None or entry[7] == self.gen)

    def next_due(self) -> float | None:
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[Callable, tuple, bool]:
        at, _, handle, fn, args, io, every, gen = heapq.heappop(self._heap)
        self.t = max(self.t, at)
        if every:
            self._push(at + every, handle, fn, args, io, every, gen)
        return fn, args, io


class SimDispatcher:
    """Per-worker FIFO mailboxes; the world picks which worker takes its next message."""

    def __init__(self) -> None:
        self.inbox: dict[int, deque] = {}
        self.workers: dict[int, Any] = {}
        self.order: dict[int, int] = {}

    def post(self, worker, message) -> None:
        self.workers[id(worker)] = worker
        self.order.setdefault(id(worker), len(self.order))
        self.inbox.setdefault(id(worker), deque()).append(message)

    def ready(self) -> list[Any]:
        """Workers with mail, in an order that depends on the seed alone."""
        keys = sorted((k for k, box in self.inbox.items() if box), key=self._rank)
        return [self.workers[k] for k in keys]

    def _rank(self, key: int) -> tuple[str, int]:
        return (self.workers[key].service, self.order[key])

    def take(self, worker) -> Any:
        return self.inbox[id(worker)].popleft()

    def wait_idle(self, timeout_s: float) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class SimContainer:
    id: str
    name: str
    labels: dict[str, str]
    running: bool = True
    health: str | None = "healthy"
    exit_code: int = 0
    started_at: float = START_AT - 100
    finished_at: float | None = None
    network_mode: str | None = None
    probe_ok: bool = True
    has_health: bool = True
    created: float = START_AT - 200
    timing_out: bool = False  # unhealthy because its checks time out, not fail
    health_check_s: float = 5.0  # its health check's interval plus timeout
    stop_timeout_s: int | None = None  # its own StopTimeout (None: the engine's 10 s)
    shutdown_s: float = 0.0  # how long its clean shutdown takes after SIGTERM
    auto_remove: bool = False  # `--rm`: the engine removes it when it stops

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "Status": "running" if self.running else "exited",
            "Running": self.running,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "ExitCode": 0 if self.running else self.exit_code,
            "StartedAt": _iso(self.started_at),
            "FinishedAt": _iso(self.finished_at) if self.finished_at else "0001-01-01T00:00:00Z",
        }
        if self.has_health:
            state["Health"] = {"Status": self.health if self.running else "unhealthy"}
            if self.running and self.health == "unhealthy":
                failed = {"ExitCode": 1, "Output": "not ok"}
                if self.timing_out:
                    failed = {"ExitCode": -1, "Output": "Health check exceeded timeout (1s)"}
                state["Health"].update(FailingStreak=3, Log=[failed] * 3)
        return state

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            self.id,
            self.name,
            dict(self.labels),
            frozenset(),
            self.state(),
            addresses=("10.0.0.2",),
            network_mode=self.network_mode,
            created=self.created,
            health_check_s=self.health_check_s,
            stop_timeout_s=self.stop_timeout_s,
            auto_remove=self.auto_remove,
        )

    def contract_s(self) -> int:
        """How long it asked to be given before SIGKILL."""
        return DOCKER_STOP_TIMEOUT_S if self.stop_timeout_s is None else self.stop_timeout_s


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Action:
    at: float
    actor: str  # agent, operator, world
    verb: str  # stop, start
    container_id: str


class SimEngine:
    """The engine adapter's interface over simulated containers. Every state change emits
    the events Docker would emit, into a queue the world delivers (late, twice, or never)."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.containers: dict[str, SimContainer] = {}
        self.events: deque[dict[str, Any]] = deque()
        self.view: Any = None
        self.up = True
        self.fail_rate = 0.0
        self.actions: list[Action] = []
        self.api_calls = 0

    # The view's ContainerSource.

    def list_rows(self) -> list[dict[str, Any]]:
        self._answer()
        rows = []
        for c in self.containers.values():
            health = f" ({c.health})" if c.running and c.has_health else ""
            rows.append(
                {
                    "Id": c.id,
                    "Names": [f"/{c.name}"],
                    "Labels": dict(c.labels),
                    "Created": int(c.created),
                    "State": "running" if c.running else "exited",
                    "Status": ("Up 1 minute" if c.running else "Exited (1)") + health,
                }
            )
        return rows

    def inspect_container(self, container_id: str) -> ContainerInfo:
        self._answer()
        if container_id not in self.containers:
            raise ContainerGone(f"no such container: {container_id}")
        return self.containers[container_id].info()

    def open_events(self, actions):  # the world delivers events itself
        raise NotImplementedError

    # What the core asks of engine.Engine.

    def attach_view(self, view: Any) -> None:
        self.view = view

    def observe(self, policy):
        return observe_in(policy, self.view.containers(), self.view.is_manual_stop)

    def containers_now(self) -> list[ContainerInfo]:
        return self.view.containers()

    def acting_on(self, container_ids=(), project=None, services=(), stopping=True):
        return self.view.acting_on(container_ids, project, services, stopping)

    def ping(self, timeout_s: float = 3.0) -> None:
        self._answer()

    def close(self) -> None:
        pass

    def stop(self, container: ContainerInfo, timeout_s: int | None) -> None:
        self.world.agent_stopping(container.id)  # tried, whether it reaches the engine or not
        self._act()
        with self.acting_on((container.id,)):
            self.stop_within(container.id, timeout_s)

    def restart(self, container: ContainerInfo, timeout_s: int | None) -> None:
        self.world.agent_stopping(container.id)
        self._act()
        with self.acting_on((container.id,)):
            self.stop_within(container.id, timeout_s, restart=True)
            self.do_start(container.id, "agent")

    def stop_within(self, cid: str, timeout_s: float | None, restart: bool = False) -> None:
        """The agent's stop as the engine runs it: SIGTERM, and SIGKILL once `timeout_s`
        (None: the container's own) passes before its shutdown is done."""
        c = self.containers.get(cid)
        if c is None:
            raise ContainerGone(cid)
        given = c.contract_s() if timeout_s is None else math.ceil(timeout_s)
        killed = c.running and c.shutdown_s > given
        if c.running:
            self.world.stopped_within(cid, given, killed)
        self.do_stop(cid, "agent", code=137 if killed else 143, restart=restart)

    def start(self, container: ContainerInfo) -> None:
        self._act()
        with self.acting_on((container.id,), stopping=False):
            self.do_start(container.id, "agent")

    def _answer(self) -> None:
        self.api_calls += 1
        if not self.up:
            raise EngineUnreachable("simulated outage")

    def _act(self) -> None:
        self.world.check_io_allowed()
        self._answer()
        if self.world.rng.random() < self.fail_rate:
            raise EngineError("simulated failure")

    # State changes, by anyone.

    def do_stop(self, cid: str, actor: str, code: int = 143, restart: bool = False) -> bool:
        c = self.containers.get(cid)
        if c is None:
            raise ContainerGone(cid)
        if not c.running:
            return False
        self.world.timers.t += 1e-6  # no two state changes share an instant, as in Docker
        self.world.before_action(Action(self.world.timers.now(), actor, "stop", cid))
        self.actions.append(self.world.last[cid])
        c.running, c.exit_code, c.finished_at = False, code, self.world.wall()
        if actor != "world":
            self._emit(cid, "kill", {"signal": "15"})
        self._emit(cid, "die", {"exitCode": str(code)})
        if actor != "world":
            self._emit(cid, "stop")
        if c.auto_remove and not restart:  # `--rm`: a stop ends it, and the engine removes it
            self.world.removed_by_stop(cid, actor)
            self.world.timers.t += 1e-6
            del self.containers[cid]
            self._emit(cid, "destroy")
        return True

    def do_start(self, cid: str, actor: str) -> None:
        c = self.containers.get(cid)
        if c is None:
            raise ContainerGone(cid)
        if c.running:
            return
        self.world.timers.t += 1e-6
        self.world.before_action(Action(self.world.timers.now(), actor, "start", cid))
        self.actions.append(self.world.last[cid])
        c.running, c.started_at, c.exit_code = True, self.world.wall(), 0
        c.health = "starting" if c.has_health else None
        self._emit(cid, "start")
        if c.has_health:
            self.world.timers.call_later(
                self.world.rng.uniform(0.2, 2.0), self.world.become_healthy, cid, c.started_at
            )

    def create(self, cid: str, name: str, labels: dict[str, str]) -> SimContainer:
        """`docker run`: a new container, created and started (healthy a moment later)."""
        self.world.timers.t += 1e-6
        c = SimContainer(cid, name, labels, running=False, created=self.world.wall())
        self.containers[cid] = c
        self._emit(cid, "create")
        self.do_start(cid, "operator")
        return c

    def destroy(self, cid: str) -> None:
        """`docker rm -f`: killed if running, then gone."""
        self.do_stop(cid, "operator", code=137)
        if cid not in self.containers:
            return  # `--rm`: gone with its stop
        self.world.timers.t += 1e-6
        del self.containers[cid]
        self._emit(cid, "destroy")

    def set_health(self, cid: str, health: str) -> None:
        c = self.containers[cid]
        if c.running and c.has_health and c.health != health:
            self.world.timers.t += 1e-6
            c.health = health
            self._emit(cid, f"health_status: {health}")

    def _emit(self, cid: str, action: str, attrs: dict[str, str] | None = None) -> None:
        at_ns = int(self.world.wall() * 1e9)  # the engine stamps with the wall clock
        self.events.append(
            {
                "Type": "container",
                "Action": action,
                "id": cid,
                "Actor": {"ID": cid, "Attributes": attrs or {}},
                "timeNano": at_ns,
            }
        )


class SimCompose:
    """compose.Compose's commands on the simulated projects: of the whole project, or of the
    named services. While `failing` (a bad edit, a port clash), `up` fails as compose does."""

    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine
        self.failing = False
        self.made = 0
        self.calls: list[tuple[float, str, tuple[str, ...]]] = []  # (at, verb, services)
        self.files: dict[str, tuple[str, ...]] = {}  # project -> the services of its file

    def _targets(self, project: str | None, services) -> list[str]:
        return [
            c.id
            for c in self.engine.containers.values()
            if c.labels.get("com.docker.compose.project") == project
            and (not services or c.labels.get("com.docker.compose.service") in services)
            and c.labels.get("com.docker.compose.oneoff") != "True"  # compose run's: not its
        ]

    def stop(self, file, project, timeout_s=None, services=(), grace_s=0.0) -> None:
        for cid in self._targets(project or _derived(file), services):
            self.engine.world.agent_stopping(cid)  # a failed stop may have half happened
        self.engine._act()
        self.calls.append((self.engine.world.timers.now(), "stop", tuple(services)))
        for cid in self._targets(project or _derived(file), services):
            self.engine.stop_within(cid, timeout_s)

    def up(self, file, project, services=(), no_deps=False, no_recreate=False) -> None:
        self.engine._act()
        self.calls.append((self.engine.world.timers.now(), "up", tuple(services)))
        if self.failing:
            raise ComposeError(f"exit code 1: compose -f {file} up -d", "simulated: port taken")
        project = project or _derived(file)  # without -p, compose names it by the directory
        targets = self._targets(project, services)
        # A service of that project with no container is created: of those named, or of
        # every service of the file (`up -d` of the whole project).
        for service in services or self.files.get(project, ()):
            labels = {"com.docker.compose.service": service, "com.docker.compose.project": project}
            if not any(self.engine.containers[c].labels == labels for c in targets):
                self.engine.world.compose_created(project, service)
                self.made += 1
                cid = f"made-{self.made}".ljust(12, "0")
                self.engine.create(cid, f"{project}-{service}-1", labels)
        for cid in targets:
            self.engine.do_start(cid, "agent")


def _derived(file) -> str:
    """The project compose derives without -p: the compose file's directory's name."""
    return Path(file).parent.name


@dataclass
class SimStore:
    """The state file on a simulated disk: write-through is at once; a request is written
    when the world flushes (so an agent killed before it loses it, as a real one would)."""

    world: Any
    snapshot: Callable[[], tuple]
    dirty: bool = False
    failing: bool = False  # the last write failed (the world's disk is full)
    on_health: Callable[[bool], None] = lambda writable: None

    def request(self, urgent: bool = False, then: Callable[[], None] | None = None) -> int:
        self.dirty = True
        if then is not None:  # the real writer writes at once (or fails), then says the line
            self.flush()
            then()
        return 0

    def write_through(self, timeout_s: float = 10.0) -> bool:
        self.flush()
        return not self.failing

    def flush(self) -> None:
        if self.world.disk_full:  # nothing written; tried again (stays dirty), said once
            self.dirty = True
            if not self.failing:
                self.failing = True
                self.on_health(False)
            return
        if self.failing:
            self.failing = False
            self.on_health(True)
        services, agent, intents = self.snapshot()
        self.world.disk = Saved(
            {k: dict(v) for k, v in services.items()},
            [dict(i) for i in intents],
            list(agent.get("manual_stops", [])),
        )
        self.dirty = False

    def close(self) -> None:
        self.flush()


@dataclass
class Effect:
    ready_at: float
    seq: int
    run: Callable[[], None]


@dataclass
class Pending:
    """Effects and probes submitted by the core, run by the world when they are ready."""

    items: list[Effect] = field(default_factory=list)
    seq: Any = field(default_factory=itertools.count)

    def add(self, ready_at: float, run: Callable[[], None]) -> None:
        self.items.append(Effect(ready_at, next(self.seq), run))

    def ready(self, now: float) -> list[Effect]:
        return [e for e in self.items if e.ready_at <= now]

    def take(self, effect: Effect) -> None:
        self.items.remove(effect)

    def next_due(self) -> float | None:
        return min((e.ready_at for e in self.items), default=None)


def run_probe_on(engine: SimEngine) -> Callable[..., ProbeResult]:
    def run(probe, container: ContainerInfo) -> ProbeResult:
        c = engine.containers.get(container.id)
        ok = c is not None and c.running and c.probe_ok
        if not ok and c is not None and c.running and c.timing_out:
            engine.world.timeout_told.add(container.id)
            return ProbeResult(False, "timed out after 1s", timed_out=True)
        engine.world.timeout_told.discard(container.id)
        return ProbeResult(ok, None if ok else "simulated probe failure")

    return run


@contextmanager
def flag(obj: Any, name: str):
    setattr(obj, name, True)
    try:
        yield
    finally:
        setattr(obj, name, False)
