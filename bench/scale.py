"""Benchmark the agent at scale: 50 to 500 containers, each with its own policy.

For each size N (N containers, N policies), on the real engine:

- READY: from the agent's start to its `agent.ready` line;
- idle: the agent's CPU seconds per minute and engine API calls per minute (its own count,
  from its state file on SIGUSR1) over a quiet minute, then the same with a tenth of the
  policies: the calls must not follow the policies;
- peak RSS: the agent's high-water mark (VmHWM) over the whole run, incident and burst
  included;
- burst: 5,000 container events (`docker kill -s WINCH`, which the containers ignore, over
  every supervised container), the agent's CPU while it handles them, and the lag of the last
  event: a stop by hand sent right after the burst, from Docker's `kill` event to the agent's
  `service.status` line about it;
- incident: a fifth of the containers turn unhealthy at once (one file on the host, newer than
  their own start, makes their health check fail until they are started again) and are
  healed; the total, from the break to the last `healthy` event, against the floor: the same
  stop, pause, start cycles done by this harness with the same concurrency, each begun the
  moment the container's `unhealthy` event arrives.

The health checks are as light as this 2-core machine allows (each one is an exec; 18 a
second kept the CPU's PSI near 90 %): every 120 s, and every 20 s for the containers an
incident breaks. At 500 they and the heals still press the CPU past the guard's 60 %, so the
agent heals at most half its ceiling at once: the incident's "at once" says how many it ran
side by side on average, while the floor keeps the ceiling. Run as root beside an engine,
after `make images`:

    .venv/bin/python bench/scale.py                       # 50 and 500
    .venv/bin/python bench/scale.py --sizes 50 200 500 --json /tmp/scale.json
    .venv/bin/python bench/scale.py --sizes 500 --skip-incident   # no incident, no floor

It is a benchmark, not a test: it prints a table and asserts nothing, and removes every
container it creates (label docker-supervisor.bench; they have no volumes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import psutil
from harness import (
    DEFAULT_AGENT,
    HEALTHY_CMD,
    IMAGE,
    LABEL,
    SECOND_NS,
    Agent,
    EventLog,
    client_with_image,
    write_policies,
)

INCIDENT_GROUP = "docker-supervisor.bench.incident"
PAUSE_S = 1.0
MARKER = "/shared/broken"  # newer than the container's own /tmp/healthy: unhealthy


def ts(line: dict) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


def check(interval_s: float) -> dict:
    # Healthy while the marker is absent or older than this start's /tmp/healthy.
    return {
        "test": ["CMD", "test", "!", MARKER, "-nt", "/tmp/healthy"],
        "interval": int(interval_s * SECOND_NS),
        "timeout": 2 * SECOND_NS,
        "retries": 1,
    }


def create(client, run_id: str, count: int, shared: Path, args) -> list:
    """`count` containers, the first fifth of them in the incident group; in parallel."""
    breakable = max(1, count // 5)

    def one(i: int):
        group = i < breakable
        return client.containers.run(
            IMAGE,
            HEALTHY_CMD,
            name=f"bench-{run_id}-s{i:03d}",
            detach=True,
            init=True,
            labels={LABEL: run_id, **({INCIDENT_GROUP: "1"} if group else {})},
            healthcheck=check(args.incident_interval if group else args.health_interval),
            volumes={str(shared): {"bind": "/shared", "mode": "ro"}} if group else None,
        )

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def wait_all_healthy(client, run_id: str, count: int, timeout_s: float) -> None:
    """One listing per poll (a health filter), not one inspect per container."""
    deadline = time.monotonic() + timeout_s
    while True:
        healthy = client.containers.list(
            filters={"label": f"{LABEL}={run_id}", "health": "healthy"}, sparse=True
        )
        if len(healthy) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count - len(healthy)} of {count} containers not healthy")
        time.sleep(1)


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_agent(policies: Path, state: Path, log: Path, *extra: str) -> tuple[Agent, float]:
    began = time.time()
    agent = Agent(DEFAULT_AGENT, policies, state, *extra, log=log)
    ready = agent.wait_event("agent.ready", timeout_s=120)
    return agent, ts(ready) - began


def idle(agent: Agent, seconds: float) -> dict:
    time.sleep(10)  # past READY: the first ticks and the first saves
    cpu0, calls0, t0 = agent.cpu_s(), agent.api_calls(), time.monotonic()
    time.sleep(seconds)
    minutes = (time.monotonic() - t0) / 60
    cpu1, calls1 = agent.cpu_s(), agent.api_calls()
    return {
        "cpu_s_per_min": round((cpu1 - cpu0) / minutes, 3),
        "api_calls_per_min": None
        if calls0 is None or calls1 is None
        else round((calls1 - calls0) / minutes, 1),
    }


def burst(client, agent: Agent, events: EventLog, containers: list, count: int) -> dict:
    """`count` kill events (WINCH: ignored), then a stop by hand of one container whose
    `service.status` line gives the lag of the last event."""
    marker = containers[-1]
    service = marker.name.rsplit("-", 1)[-1]
    targets = [c.id for c in containers if c.id != marker.id]
    seen_before = len(agent.lines("service.status", service=service))
    cpu0, began = agent.cpu_s(), time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.api.kill(targets[i % len(targets)], "WINCH"), range(count)))
    sent_s = time.monotonic() - began
    after_ns = time.time_ns() - SECOND_NS
    client.api.stop(marker.id, timeout=5)
    kill = events.wait(marker.id, "kill", after_ns, 30)
    line = agent.wait_event("service.status", timeout_s=120, after=seen_before, service=service)
    cpu1 = agent.cpu_s()
    client.api.start(marker.id)
    return {
        "events": count,
        "sent_s": round(sent_s, 1),
        "agent_cpu_s": round(cpu1 - cpu0, 2),
        "last_event_lag_ms": round((ts(line) - kill["timeNano"] / 1e9) * 1000, 1),
        "status_seen": line.get("reason"),
    }


def break_group(shared: Path) -> int:
    """Touch the marker: every container of the group fails its next check."""
    time.sleep(0.05)  # the marker must be strictly newer than a start in the same tick
    (shared / "broken").touch()
    return time.time_ns()


def healed_total(
    events: EventLog, group: list, broke_ns: int, timeout_s: float
) -> tuple[float, float]:
    """Seconds from the break to the last container's first `healthy` after a `start`; and
    the median, over the containers, from its own `unhealthy` to that `healthy` (which the
    phase of its checks, the moment each one sees the break, does not move)."""
    last, each = 0, []
    for c in group:
        start = events.wait(c.id, "start", broke_ns, timeout_s)
        healthy = events.wait(c.id, "health_status: healthy", start["timeNano"], timeout_s)
        bad = events.wait(c.id, "health_status: unhealthy", broke_ns, timeout_s)
        last = max(last, healthy["timeNano"])
        each.append((healthy["timeNano"] - bad["timeNano"]) / 1e9)
    return (last - broke_ns) / 1e9, statistics.median(each)


def incident_by_agent(agent: Agent, events: EventLog, group: list, shared: Path) -> dict:
    stops_before = len(agent.lines("heal.stopping"))
    broke_ns = break_group(shared)
    total, each = healed_total(events, group, broke_ns, 900)
    heals = agent.lines("heal.stopping")[stops_before:]
    spans = []
    for line in heals:
        done = agent.lines("heal.recovered", service=line["service"])
        after = [ts(d) for d in done if ts(d) >= ts(line)]
        if after:
            spans.append((ts(line), after[0]))
    overlap = max((sum(1 for b, e in spans if b <= t < e) for t, _ in spans), default=0)
    # Under host pressure the agent heals at most half its ceiling at once: the mean says
    # how many cycles it actually ran side by side.
    busy = max((e for _, e in spans), default=0) - min((b for b, _ in spans), default=0)
    return {
        "broken": len(group),
        "total_s": round(total, 1),
        "recovery_median_s": round(each, 1),
        "heals": len(heals),
        "most_at_once": overlap,
        "mean_at_once": round(sum(e - b for b, e in spans) / busy, 1) if busy else 0,
        "pressure": [
            {"why": p.get("why"), "cpu_pct": p.get("cpu_pct")}
            for p in agent.lines("pressure.started")
            if ts(p) >= broke_ns / 1e9
        ],
    }


def incident_floor(
    client, events: EventLog, group: list, shared: Path, limit: int
) -> tuple[float, float]:
    """The same cycles by the harness: `limit` workers, each cycle begun on the `unhealthy`
    event (stop with the policy's 5 s, the same pause, start, wait for `healthy`)."""
    ids = {c.id for c in group}
    todo: queue.Queue = queue.Queue()
    broke_ns = break_group(shared)

    def watch() -> None:
        seen: set[str] = set()
        while len(seen) < len(ids):
            for event in list(events.events):
                cid = event["id"]
                if (
                    cid in ids
                    and cid not in seen
                    and event["Action"] == "health_status: unhealthy"
                    and event["timeNano"] > broke_ns
                ):
                    seen.add(cid)
                    todo.put(cid)
            time.sleep(0.01)

    def work() -> None:
        while True:
            try:
                cid = todo.get(timeout=30)
            except queue.Empty:
                return
            client.api.stop(cid, timeout=5)
            time.sleep(PAUSE_S)
            started = time.time_ns()
            client.api.start(cid)
            events.wait(cid, "health_status: healthy", started, 120)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(limit) as pool:
        for _ in range(limit):
            pool.submit(work)
    return healed_total(events, group, broke_ns, 900)


def run_size(client, size: int, args, work: Path) -> dict:
    run_id = f"{os.getpid()}-{size}"
    shared = work / f"shared-{size}"
    shared.mkdir()
    events = EventLog(client, run_id)
    result: dict = {"containers": size, "policies": size}
    try:
        made = time.monotonic()
        containers = create(client, run_id, size, shared, args)
        wait_all_healthy(client, run_id, size, 600)
        result["setup_s"] = round(time.monotonic() - made, 1)
        group = [c for c in containers if INCIDENT_GROUP in c.labels]

        policies = work / f"policies-{size}"
        write_policies(policies, containers, PAUSE_S, "10s")
        extra = ("--heal-concurrency", str(args.heal_concurrency))
        agent, result["ready_s"] = start_agent(
            policies, work / f"state-{size}", work / f"agent-{size}.log", *extra
        )
        try:
            result.update({f"idle_{k}": v for k, v in idle(agent, args.idle_s).items()})
            result["burst"] = burst(client, agent, events, containers, args.burst)
            if not args.skip_incident:
                wait_all_healthy(client, run_id, size, 300)
                result["incident"] = incident_by_agent(agent, events, group, shared)
            result["peak_rss_mb"] = round(vm_hwm_mb(agent.proc.pid), 1)
        finally:
            agent.stop()

        tenth = max(1, size // 10)
        few = work / f"policies-{size}-tenth"
        write_policies(few, containers[-tenth:], PAUSE_S, "10s")
        agent, ready_s = start_agent(
            few, work / f"state-{size}-tenth", work / f"agent-{size}-tenth.log"
        )
        try:
            quiet = idle(agent, args.idle_s)
        finally:
            agent.stop()
        result["tenth"] = {"policies": tenth, "ready_s": round(ready_s, 2), **quiet}

        if not args.skip_incident:
            wait_all_healthy(client, run_id, size, 300)
            incident = result["incident"]
            floor, each = incident_floor(client, events, group, shared, args.heal_concurrency)
            incident["floor_s"], incident["floor_recovery_median_s"] = round(floor, 1), each
            incident["ratio"] = round(incident["total_s"] / incident["floor_s"], 3)
            incident["recovery_ratio"] = round(incident["recovery_median_s"] / each, 3)
        result["ready_s"] = round(result["ready_s"], 2)
    finally:
        events.close()
        with ThreadPoolExecutor(8) as pool:
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}):
                pool.submit(c.remove, force=True)
    return result


def table(results: list[dict]) -> str:
    rows = [
        "| containers = policies | READY | idle CPU | peak RSS | API calls | API calls, a tenth "
        "of the policies | burst: agent CPU, last event's lag | incident: all healed, floor, "
        "ratio; median recovery, floor, ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b, i, t = r["burst"], r.get("incident"), r["tenth"]
        healed = "not run"
        if i:
            healed = (
                f"{i['broken']}: {i['total_s']} s ({i['mean_at_once']} at once), "
                f"{i['floor_s']} s, {i['ratio']:.2f}; {i['recovery_median_s']} s, "
                f"{i['floor_recovery_median_s']:.1f} s, {i['recovery_ratio']:.2f}"
            )
        cpu = r["idle_cpu_s_per_min"]
        rows.append(
            f"| {r['containers']} | {r['ready_s']:.2f} s | {cpu:.3f} s/min ({cpu / 60 * 100:.2f} "
            f"% of a core) | {r['peak_rss_mb']:.1f} MB | {r['idle_api_calls_per_min']}/min | "
            f"{t['api_calls_per_min']}/min ({t['policies']}) | {b['events']} events: "
            f"{b['agent_cpu_s']} s, {b['last_event_lag_ms']:.0f} ms | {healed} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--idle-s", type=float, default=60, help="the quiet minute's length")
    parser.add_argument("--burst", type=int, default=5000, help="events in the burst")
    parser.add_argument("--heal-concurrency", type=int, default=10)
    parser.add_argument("--health-interval", type=float, default=120)
    parser.add_argument("--incident-interval", type=float, default=20)
    parser.add_argument("--skip-incident", action="store_true", help="no incident, no floor")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    client = client_with_image(300)
    if client is None:
        return 2
    work = Path(tempfile.mkdtemp(prefix="supervisor-scale-"))
    results = []
    try:
        for size in args.sizes:
            result = run_size(client, size, args, work)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)
    print(
        f"\nmachine: {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; engine {client.version()['Version']}; "
        f"--heal-concurrency {args.heal_concurrency}, pause {PAUSE_S:g} s, checks every "
        f"{args.health_interval:g} s ({args.incident_interval:g} s for the incident's)\n"
    )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
