"""A seeded world around the real core: containers that fail, events that come late, twice
or never, an engine that goes away, operators who pause, reset, reload and stop by hand, and
an agent killed at any step. Invariants are checked at every state change and every step.

Replay a failing seed with: .venv/bin/python -m tests.simulation.run --seed N
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from supervisor.act.cycle import PRE_STOP
from supervisor.act.manager import ServiceManager
from supervisor.agent import PRESSURE_S, Agent, Parts
from supervisor.config.model import (
    BackoffPolicy,
    CheckPolicy,
    ComposeRef,
    HealPolicy,
    Match,
    Policy,
    ProbePolicy,
)
from supervisor.config.policy import LoadResult
from supervisor.core.pressure import HostSample, Thresholds
from supervisor.errors import EngineError, PolicyError
from supervisor.logs import setup_logging
from supervisor.runtime.clock import Clock
from supervisor.runtime.dispatch import deliver
from supervisor.store.commands import Command
from supervisor.store.state import Saved

from .sim import (
    START_AT,
    Action,
    Pending,
    SimCompose,
    SimContainer,
    SimDispatcher,
    SimEngine,
    SimStore,
    SimTimers,
    run_probe_on,
)

CONCURRENCY = 2
# How long a heal waits for host pressure (`--pressure-max-defer`), shorter than a world.
MAX_DEFER_S = 40.0
# How long after the agent's own try to stop a container a stop by hand of it cannot be
# told from the agent's (a real stop takes up to its timeout; a failed one may be half done).
OWN_STOP_S = 5.0
POLICY_DIR = Path("/sim/policies")
PROJECT = "sim"

FAST_HEAL = HealPolicy(
    on=frozenset({"unhealthy", "exited"}),
    stop_timeout_s=1,
    pause_s=0.5,
    ready_timeout_s=8,
    backoff=BackoffPolicy(initial_s=1, factor=2, max_s=8, jitter=0.1),
    max_restarts=3,
    window_s=60,
    reset_after_s=20,
)


def make_policies(stack_scope: str = "compose") -> dict[str, Policy]:
    def policy(name, heal=FAST_HEAL, probe=None, project=PROJECT, compose=False):
        return Policy(
            service=name,
            match=Match(compose_service=name),
            compose=ComposeRef(Path("/sim/compose.yml"), project) if compose else None,
            check=CheckPolicy(interval_s=5, probe=probe),
            heal=heal,
            source=POLICY_DIR / f"{name}.yaml",
        )

    probe = ProbePolicy(kind="tcp", port=80, period_s=2, failure_threshold=2)
    return {
        "web": policy("web"),
        "api": policy("api", probe=probe),  # no Docker health check: the probe is all
        "db": policy("db", heal=replace(FAST_HEAL, dependents="restart")),
        "batch": policy("batch", heal=replace(FAST_HEAL, on=frozenset({"exited"}))),
        "stack": policy(
            "stack", heal=replace(FAST_HEAL, scope=stack_scope), project="other", compose=True
        ),
    }


# A selector policy: every container labelled autoheal=true is a service of its own.
TAGGED = Policy(
    service="tagged",
    match=Match(selector={"autoheal": "true"}),
    check=CheckPolicy(interval_s=5),
    heal=FAST_HEAL,
    source=POLICY_DIR / "tagged.yaml",
)
# The containers it selects in a random world: their service names, and their labels.
SELECTED = {
    "cache": {"com.docker.compose.service": "cache", "com.docker.compose.project": PROJECT},
    "loose": {},
    # A Swarm task: watched, never stopped or started (Swarm replaces it).
    "task": {"com.docker.swarm.service.name": "task", "com.docker.swarm.task.id": "t1"},
}
SWARM_PREFIX = "com.docker.swarm."


class World:
    def __init__(
        self,
        seed: int,
        steps: int = 600,
        faults: bool = True,
        policies: dict[str, Policy] | None = None,
        saved: Saved | None = None,
        connect_after_s: float | None = None,
        depends: bool | None = None,
        max_defer_s: float | None = None,
    ) -> None:
        self.seed = seed
        self.max_defer_s = MAX_DEFER_S if max_defer_s is None else max_defer_s
        self.steps = steps
        self.faults = faults
        self.rng = random.Random(seed)
        self.timers = SimTimers()  # the world's own time: it never steps
        self.wall_offset = 0.0  # how far the host's wall clock was stepped, in all
        # Until when (plus a grace) a start before a step may read older or younger to the
        # command than it is: a step forward, at once; a step back, as long as it stepped.
        self.grace_unknown_until = -math.inf
        self.engine = SimEngine(self)
        self.compose = SimCompose(self.engine)
        self.effects = Pending()
        self.probes = Pending()
        self.disk = saved or Saved()
        self.disk_full = False  # the state filesystem: nothing can be written while full
        self.bug_at: float | None = None  # when a step the world broke last raised
        self.latency: Any = None  # (the worker asking, or None) -> seconds; None: random
        self.current: Any = None  # the worker handling a message now
        self.connect_after_s = connect_after_s
        self.log = _Captured(self._check_outcome_saved)
        self.violations: list[str] = []
        self.io_allowed = False
        # The stack's heal scope: its one service (compose), or its whole project (project).
        self.policies = policies or make_policies("project" if seed % 3 == 2 else "compose")
        if policies is None and seed % 4 == 1:  # a quarter of the worlds have a selector
            self.policies["tagged"] = TAGGED
        self.in_force = dict(self.policies)  # what the last reload left supervised
        self.held: dict[str, float] = {}  # service -> until, once the pause returned
        self.removed: set[str] = set()
        self.reset_at: dict[str, float] = {}
        self.stops: dict[str, list[float]] = {}
        self.last: dict[str, Action] = {}
        self.owner: dict[str, str] = {}
        self.kills = 0
        self.refused = 0  # operator commands the agent answered with a refusal
        self.trace: list[str] = []
        for name, policy in self.policies.items():
            if policy.is_selector:
                continue
            project = "other" if name == "stack" else PROJECT
            cid = f"{name}-{seed}".ljust(12, "0")
            labels = {"com.docker.compose.service": name, "com.docker.compose.project": project}
            self.engine.containers[cid] = SimContainer(
                cid, f"{project}-{name}-1", labels, has_health=name != "api"
            )
            self.owner[cid] = name
        self.compose.files["other"] = ("stack", "side", "init")
        if "stack" in self.policies:  # a service of the stack's project nobody supervises
            side = f"side-{seed}".ljust(12, "0")
            labels = {"com.docker.compose.service": "side", "com.docker.compose.project": "other"}
            self.engine.containers[side] = SimContainer(side, "other-side-1", labels)
            # A one-shot of the project that ran and exited (a migration), and a `compose
            # run` one-off of the stack's own service: neither is the agent's to start or stop.
            init = f"init-{seed}".ljust(12, "0")
            labels = {"com.docker.compose.service": "init", "com.docker.compose.project": "other"}
            self.engine.containers[init] = SimContainer(
                init, "other-init-1", labels, running=False, finished_at=START_AT - 50
            )
            oneoff = f"run-{seed}".ljust(12, "0")
            labels = {
                "com.docker.compose.service": "stack",
                "com.docker.compose.project": "other",
                "com.docker.compose.oneoff": "True",
            }
            self.engine.containers[oneoff] = SimContainer(oneoff, "other-stack-run-1", labels)
        if "db" in self.policies:  # a sidecar in db's network namespace: its dependent
            sidecar = f"sidecar-{seed}".ljust(12, "0")
            self.engine.containers[sidecar] = SimContainer(
                sidecar, "sim-sidecar-1", {}, network_mode=f"container:{self.cid('db')}"
            )
        if depends is None:  # two thirds of the random worlds
            depends = faults and seed % 3 != 0
        if depends and "web" in self.policies and "db" in self.policies:
            # web needs db (compose's depends_on): no heal of web while db is down or held.
            web = self.engine.containers[self.cid("web")]
            web.labels["com.docker.compose.depends_on"] = "db:service_started:false"
            # An operator's `compose run web`: it carries web's labels, and is no dependent.
            oneoff = f"webrun-{seed}".ljust(12, "0")
            labels = {**web.labels, "com.docker.compose.oneoff": "True"}
            self.engine.containers[oneoff] = SimContainer(oneoff, "sim-web-run-1", labels)
        # The containers whose going down (die, stop) was delivered to the agent, and that
        # nothing started since: what it needs is down, and the agent was told.
        self.down_told: set[str] = set()
        self.returned_at: dict[str, float] = {}  # ... and when it last ran again after that
        self.recreated = 0
        self.host = HostSample(cpu_pct=1.0, memory_pct=0.0, io_pct=0.0)  # calm
        # A quarter of the worlds have a host that gets pressed, and checks that time out.
        self.pressure_faults = policies is None and seed % 4 == 3
        self.pressed_at: float | None = None  # since when the world's host is pressed
        self.timing_since: dict[str, float] = {}  # when its checks were made to time out
        self.timeout_told: set[str] = set()  # ...and the agent was told so, last
        if policies is None and "tagged" in self.policies:
            for name, labels in SELECTED.items():
                cid = f"{name}-{seed}".ljust(12, "0")
                compose = "com.docker.compose.service" in labels
                container_name = f"{PROJECT}-{name}-1" if compose else name
                labels = {"autoheal": "true", **labels}
                self.engine.containers[cid] = SimContainer(cid, container_name, labels)
                self.owner[cid] = name
        # Each container's own stop contract and how long its clean shutdown really takes;
        # in half the worlds the operator's policies set no stop_timeout of their own. (A
        # stream of its own, so the rest of each seed's world is what it was.)
        contracts = random.Random(seed * 7919 + 1)
        for c in self.engine.containers.values():
            c.stop_timeout_s = contracts.choice([None, None, 3, 20])
            c.shutdown_s = contracts.choice([0.0, 0.5, 5.0, 12.0])
        if policies is None and seed % 2 == 1 and "stack" in self.policies:
            # The operator ran the stack with -p other; its policy names the file alone.
            stack = self.policies["stack"]
            self.policies["stack"] = replace(stack, compose=replace(stack.compose, project=None))
            self.in_force = dict(self.policies)
        if policies is None and seed % 2 == 0:
            for name, policy in self.policies.items():
                self.policies[name] = replace(
                    policy, heal=replace(policy.heal, stop_timeout_s=None)
                )
            self.in_force = dict(self.policies)
        # A fifth of the worlds run web with `--rm`: a stop would make the engine remove it.
        if policies is None and seed % 5 == 0 and "web" in self.policies:
            self.engine.containers[self.cid("web")].auto_remove = True
        # What an operator stopped by hand and has not started again: "seen" once the
        # engine's stop event reached the agent, "pending" while it has not (dropped, an
        # outage), "ambiguous" where no one could tell it from another stop (the engine's
        # shutdown, the agent's own project stop at that instant, an agent killed before it
        # saved what it saw).
        self.hand_stopped: dict[str, str] = {}
        self.hand_stopped_at: dict[str, float] = {}
        self.agent_stop_at: dict[str, float] = {}  # the agent's last try to stop each
        if os.environ.get("SIM_VERBOSE"):
            setup_logging("DEBUG", sys.stderr)
        root = logging.getLogger("supervisor")
        root.handlers = [h for h in root.handlers if not isinstance(h, _Captured)]
        root.addHandler(self.log)
        root.setLevel(logging.DEBUG)
        root.propagate = False
        self.boot()

    def step_clock(self, by: float) -> None:
        """The host's wall clock steps (NTP after a suspend, `date -s`); the world's own
        time goes on as it did."""
        now = self.timers.now()
        self.wall_offset += by
        self.grace_unknown_until = max(self.grace_unknown_until, now + max(0.0, -by) + 1.0)
        self.trace.append(f"{now:.2f} clock stepped by {by:+g}s")

    def wall(self) -> float:
        """The host's wall clock: what the engine stamps with and the agent reads."""
        return self.timers.now() + self.wall_offset

    def cid(self, service: str) -> str:
        return next(c for c, s in self.owner.items() if s == service)

    # The agent's life.

    def boot(self) -> None:
        self.booted_at = self.timers.now()
        self.dispatcher = SimDispatcher()
        self.store: SimStore | None = None

        def make_store(snapshot):
            self.store = SimStore(self, snapshot)
            return self.store

        parts = Parts(
            timers=self.timers,
            dispatcher=self.dispatcher,
            submit_effect=lambda fn: self.effects.add(self._latency(), fn),
            submit_probe=lambda fn: self.probes.add(self.timers.now() + 0.05, fn),
            make_store=make_store,
            run_probe=run_probe_on(self.engine),
            make_manager=lambda policy: ServiceManager(
                policy,
                self.engine,
                compose=self.compose,
                clock=self.timers.now,
                sleep=lambda seconds: None,
            ),
            rng=self.rng.random,
            read_host=lambda: self.host,
            saved=Saved(
                {k: dict(v) for k, v in self.disk.services.items()},
                [dict(i) for i in self.disk.intents],
                list(self.disk.manual_stops),
            ),
        )
        self.agent = Agent(
            list(self.in_force.values()),
            engine=self.engine,
            clock=Clock(self.wall, self.timers.now, boot=lambda: "simulated"),
            heal_concurrency=CONCURRENCY,
            relist_s=20,
            parts=parts,
            pressure=Thresholds(max_defer_s=self.max_defer_s),
        )
        # When each service's row was last built: `status` is compared as of then.
        self.row_at: dict[str, float] = {}
        publish = self.agent.board.publish

        def timed_publish(service: str, row: dict, detail: str | None = None, then=None) -> None:
            self.row_at[service] = self.wall()  # the instant `status` would read it at
            publish(service, row, detail, then)

        self.agent.board.publish = timed_publish
        # A forgotten expanded service takes its budget with it, and its hold unless it is
        # only gone for a while; a service (re)added is supervised again.
        retire, add = self.agent._retire_expanded, self.agent._add

        def retired(service: str, why: str) -> None:
            retire(service, why)
            self.removed.add(service)
            if why == "gone" and self.held.get(service, 0.0) > self.timers.now():
                return  # the operator's hold waits for its container to come back
            self.held.pop(service, None)
            self.stops.pop(service, None)

        def added(policy: Policy, saved: dict | None = None) -> None:
            add(policy, saved)
            self.removed.discard(policy.service)

        self.agent._retire_expanded = retired
        self.agent._add = added
        self.agent.schedule()
        # A slow boot too: the first listing may come seconds after the start.
        delay_s = self.connect_after_s
        if delay_s is None:
            delay_s = self.rng.choice([0.0, 0.2, 3.0, 8.0])
        self.timers.call_later(delay_s, self._connect)

    def _connect(self) -> None:
        if not self.engine.up:
            self.timers.call_later(1.0, self._connect)
            return
        self.engine.events.clear()  # what happened while not listening is in the listing
        with self._io():
            try:
                self.agent.view.connect()
            except EngineError:
                self.timers.call_later(1.0, self._connect)

    def kill(self) -> None:
        """SIGKILL: effects under way either reached the engine or not; unwritten state is
        lost; the next agent starts from what is on disk."""
        self.kills += 1
        self.trace.append(f"{self.timers.now():.2f} kill")
        for cid in self.hand_stopped:  # what it saw may not have reached the disk
            self.hand_stopped[cid] = "ambiguous"
        for effect in list(self.effects.items):
            if self.rng.random() < 0.5:
                with self._io(), contextlib.suppress(Exception):
                    effect.run()  # its answer goes to no one
        self.effects.items.clear()
        self.probes.items.clear()
        self.timers.shutdown()
        self.boot()

    def graceful_restart(self) -> None:
        """SIGTERM, then a new agent: shutdown cancels waits, cycles start what they stopped."""
        self.trace.append(f"{self.timers.now():.2f} stop")
        if self.disk_full:  # its last save fails: what it saw since the disk filled is lost
            for cid in self.hand_stopped:
                self.hand_stopped[cid] = "ambiguous"
        self.agent.begin_stop()
        for _ in range(2000):
            if self.agent.runner.active == 0 and not self.dispatcher.ready():
                break
            self._step_core()
        if self.agent.runner.active:
            self.violation("a graceful stop did not end its cycles")
        if self.store is not None:
            self.store.close()
        self.effects.items.clear()
        self.probes.items.clear()
        self.timers.shutdown()
        self.boot()

    # Stepping.

    def _latency(self) -> float:
        if self.latency is not None:
            return self.timers.now() + self.latency(self.current)
        roll = self.rng.random()
        extra = 0.01 if roll < 0.8 else 1.5 if roll < 0.95 else 9.0  # quick, late, hung
        return self.timers.now() + extra

    def _io(self):
        world = self

        class Allowed:
            def __enter__(self):
                world.io_allowed = True

            def __exit__(self, *exc):
                world.io_allowed = False

        return Allowed()

    def check_io_allowed(self) -> None:
        if not self.io_allowed:
            self.violation("engine I/O outside an effect, an I/O job or the view")

    def _step_core(self) -> bool:
        """One step of the machinery (no new fault); False when nothing was due."""
        self.timers.t += 1e-6  # each step is its own instant, as on a real clock
        choices = []
        ready = self.dispatcher.ready()
        if ready:
            choices += [("deliver", 30)]
        if self.effects.ready(self.timers.now()):
            choices += [("effect", 12)]
        if self.probes.ready(self.timers.now()):
            choices += [("probe", 6)]
        if self.engine.events and self.agent.view.synced:
            choices += [("event", 20)]
        if self.store is not None and self.store.dirty:
            choices += [("flush", 4)]
        choices += [("time", 6)]
        kind = self._pick(choices)
        if kind == "deliver":
            worker = self.rng.choice(ready)
            message = self.dispatcher.take(worker)
            self.current = worker
            decided = len(self.log.events("heal.started"))
            deliver(worker, message)  # as the agent's threads do
            self.current = None
            self._check_row(worker)
            self._check_deferral(worker, decided)
        elif kind in ("effect", "probe"):
            pending = self.effects if kind == "effect" else self.probes
            effect = self.rng.choice(pending.ready(self.timers.now()))
            pending.take(effect)
            with self._io():
                effect.run()
        elif kind == "event":
            self._deliver_event()
        elif kind == "flush":
            self.store.flush()
        else:
            return self._advance()
        return True

    def _advance(self) -> bool:
        due = [
            t
            for t in (self.timers.next_due(), self.effects.next_due(), self.probes.next_due())
            if t is not None
        ]
        if not due:
            self.timers.t += 1.0
            return False
        at = min(due)
        if at > self.timers.now():
            self.timers.t = at
        if self.timers.next_due() is not None and self.timers.next_due() <= self.timers.now():
            fn, args, io = self.timers.pop()
            if io:
                with self._io():
                    fn(*args)
            else:
                fn(*args)
        return True

    def _deliver_event(self) -> None:
        roll = self.rng.random()
        event = self.engine.events.popleft()
        if self.faults and roll < 0.03:
            return  # dropped: the next re-listing corrects the view
        if self.faults and roll < 0.06:
            self.engine.events.appendleft(event)  # delivered twice
        if event in GARBAGE_EVENTS:
            with self._io():
                self.agent.view.apply(event)  # skipped, said once; the stream goes on
            return
        if event["Action"] == "stop" and self.hand_stopped.get(event["id"]) == "pending":
            self.hand_stopped[event["id"]] = "seen"
        with self._io():
            self.agent.view.apply(event)
        c = self.engine.containers.get(event["id"])
        if event["Action"] == "health_status: unhealthy" and c and c.running and c.timing_out:
            self.timeout_told.add(event["id"])  # the agent was told of checks timing out
        elif event["Action"] in ("start", "die", "health_status: healthy"):
            self.timeout_told.discard(event["id"])
        if event["Action"] in ("die", "stop") and c is not None and not c.running:
            self.down_told.add(event["id"])

    def _pick(self, choices: list[tuple[str, float]]) -> str:
        total = sum(w for _, w in choices)
        roll = self.rng.uniform(0, total)
        for kind, weight in choices:
            roll -= weight
            if roll <= 0:
                return kind
        return choices[-1][0]

    def run(self) -> list[str]:
        for _ in range(self.steps):
            if self.faults and self.rng.random() < 0.06:
                self._fault()
            else:
                self._step_core()
            self._check_intents()
            if self.violations:
                return self.violations
        self.quiesce()
        return self.violations

    def quiesce(self, sim_s: float = 240.0) -> None:
        """No more faults: the engine answers; within a few minutes every container the
        agent stopped is running again."""
        self.faults = False
        self.disk_full = False
        if self.store is not None:
            self.store.dirty = True
        self.engine.fail_rate = 0.0
        self.compose.failing = False
        self.host, self.pressed_at = HostSample(cpu_pct=1.0, memory_pct=0.0, io_pct=0.0), None
        for cid, c in self.engine.containers.items():  # checks answer in time again: a
            self._time_out(cid, c, False)  # storm kept alive by its own heals ends
        if not self.engine.up:
            self.engine.up = True
        if not self.agent.view.synced:
            self.timers.call_later(0, self._connect)
        end = self.timers.now() + sim_s
        while self.timers.now() < end and not self.violations:
            self._step_core()
            self._check_intents()
        for cid, action in self.last.items():
            c = self.engine.containers.get(cid)
            if action.actor == "agent" and action.verb == "stop" and c and not c.running:
                self.violation(f"{cid} stopped by the agent is still down after quiescing")
        # No heal slot kept by a cycle that is over (a step that raised, say): every slot
        # held belongs to a cycle still under way, and every cycle has a way forward (a
        # timer, an effect running, a place in the queue).
        cycles = {(id(w), w.cycle.token) for w in self.agent.router.workers() if w.cycle}
        for w in self.agent.router.workers():
            c = w.cycle
            if c is not None and c.timer is None and c.in_flight is None and c.phase != "queued":
                self.violation(f"{w.service}: its heal is stuck in {c.phase}")
        for key, token in self.agent.runner._holders.items():
            if (key, token) not in cycles:
                self.violation(f"a heal slot is held by a cycle that is over (token {token})")

    def run_for(self, sim_s: float) -> None:
        """The machinery alone (no random fault) for `sim_s` of simulated time."""
        end = self.timers.now() + sim_s
        while self.timers.now() < end and not self.violations:
            self._step_core()
            self._check_intents()

    def worker(self, service: str) -> Any:
        return self.agent.router.get(service)

    def agent_actions(self, service: str, verb: str, since: float = 0.0) -> list[Action]:
        cid = self.cid(service)
        return [
            a
            for a in self.engine.actions
            if a.container_id == cid and a.actor == "agent" and a.verb == verb and a.at >= since
        ]

    # Faults, operators, reloads.

    def become_healthy(self, cid: str, started_at: float) -> None:
        c = self.engine.containers.get(cid)
        if c and c.running and c.started_at == started_at:
            self.engine.set_health(cid, "unhealthy" if getattr(c, "broken", False) else "healthy")

    def _fault(self) -> None:
        kind = self._pick(
            [
                ("unhealthy", 6),
                ("crash", 3),
                ("recover", 3),
                ("probe", 2),
                ("pause", 2),
                ("resume", 2),
                ("reset", 1),
                ("stop_by_hand", 1.5),
                ("start_by_hand", 1.5),
                ("reload", 2),
                ("outage", 0.7),
                ("flaky_engine", 1),
                ("kill", 0.6),
                ("restart", 0.4),
                ("compose_fails", 0.6),
                *([("recreate", 1.0), ("vanish", 0.5)] if "tagged" in self.policies else []),
                *([("pressure", 1.5)] if self.pressure_faults else []),
                *([("compose_down", 0.3)] if "stack" in self.policies else []),
                ("disk_full", 0.4),
                ("bug", 0.5),
                ("garbage_event", 0.3),
                ("clock_step", 0.4),
            ]
        )
        now = self.timers.now()
        service = self.rng.choice(sorted(self.policies))
        if self.policies[service].is_selector and kind != "reload":
            service = self.rng.choice(sorted(SELECTED))  # one of the selected containers
        if kind in ("recreate", "vanish") and service not in SELECTED:
            return
        self.trace.append(f"{now:.2f} {kind} {service}")
        if kind == "reload":
            self._reload(service)
            return
        if kind == "compose_down":
            self._compose_down()
            return
        if kind == "clock_step":  # NTP after a suspend, an operator's `date -s`
            self.step_clock(self.rng.choice([-3600.0, -45.0, 45.0, 3600.0]))
            return
        if kind == "garbage_event":  # an event no one can read (a proxy's, a bug's)
            self.engine.events.append(self.rng.choice(GARBAGE_EVENTS))
            return
        if kind == "bug":  # a step of a heal under way (or of a look, a keeper round) raises
            healing = [w for w in self.agent.router.workers() if w.cycle is not None]
            worker = self.rng.choice(healing) if healing else self.agent.router.get(service)
            if worker is not None:
                name = self.rng.choice(["observe", "facts", "is_ready", "may_act_now"])
                _raise_once(worker, name, self)
            return
        if kind == "disk_full":  # the state filesystem fills up, or is freed again
            self.disk_full = not self.disk_full
            if self.store is not None:
                self.store.dirty = True  # the writer tries again
            return
        cid = self.cid(service)
        c = self.engine.containers.get(cid)
        if c is None:
            return  # it vanished and is not back yet
        if kind == "pressure":  # the host gets pressed, or calm again
            pressed = self.host.cpu_pct >= 50
            self.host = HostSample(cpu_pct=1.0 if pressed else 95.0, memory_pct=0.0, io_pct=0.0)
            self.pressed_at = None if pressed else now
        elif kind == "unhealthy":
            c.broken = self.rng.random() < 0.5  # broken: stays unhealthy after a restart
            if self.pressure_faults and c.has_health:
                # Unhealthy already (by failed checks): Docker says nothing new, and the
                # agent rightly goes by the failures it was told of.
                told = c.running and c.health == "unhealthy"
                self._time_out(cid, c, self.rng.random() < 0.5, known=not told)
            self.engine.set_health(cid, "unhealthy")
        elif kind == "crash":
            side = f"side-{self.seed}".ljust(12, "0")
            if service == "stack" and side in self.engine.containers and self.rng.random() < 0.4:
                cid = side  # the stack's neighbour exits by itself
            self.engine.do_stop(cid, "world", code=1)
        elif kind == "recover":
            c.broken, c.probe_ok, c.timing_out = False, True, False
            self.engine.set_health(cid, "healthy")
        elif kind == "probe":
            c.probe_ok = not c.probe_ok
            policy = self.policies.get(service)
            if self.pressure_faults and not c.probe_ok and policy and policy.check.probe:
                self._time_out(cid, c, self.rng.random() < 0.5)  # the probe is not answered
        elif kind == "pause":
            until = self.rng.choice([None, now + 5.0, now + 30.0])
            self._command("pause", service, until)
        elif kind == "resume":
            self._command("resume", service)
        elif kind == "reset":
            self._command("reset", service)
        elif kind in ("stop_by_hand", "start_by_hand"):
            sidecar = f"sidecar-{self.seed}".ljust(12, "0")
            side = f"side-{self.seed}".ljust(12, "0")
            if service == "db" and sidecar in self.engine.containers and self.rng.random() < 0.5:
                cid = sidecar  # db's dependent, for its maintenance
            elif service == "stack" and side in self.engine.containers and self.rng.random() < 0.5:
                cid = side  # the stack's neighbour, for its maintenance
            if kind == "stop_by_hand":
                self.engine.do_stop(cid, "operator")
            else:
                self.engine.do_start(cid, "operator")
        elif kind in ("recreate", "vanish"):  # docker rm -f, then run again (now or later)
            self.engine.destroy(cid)
            if kind == "recreate":
                self._run_again(service, c)
            else:
                self.timers.world_later(self.rng.uniform(3, 20), self._run_again, service, c)
        elif kind == "outage":
            # A real engine going away stops its containers just before: a stop seen shortly
            # before an outage cannot be told from the engine's own (the agent forgets it).
            for stopped, at in self.hand_stopped_at.items():
                if now - at <= 30.0 and stopped in self.hand_stopped:
                    self.hand_stopped[stopped] = "ambiguous"
            self.engine.up = False
            self.engine.events.clear()
            with self._io():
                self.agent.view.disconnect("simulated outage")
            self.timers.world_later(self.rng.uniform(1, 15), self._engine_back)
        elif kind == "flaky_engine":
            self.engine.fail_rate = 0.0 if self.engine.fail_rate else 0.3
        elif kind == "compose_fails":  # a bad edit or a port clash comes, or is fixed
            self.compose.failing = not self.compose.failing
        elif kind == "kill":
            self.kill()
        elif kind == "restart":
            self.graceful_restart()

    def _time_out(self, cid: str, c: SimContainer, timing_out: bool, known: bool = True) -> None:
        """Its checks time out from now on (or no longer): since when, if the agent can know."""
        if not timing_out or not known:
            self.timing_since.pop(cid, None)
        elif not c.timing_out:
            self.timing_since[cid] = self.timers.now()
        c.timing_out = timing_out

    def _run_again(self, service: str, old: SimContainer) -> None:
        """A new container of the same identity (name, compose labels), under a new id."""
        self.recreated += 1
        cid = f"{service}-r{self.recreated}".ljust(12, "0")
        for stale in [c for c, s in self.owner.items() if s == service]:
            del self.owner[stale]
        self.owner[cid] = service
        self.engine.create(cid, old.name, dict(old.labels))

    def _compose_down(self, again: bool = True) -> None:
        """`docker compose down` of the stack's project: its containers stopped and removed;
        brought up again (new containers) a while later. Meanwhile nothing of it may be
        created (compose_created), whatever the agent had stopped or was healing."""
        project = [
            cid
            for cid, c in self.engine.containers.items()
            if c.labels.get("com.docker.compose.project") == "other"
        ]
        if not project:
            return  # down already
        for cid in project:
            self.engine.destroy(cid)
        if again:
            self.timers.world_later(self.rng.uniform(5, 40), self._compose_up_again)

    def _compose_up_again(self) -> None:
        """The operator's `docker compose up -d`: every service of the file, created anew."""
        for service in self.compose.files["other"]:
            labels = {"com.docker.compose.service": service, "com.docker.compose.project": "other"}
            if any(c.labels == labels for c in self.engine.containers.values()):
                continue
            self.recreated += 1
            cid = f"{service}-u{self.recreated}".ljust(12, "0")
            if service in self.owner.values():
                for stale in [c for c, s in self.owner.items() if s == service]:
                    del self.owner[stale]
                self.owner[cid] = service
            self.engine.create(cid, f"other-{service}-1", labels)
            if service == "init":  # the one-shot runs, and is done
                self.timers.world_later(1.0, self._exits, cid)

    def _exits(self, cid: str) -> None:
        if cid in self.engine.containers:
            self.engine.do_stop(cid, "world", code=0)

    def _engine_back(self) -> None:
        self.engine.up = True
        self.timers.call_later(0.1, self._connect)

    def _command(self, action: str, service: str, until: float | None = None) -> None:
        taker = self.agent.router.get(service)

        def done(refused: str | None = None) -> None:
            now = self.timers.now()
            if refused is not None:
                self.refused += 1
                return  # the operator was told no: nothing to expect of it
            if self.agent.router.get(service) is not taker:
                return  # removed (and perhaps added anew) before it took effect: not held
            if action == "pause":
                self.held[service] = until if until is not None else float("inf")
            elif action == "resume":
                self.held.pop(service, None)
            else:
                self.reset_at[service] = now

        # What weakens a hold or the budget may take effect before it returns; what makes a
        # hold, only after.
        if action == "resume":
            self.held.pop(service, None)
        elif action == "reset":
            self.reset_at[service] = self.timers.now()
        elif action == "pause" and service in self.held:
            self.held[service] = min(self.held[service], until or float("inf"))
        # The operator's `--for` is read on the wall clock (the world keeps its own time).
        wall_until = None if until is None else until + self.wall_offset
        for_s = None if until is None else until - self.timers.now()
        self.agent.apply_command(Command(action, service, wall_until, for_s), done)

    def _reload(self, service: str) -> None:
        roll = self.rng.random()
        policies = dict(self.in_force)
        errors: list[PolicyError] = []
        if roll < 0.3 and service in policies:  # changed
            old = policies[service]
            heal = replace(old.heal, max_restarts=2 if old.heal.max_restarts == 3 else 3)
            policies[service] = replace(old, heal=heal)
        elif roll < 0.5 and service in policies and service != "db":  # removed
            del policies[service]
        elif roll < 0.7:  # added back
            policies[service] = self.policies[service]
        elif roll < 0.85 and service in policies:  # its file broken: the last good one stays
            del policies[service]
            errors.append(PolicyError(str(POLICY_DIR / f"{service}.yaml"), 3, "heal", "broken"))
        else:  # the directory cannot be used: everything stays
            result = LoadResult([], [PolicyError(str(POLICY_DIR), None, None, "writable")])
            self.agent.reload(result, POLICY_DIR)
            return
        self.agent.reload(LoadResult(list(policies.values()), errors), POLICY_DIR)
        kept = {**self.agent._singles, **self.agent._selectors}
        for gone in sorted(set(self.in_force) - set(kept)):
            self.removed.add(gone)
            self.held.pop(gone, None)
        for back in sorted(set(kept) - set(self.in_force)):
            self.removed.discard(back)
            self.stops.pop(back, None)  # a new worker: a new budget
        self.in_force = {s: policies.get(s, kept[s]) for s in kept}

    # Invariants.

    def violation(self, text: str) -> None:
        self.violations.append(f"t={self.timers.now() - 1_800_000_000.0:.2f}: {text}")

    def before_action(self, action: Action) -> None:
        """Every container state change, by anyone, just before it happens."""
        cid, service = action.container_id, self.owner.get(action.container_id)
        previous = self.last.get(cid)
        self.last[cid] = action
        if action.verb == "start" and cid in self.down_told:  # by anyone: back
            self.down_told.discard(cid)
            self.returned_at[cid] = action.at
        if action.actor == "operator" and action.verb == "stop":
            during_own = action.at - self.agent_stop_at.get(cid, float("-inf")) < OWN_STOP_S
            self.hand_stopped[cid] = "ambiguous" if during_own else "pending"
            self.hand_stopped_at[cid] = action.at
        elif action.actor == "operator":
            self.hand_stopped.pop(cid, None)
        if action.actor != "agent":
            return
        c = self.engine.containers[cid]
        project = c.labels.get("com.docker.compose.project")
        if action.verb == "stop" and project:
            # The agent's own stop of the project was under way: a stop by hand of one of
            # its containers at that instant looks just like the agent's.
            for other, at in self.hand_stopped_at.items():
                mate = self.engine.containers.get(other)
                if (
                    mate is not None
                    and mate.labels.get("com.docker.compose.project") == project
                    and action.at - at < 1.0
                    and other in self.hand_stopped
                ):
                    self.hand_stopped[other] = "ambiguous"
        if any(key.startswith(SWARM_PREFIX) for key in c.labels):
            self.violation(f"{action.verb} of {c.name}, a Swarm task")
        if c.labels.get("com.docker.compose.oneoff") == "True":
            self.violation(f"{action.verb} of {c.name}, a compose run one-off")
        if action.verb == "start" and self.hand_stopped.get(cid) == "seen":
            self.violation(f"started {c.name}, which an operator stopped by hand")
        # A stop by hand no one could tell from the agent's own (see hand_stopped), or that
        # the agent never heard of, made while one of its heals was under way: the engine's
        # record cannot tell it from a crash that heal caused.
        heal_at = max(
            (at for other, at in self.agent_stop_at.items() if other != cid), default=-math.inf
        )
        ambiguous = self.hand_stopped.get(cid) == "ambiguous" or (
            self.hand_stopped.get(cid) == "pending"
            and 0 <= self.hand_stopped_at[cid] - heal_at < 30.0
        )
        if action.verb == "start":  # running again: that stop by hand is over
            self.hand_stopped.pop(cid, None)
        now = action.at
        # The agent's own stop, or one that came within the engine's stamps' resolution (a
        # microsecond) of the agent's attempt: the engine's record cannot tell them apart.
        own_restart = (
            previous is not None
            and previous.verb == "stop"
            and (
                previous.actor == "agent"
                or abs(previous.at - self.agent_stop_at.get(cid, -math.inf)) <= 2e-6
            )
        )
        if action.verb == "start" and not own_restart:
            if service is None and not ambiguous:
                # A neighbour or dependent (no service of its own): only what the agent's
                # own stop took down is its to start, never one that exited by itself (a
                # one-shot done, a crash) or that an operator stopped.
                self.violation(f"started {c.name}, which the agent had not stopped")
            if self.agent.view.is_manual_stop(cid):
                self.violation(f"started {cid}, which an operator stopped by hand")
            blocked = self._blocked(service, now) if service else None
            if blocked == "held" or (blocked and not self._restarted_as_dependent(c, now)):
                self.violation(f"started {service}, which is {blocked}")
            return
        if action.verb != "stop":
            return
        if service is None:
            stack = self.agent.router.get("stack")
            project = self.engine.containers[cid].labels.get("com.docker.compose.project")
            if project == "other" and stack is not None and stack.policy.heal.scope == "compose":
                self.violation(f"a heal of one compose service stopped its neighbour {cid}")
            return
        needed = self._needed_down(c, now)
        if needed:
            self.violation(f"stopped {service} while {needed}, which it needs")
        if self._restarted_as_dependent(c, now):
            # Another service's heal (dependents: restart) restarts what needs it: that
            # policy's doing, whatever c's own; only a hold of c's own stops it.
            if self.held.get(service, 0.0) > now:
                self.violation(f"restarted {service} as a dependent, which is held")
            return
        blocked = self._blocked(service, now)
        if blocked:
            self.violation(f"stopped {service}, which is {blocked}")
        worker = self.agent.router.get(service)
        if worker is not None:
            heal = worker.policy.heal
            # A give-up ends when something the service needs is back from being down.
            back = max((self.returned_at.get(n, 0.0) for n in self._needed(c)), default=0.0)
            since = max(now - heal.window_s, self.reset_at.get(service, 0.0), back)
            recent = [t for t in self.stops.get(service, []) if t > since]
            if len(recent) + 1 > heal.max_restarts:
                self.violation(
                    f"{service}: restart {len(recent) + 1} within {heal.window_s:g}s "
                    f"(max_restarts {heal.max_restarts})"
                )
        self.stops.setdefault(service, []).append(now)
        cycling = [
            w.service
            for w in self.agent.router.workers()
            if w.cycle is not None and w.cycle.phase not in PRE_STOP
        ]
        if len(cycling) > CONCURRENCY or self.agent.runner.active > CONCURRENCY:
            self.violation(f"more than {CONCURRENCY} cycles at once: {cycling}")

    def compose_created(self, project: str, service: str) -> None:
        """`compose up` made a container: only ever of a project and service the operator
        runs (a heal in the wrong project makes a second stack on fresh volumes)."""
        if not any(
            c.labels.get("com.docker.compose.project") == project
            and c.labels.get("com.docker.compose.service") == service
            for c in self.engine.containers.values()
        ):
            self.violation(f"compose created {project}-{service}: a stack nobody runs")

    def agent_stopping(self, cid: str) -> None:
        """The agent tries to stop this container (down already or not, reaching the engine
        or failing half-done): a stop by hand of it around then cannot be told from the
        agent's, whose own stop may take seconds."""
        now = self.timers.now()
        self.agent_stop_at[cid] = now
        at = self.hand_stopped_at.get(cid)
        if at is not None and now - at < 1.0 and cid in self.hand_stopped:
            self.hand_stopped[cid] = "ambiguous"

    def removed_by_stop(self, cid: str, actor: str) -> None:
        """The engine removed a `--rm` container as it stopped: never by the agent's doing."""
        if actor == "agent":
            self.violation(f"stopped {self.engine.containers[cid].name} (--rm): removed")

    def stopped_within(self, cid: str, given_s: int, killed: bool) -> None:
        """The engine's record of an agent's stop: no SIGKILL before the container's own
        stop timeout, unless the operator's policy for that very container asked for less."""
        service, c = self.owner.get(cid), self.engine.containers[cid]
        policy = self.in_force.get(service) if service else None
        if policy is None and service in SELECTED:
            policy = self.in_force.get("tagged")
        asked = policy.heal.stop_timeout_s if policy is not None else None
        if asked is not None and given_s == math.ceil(asked):
            return
        if killed and given_s < c.contract_s():
            self.violation(f"SIGKILLed {c.name} after {given_s}s; it asked for {c.contract_s()}s")

    def _needed(self, c: SimContainer) -> list[str]:
        """The containers `c` needs by its own configuration (its depends_on label)."""
        project = c.labels.get("com.docker.compose.project")
        wanted = {
            i.split(":")[0]
            for i in c.labels.get("com.docker.compose.depends_on", "").split(",")
            if i
        }
        return [
            cid
            for cid, other in self.engine.containers.items()
            if other.labels.get("com.docker.compose.project") == project
            and other.labels.get("com.docker.compose.service") in wanted
        ]

    def _restarted_as_dependent(self, c: SimContainer, now: float) -> bool:
        """Whether the agent took down a container `c` needs just before (its heal's last
        step restarts what depends on it)."""
        return any(now - self.agent_stop_at.get(cid, -math.inf) < 30.0 for cid in self._needed(c))

    def _needed_down(self, c: SimContainer, now: float) -> str | None:
        """What `c` needs by its own configuration (its depends_on label) that is down, the
        agent told so, or held: a heal of `c` cannot help meanwhile."""
        for cid in self._needed(c):
            other = self.engine.containers[cid]
            if not other.running and cid in self.down_told:
                return f"{other.name} is down"
            if self.held.get(self.owner.get(cid, ""), 0.0) > now:
                return f"{other.name} is held"
        return None

    def _blocked(self, service: str, now: float) -> str | None:
        if service in self.removed:
            return "no longer supervised"
        if self.held.get(service, 0.0) > now:
            return "held"
        return None

    def _check_intents(self) -> None:
        """Every container the agent stopped is started again or recorded, on disk, to be."""
        recorded = {i.get("container_id") for i in self.disk.intents}
        composed = {i.get("service") for i in self.disk.intents if i.get("kind") == "compose"}
        for cid, action in self.last.items():
            c = self.engine.containers.get(cid)
            if action.actor != "agent" or action.verb != "stop" or c is None or c.running:
                continue
            if cid not in recorded and self.owner.get(cid) not in composed:
                self.violation(f"{cid} was stopped by the agent with no intent on disk")

    def _check_deferral(self, worker: Any, decided: int) -> None:
        """No heal is decided for a service whose checks (Docker's or the agent's probe)
        the world makes time out and last told the agent so (an event, a probe's answer), on
        a host the world has pressed for longer than the agent takes to read it, until
        MAX_DEFER_S after they began to time out."""
        if len(self.log.events("heal.started")) == decided or self.pressed_at is None:
            return
        now = self.timers.now()
        if now - max(self.pressed_at, self.booted_at) < PRESSURE_S + 0.5:
            return  # not read yet (by this agent): it cannot know
        cid = next((c for c, s in self.owner.items() if s == worker.service), None)
        c = self.engine.containers.get(cid) if cid else None
        if c is None or not c.running or not c.timing_out or cid not in self.timeout_told:
            return
        began = self.timing_since.get(cid)
        if began is None or now - began >= self.max_defer_s:
            return  # deferred as long as it may be: healed now, pressure or not
        health_timed_out = c.has_health and c.health == "unhealthy"
        probe = worker.policy.check.probe is not None and not c.probe_ok
        if health_timed_out or (probe and c.health != "unhealthy"):
            self.violation(f"{worker.service}: heal decided on a timeout under host pressure")

    def _check_outcome_saved(self, line: dict[str, Any]) -> None:
        """A heal's outcome is on the disk `status` reads by the time its line is said."""
        if line.get("event") not in ("heal.recovered", "heal.failed"):
            return
        if self.disk_full:
            return  # said after a write that failed (and said so): nothing could be saved
        if self.bug_at == self.timers.now():
            return  # the row could not be built (the world broke it): said, never lost
        service = line["service"]
        row = self.disk.services.get(service)
        removed = service in self.removed or (
            service not in self.in_force and service not in SELECTED
        )
        if row is None or removed:
            return  # its policy was removed (or its container forgotten): no row to write
        want = ("recovered" if line["event"] == "heal.recovered" else "failed", line["attempt"])
        heal = row.get("last_heal") or {}
        if (heal.get("result"), heal.get("attempt")) != want:
            self.violation(f"{line['service']}: said {want} while the disk holds {heal or None}")

    def _check_row(self, worker: Any) -> None:
        """What the agent shows is what `docker-supervisor status` computes from the saved
        memory with the same gate (where the command can know as much), at the instant the
        agent built the row (a countdown such as "held for 4s" is as of then)."""
        from supervisor.cli.status import _status_row

        if worker.seen is None or not worker.supervised or worker.retired:
            return
        if self.agent.router.get(worker.service) is not worker:
            return
        if self.agent.health.settling(self.wall()) or self.agent._stopping:
            return
        if self.timers.now() < self.grace_unknown_until + worker.policy.check.grace_s:
            return  # a start before a step may be in its grace still: `status` cannot know
        row = self.agent.board.row(worker.service)
        if not row or worker.service not in self.row_at:
            return
        cli = _status_row(worker.policy, worker.seen, row, self.row_at[worker.service], 1)
        mine = {k: row.get(k) for k in ("status", "reason", "next_action")}
        theirs = {k: cli.get(k) for k in ("status", "reason", "next_action")}
        if mine != theirs:
            self.violation(f"{worker.service}: the agent shows {mine}, status says {theirs}")


# Events no one can read: not an object, an Actor that is not one, a time that is no number.
GARBAGE_EVENTS = [
    ["not", "an", "object"],
    {"Type": "container", "id": "x", "Action": "die", "Actor": "x"},
    {"Type": "container", "id": "x", "Action": "die", "time": "soon"},
]


def _raise_once(worker: Any, name: str, world: World) -> None:
    """The worker's next call of `name` raises, as a bug would; later calls are as ever."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        worker.__dict__.pop(name, None)
        world.bug_at = world.timers.now()
        raise RuntimeError(f"simulated bug in {name}")

    setattr(worker, name, broken)


class _Captured(logging.Handler):
    """Every log line of the core, as the JSON line's fields; each is checked as it is said."""

    def __init__(self, check: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, Any]] = []
        self.check = check

    def emit(self, record: logging.LogRecord) -> None:
        fields = {
            k: v
            for k, v in record.__dict__.items()
            if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__
        }
        self.lines.append(fields)
        self.check(fields)

    def events(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("event") == event and all(line.get(k) == v for k, v in match.items())
        ]
