"""Benchmark a Docker supervisor on the real engine: reaction, recovery, floor and footprint.

Every time comes from Docker's own events (timeNano), so any supervisor can be measured the
same way: pass its command line with --agent-cmd ({policies} and {state_dir} are filled in).

- reaction: a container's `health_status: unhealthy` event -> the supervisor's first `kill`
  or `stop` event on it;
- recovery (MTTR): `health_status: unhealthy` -> the next `health_status: healthy`;
- floor: the same recovery done by this harness itself (API stop, pause, start, wait for the
  healthy event), so MTTR can be read as a ratio to the floor;
- footprint: the supervisor's CPU seconds per minute and peak RSS (psutil, children included)
  while it supervises idle containers, and, for docker-supervisor, the engine API calls it
  makes per minute (its own count, written to its state file on SIGUSR1).

Run it as root next to an engine, after `make images`:

    .venv/bin/python bench/reaction.py                  # 20 containers, 10 failures, 200 idle
    .venv/bin/python bench/reaction.py --agent-cmd 'OTHER-TOOL --policies {policies}'

It is a benchmark, not a test: it prints a table and asserts nothing. It removes every
container it creates (label docker-supervisor.bench).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import docker
import psutil
from harness import (
    DEFAULT_AGENT,
    SECOND_NS,
    Agent,
    EventLog,
    client_with_image,
    make_containers,
    wait_healthy,
    write_policies,
)


def inject(container) -> None:
    container.exec_run(["rm", "-f", "/tmp/healthy"])


def measure_agent(
    client, events: EventLog, containers, failures: int
) -> tuple[list, list, list[tuple[str, int, int]]]:
    reactions, recoveries, marks = [], [], []
    for i in range(failures):
        c = containers[i % len(containers)]
        mark = time.time_ns()
        inject(c)
        bad = events.wait(c.id, "health_status: unhealthy", mark, 30)
        good = events.wait(c.id, "health_status: healthy", bad["timeNano"], 90)
        acted = events.first(c.id, {"kill", "stop"}, bad["timeNano"])
        if acted is not None:
            reactions.append((acted["timeNano"] - bad["timeNano"]) / 1e9)
            marks.append((c.name, bad["timeNano"], acted["timeNano"]))
        recoveries.append((good["timeNano"] - bad["timeNano"]) / 1e9)
    return reactions, recoveries, marks


def stages(agent: Agent, marks: list[tuple[str, int, int]]) -> dict[str, list[float]]:
    """Where docker-supervisor's reaction goes, from its own log: the unhealthy event to its
    decision (`heal.started`: the event read, the container inspected, the worker's look),
    to the cycle's stop asked for (`heal.stopping`), to the engine's kill (the effects
    pool, the intent written to the state file, the API call)."""
    found: dict[str, list[float]] = {"event -> decision": [], "decision -> stopping": []}
    found["stopping -> kill"] = []
    for name, bad_ns, kill_ns in marks:
        started = [
            line
            for line in agent.lines("heal.started", container=name)
            if _ns(line) >= bad_ns - SECOND_NS
        ]
        stopping = [
            line
            for line in agent.lines("heal.stopping", container=name)
            if _ns(line) >= bad_ns - SECOND_NS
        ]
        if not started or not stopping:
            continue
        decided, asked = _ns(started[0]), _ns(stopping[0])
        found["event -> decision"].append((decided - bad_ns) / 1e9)
        found["decision -> stopping"].append((asked - decided) / 1e9)
        found["stopping -> kill"].append((kill_ns - asked) / 1e9)
    return found


def _ns(line: dict) -> int:
    at = datetime.fromisoformat(line["timestamp"])
    return int(at.timestamp()) * SECOND_NS + at.microsecond * 1000


def measure_floor(
    client, events: EventLog, containers, failures: int, pause_s: float
) -> tuple[list, list]:
    """The same recovery done by hand: react to the event, stop, pause, start, wait healthy."""
    reactions, recoveries = [], []
    for i in range(failures):
        c = containers[i % len(containers)]
        mark = time.time_ns()
        inject(c)
        bad = events.wait(c.id, "health_status: unhealthy", mark, 30)
        client.api.stop(c.id, timeout=5)
        time.sleep(pause_s)
        client.api.start(c.id)
        good = events.wait(c.id, "health_status: healthy", bad["timeNano"], 90)
        acted = events.first(c.id, {"kill", "stop"}, bad["timeNano"])
        if acted is not None:
            reactions.append((acted["timeNano"] - bad["timeNano"]) / 1e9)
        recoveries.append((good["timeNano"] - bad["timeNano"]) / 1e9)
    return reactions, recoveries


def measure_footprint(template: str, policies: Path, state_dir: Path, seconds: float) -> dict:
    agent = Agent(template, policies, state_dir)
    try:
        time.sleep(5)  # start-up: the first listing and the first checks
        cpu0, calls0, t0 = agent.cpu_s(), agent.api_calls(), time.monotonic()
        peak = agent.rss_bytes()
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            peak = max(peak, agent.rss_bytes())
        elapsed_min = (time.monotonic() - t0) / 60
        cpu1, calls1 = agent.cpu_s(), agent.api_calls()
    finally:
        agent.stop()
    return {
        "cpu_s_per_min": (cpu1 - cpu0) / elapsed_min,
        "peak_rss_mb": peak / 2**20,
        "api_calls_per_min": None
        if calls0 is None or calls1 is None
        else (calls1 - calls0) / elapsed_min,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def row(name: str, values: list[float], unit: str, scale: float = 1.0) -> str:
    if not values:
        return f"| {name} | - | - | - | {unit} | 0 |"
    v = [x * scale for x in values]
    return (
        f"| {name} | {statistics.median(v):.3f} | {percentile(v, 95):.3f} | {max(v):.3f} "
        f"| {unit} | {len(v)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-cmd", default=DEFAULT_AGENT)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--failures", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between stop and start")
    parser.add_argument("--idle", type=int, default=200, help="containers for the footprint")
    parser.add_argument(
        "--idle-policies",
        default="20,200",
        help="policy counts to measure the footprint at (comma-separated)",
    )
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--skip-footprint", action="store_true")
    args = parser.parse_args()

    client = client_with_image(120)
    if client is None:
        return 2
    run_id = f"{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="supervisor-bench-"))
    events = EventLog(client, run_id)
    created = []
    try:
        containers = make_containers(client, run_id, args.containers, 1.0, "c")
        created += containers
        wait_healthy(client, containers)
        write_policies(work / "policies", containers, args.pause, "60s")
        log = work / "agent.log"
        agent = Agent(args.agent_cmd, work / "policies", work / "state", log=log)
        time.sleep(3)
        try:
            reactions, recoveries, marks = measure_agent(client, events, containers, args.failures)
        finally:
            agent.stop()
        where = stages(agent, marks)
        wait_healthy(client, containers)
        floor_reactions, floor = measure_floor(
            client, events, containers, args.failures, args.pause
        )

        footprint = {}
        if not args.skip_footprint:
            for c in containers:
                c.remove(force=True)
            created = []
            idle = make_containers(client, run_id, args.idle, 30.0, "i")
            created += idle
            wait_healthy(client, idle, timeout_s=300)
            for count in [int(x) for x in args.idle_policies.split(",")]:
                directory = work / f"idle-{count}"
                write_policies(directory, idle[:count], args.pause, "10s")
                footprint[count] = measure_footprint(
                    args.agent_cmd, directory, work / f"state-{count}", args.idle_seconds
                )
    finally:
        events.close()
        for c in created:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)

    cpu = psutil.cpu_count()
    print(
        f"\nmachine: {cpu} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"engine {client.version()['Version']}; agent: {args.agent_cmd}"
    )
    print(
        f"{args.containers} supervised containers, {args.failures} injected failures, "
        f"pause {args.pause}s, health interval 1s\n"
    )
    print("| figure | p50 | p95 | max | unit | n |")
    print("|---|---|---|---|---|---|")
    print(row("reaction (unhealthy -> first kill/stop)", reactions, "ms", 1000))
    print(row("recovery, MTTR (unhealthy -> healthy)", recoveries, "s"))
    print(row("floor reaction (the harness itself)", floor_reactions, "ms", 1000))
    print(row("floor recovery (same cycle by hand)", floor, "s"))
    if reactions and floor_reactions:
        ratio = statistics.median(reactions) / statistics.median(floor_reactions)
        print(f"| reaction / floor reaction (medians) | {ratio:.3f} | | | ratio | |")
    if recoveries and floor:
        ratio = statistics.median(recoveries) / statistics.median(floor)
        print(f"| MTTR / floor (medians) | {ratio:.3f} | | | ratio | |")
    for stage, values in where.items():
        print(row(f"reaction, {stage} (from the agent's log)", values, "ms", 1000))
    for count, f in footprint.items():
        calls = "n/a" if f["api_calls_per_min"] is None else f"{f['api_calls_per_min']:.1f}"
        print(
            f"| footprint, {args.idle} idle containers, {count} policies: "
            f"CPU {f['cpu_s_per_min']:.3f} s/min ({f['cpu_s_per_min'] / 60 * 100:.2f} % of a "
            f"core), peak RSS {f['peak_rss_mb']:.1f} MB, API calls {calls}/min | | | | | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
