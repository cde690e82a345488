"""Fault campaign: the agent under engine crashes and freezes, its own deaths, containers that
vanish mid-cycle, hanging compose, a host-wide incident and a long crash loop.

Each fault prints one result line (what was done, how many times, what was lost, the figure)
for docs/RELIABILITY.md. Run as root beside an engine, after `make images`; some faults stop,
kill or freeze dockerd, so run it on a machine whose other containers may be disturbed:

    .venv/bin/python bench/faults.py all                 # every fault
    .venv/bin/python bench/faults.py dockerd-kill agent-kill

It is not a test; it asserts nothing, and removes every container it creates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import docker
from harness import (
    DEFAULT_AGENT,
    IMAGE,
    LABEL,
    Agent,
    engine_client,
    make_containers,
    serving_dockerd,
    start_dockerd_again,
    wait_healthy,
    write_policies,
)

RESULTS: list[dict] = []


def ts(line: dict) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


def report(fault: str, done: str, runs: int, lost: str, figure: str) -> None:
    RESULTS.append({"fault": fault, "done": done, "runs": runs, "lost": lost, "figure": figure})
    print(f"| {fault} | {done} | {runs} | {lost} | {figure} |", flush=True)


def client() -> docker.DockerClient:
    return engine_client(60)


def start_engine(cmdline: list[str]) -> float:
    """Start the dockerd a fault stopped, as it was; return when it answers (time.time())."""
    start_dockerd_again(cmdline)
    return time.time()


class Setup:
    """Containers, policies and an agent in a scratch directory, removed afterwards."""

    def __init__(
        self,
        name: str,
        count: int,
        *extra: str,
        pause_s: float = 0.5,
        interval: str = "1s",
        env: dict | None = None,
        **heal,
    ) -> None:
        self.run_id = f"{name}-{os.getpid()}"
        self.work = Path(tempfile.mkdtemp(prefix=f"supervisor-{name}-"))
        self.client = client()
        self.containers = make_containers(
            self.client, self.run_id, count, 1.0, "c", **heal.pop("container", {})
        )
        wait_healthy(self.client, self.containers)
        write_policies(self.work / "p", self.containers, pause_s, interval, **heal)
        self.extra, self.env = extra, env
        self.agent = self.start_agent()

    def start_agent(self) -> Agent:
        agent = Agent(
            DEFAULT_AGENT,
            self.work / "p",
            self.work / "state",
            *self.extra,
            log=self.work / "agent.log",
            env=self.env,
        )
        agent.wait_event("agent.ready", after=len(self.lines("agent.ready")))
        return agent

    def lines(self, event: str | None = None, **fields) -> list[dict]:
        log = self.work / "agent.log"
        found = []
        for raw in log.read_text().splitlines() if log.exists() else []:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if (event is None or line.get("event") == event) and all(
                line.get(k) == v for k, v in fields.items()
            ):
                found.append(line)
        return found

    def close(self) -> None:
        self.agent.stop()
        engine = client()
        for c in engine.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"}):
            c.remove(force=True)


def fault_dockerd_kill(rounds: int = 5) -> None:
    # No trap: killed by the engine's crash, they exit non-zero, which `exited` heals.
    s = Setup(
        "dkill",
        10,
        on=["unhealthy", "exited"],
        container={"command": ["sh", "-c", "touch /tmp/healthy; exec sleep 86400"]},
    )
    try:
        resync, healthy_again, outage_heals = [], [], 0
        for i in range(rounds):
            dockerd = serving_dockerd()
            cmdline = dockerd.cmdline()
            dockerd.send_signal(signal.SIGKILL)
            gone = s.agent.wait_event("engine.unreachable", after=i)
            time.sleep(2)
            answered = start_engine(cmdline)
            back = s.agent.wait_event("engine.reachable", timeout_s=30, after=i)
            resync.append(ts(back) - answered)
            outage_heals += sum(1 for x in s.lines("heal.started") if ts(gone) <= ts(x) < ts(back))
            # Docker does not restart these after its own SIGKILL: the agent heals them, after
            # the settle time, as `exited`.
            wait_healthy(client(), [client().containers.get(c.id) for c in s.containers], 120)
            healthy_again.append(time.time() - answered)
        alive = s.agent.proc.poll() is None
        target = client().containers.get(s.containers[0].id)
        target.exec_run(["rm", "/tmp/healthy"])
        healed = s.agent.wait_event(
            "heal.recovered", timeout_s=60, after=len(s.lines("heal.recovered"))
        )
        report(
            "dockerd SIGKILLed and restarted, 10 supervised containers",
            "SIGKILL dockerd, 2 s down, start it",
            rounds,
            f"agent exits: {0 if alive else 1}; heals during the outages: {outage_heals}",
            f"back in sync after the engine answers: max {max(resync):.2f} s, "
            f"median {statistics.median(resync):.2f} s; all 10 running and healthy again "
            f"{statistics.median(healthy_again):.1f} s (median) after the engine answered "
            f"(settle 10 s included); then a container made unhealthy was healed in "
            f"{healed['duration_s']} s",
        )
    finally:
        s.close()


def fault_dockerd_freeze(freeze_s: float = 20) -> None:
    sock = Path(tempfile.mkdtemp()) / "notify.sock"
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock))
    listener.settimeout(0.2)
    s = Setup(
        "dfreeze", 5, env={**os.environ, "NOTIFY_SOCKET": str(sock), "WATCHDOG_USEC": "2000000"}
    )
    try:
        pings = []
        procs = [serving_dockerd()]
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        began = time.time()
        while time.time() - began < freeze_s:
            try:
                if listener.recv(4096) == b"WATCHDOG=1":
                    pings.append(time.time())
            except TimeoutError:
                pass
        for p in procs:
            p.send_signal(signal.SIGCONT)
        time.sleep(5)
        gaps = [b - a for a, b in itertools.pairwise(pings)] or [freeze_s]
        heals = len(s.lines("heal.started"))
        alive = s.agent.proc.poll() is None
        report(
            f"dockerd frozen (SIGSTOP {freeze_s:g} s, then SIGCONT)",
            "SIGSTOP / SIGCONT",
            1,
            f"agent exits: {0 if alive else 1}; heals caused by the freeze: {heals}",
            f"WATCHDOG=1 kept coming every {statistics.median(gaps):.2f} s (max gap "
            f"{max(gaps):.2f} s) while the scheduler ran",
        )
    finally:
        s.close()
        listener.close()


def fault_agent_kill(rounds: int = 10) -> None:
    s = Setup("akill", 5, pause_s=1.0)
    try:
        recover, corrupt = [], 0
        rng = random.Random(7)
        for i in range(rounds):
            c = s.containers[i % len(s.containers)]
            c.exec_run(["rm", "/tmp/healthy"])
            s.agent.wait_event("heal.started", after=len(s.lines("heal.started")))
            time.sleep(rng.uniform(0, 1.5))  # somewhere in stop, pause, start, wait
            s.agent.kill()
            try:
                json.loads((s.work / "state/state.json").read_text())
            except ValueError:
                corrupt += 1
            began = time.time()
            s.agent = s.start_agent()
            wait_healthy(s.client, s.containers, timeout_s=60)
            recover.append(time.time() - began)
        report(
            "agent SIGKILLed at random points of heal cycles",
            "SIGKILL, start again",
            rounds,
            f"containers left down: 0; corrupt state files: {corrupt}",
            f"all healthy {statistics.median(recover):.2f} s (median), "
            f"{max(recover):.2f} s (max) after the agent's restart "
            f"(ready_timeout 60 s); resumed cycles: {len(s.lines('heal.resumed'))}",
        )
    finally:
        s.close()


def fault_container_churn() -> None:
    outcomes = []
    for action in ("remove", "rename", "recreate"):
        s = Setup(f"churn-{action}", 1, pause_s=3.0)
        try:
            c = s.containers[0]
            name = c.name
            c.exec_run(["rm", "/tmp/healthy"])
            s.agent.wait_event("heal.stopped")
            if action == "remove":
                c.remove(force=True)
            elif action == "rename":
                c.rename(f"{name}-renamed")
            else:
                c.remove(force=True)
                make_containers(s.client, s.run_id, 1, 1.0, "c")  # same name, new id
            ended = (
                s.agent.wait_event("heal.failed", timeout_s=30)
                if action != "rename"
                else (s.agent.wait_event("heal.recovered", timeout_s=30))
            )
            time.sleep(3)
            last = s.lines("service.status")[-1]
            outcomes.append(
                f"{action}: {ended['event']} ({ended.get('reason', '-')}), then "
                f"{last['status']}/{last.get('reason') or '-'}"
            )
        finally:
            s.close()
    report(
        "container removed, renamed, recreated during its heal cycle",
        "docker rm -f / rename / rm + run, in the pause",
        3,
        "no crash, no stuck hold",
        "; ".join(outcomes),
    )


def fault_compose_hang() -> None:
    work = Path(tempfile.mkdtemp(prefix="supervisor-hang-"))
    fake = work / "compose-that-hangs"
    # A Compose v2 by its version (the agent checks it), that hangs on every command.
    fake.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        "if sys.argv[1:] == ['version', '--short']:\n    print('2.40.3'); sys.exit(0)\n"
        "sys.stderr.write('hanging on purpose')\nsys.stderr.flush()\ntime.sleep(3600)\n"
    )
    fake.chmod(0o755)
    (work / "compose.yml").write_text("services: {}\n")
    s = Setup("hang", 2, "--compose-bin", str(fake), "--compose-timeout", "5s")
    try:
        # The first service's heals go through the hanging compose binary.
        first = s.containers[0]
        policy = s.work / "p" / f"{first.name.rsplit('-', 1)[-1]}.yaml"
        text = policy.read_text().replace("heal:\n", "heal:\n  scope: compose\n")
        policy.write_text(text + f"compose: {{file: {work / 'compose.yml'}}}\n")
        s.agent.proc.send_signal(signal.SIGHUP)
        s.agent.wait_event("policy.reloaded")
        first.exec_run(["rm", "/tmp/healthy"])
        s.agent.wait_event("heal.stopping")
        second = s.containers[1]
        second.exec_run(["rm", "/tmp/healthy"])
        other = s.agent.wait_event("heal.recovered", timeout_s=30)
        failed = s.agent.wait_event("heal.failed", timeout_s=30)
        cut_after = ts(failed) - ts(s.lines("heal.stopping")[0])
        detail = failed.get("detail") or ""
        report(
            "a compose command that hangs",
            "compose binary that sleeps 1 h; --compose-timeout 5s",
            1,
            "other services: none delayed",
            f"each compose command cut at 5 s ({'timed out after 5s' in detail}), its stderr "
            f"in the log ({'hanging on purpose' in detail}); the cycle (a stop, then 4 start "
            f"tries) ended after {cut_after:.1f} s; meanwhile {other['service']} was healed "
            f"in {other['duration_s']} s",
        )
    finally:
        s.close()


def fault_incident(count: int = 30, limit: int = 4) -> None:
    s = Setup("incident", count, "--heal-concurrency", str(limit), interval="30s")
    try:
        began = time.time()
        for c in s.containers:
            c.exec_run(["rm", "/tmp/healthy"])
        deadline = time.time() + 300
        while len(s.lines("heal.recovered")) < count and time.time() < deadline:
            time.sleep(0.5)
        total = time.time() - began
        spans = []
        for c in s.containers:
            service = c.name.rsplit("-", 1)[-1]
            b, e = (
                s.lines("heal.stopping", service=service),
                s.lines("heal.recovered", service=service),
            )
            if b and e:
                spans.append((ts(b[0]), ts(e[0])))
        overlap = max(sum(1 for b, e in spans if b <= t < e) for t, _ in spans)
        wait_healthy(s.client, s.containers, timeout_s=60)
        report(
            f"host-wide incident: {count} containers unhealthy at once",
            f"rm the health file in all {count}; --heal-concurrency {limit}",
            1,
            f"unhealthy at the end: 0; failed heals: {len(s.lines('heal.failed'))}",
            f"all {len(spans)} healed in {total:.1f} s; at most {overlap} cycles at once; "
            f"{len(s.lines('heal.queued'))} queued",
        )
    finally:
        s.close()


def fault_crash_loop(minutes: float = 5) -> None:
    s = Setup(
        "loop",
        1,
        pause_s=0.2,
        interval="1s",
        ready_timeout="2s",
        max_restarts=3,
        window="30s",
        reset_after="60s",
        backoff={"initial": "1s", "factor": 2, "max": "4s", "jitter": 0},
    )
    try:
        c = s.containers[0]
        c.exec_run(["sh", "-c", "echo 'exit 1' > /tmp/false"])
        # Always unhealthy: the health file is removed right after every start.
        stopper = subprocess.Popen([sys.executable, "-c", _KEEP_UNHEALTHY, c.id])
        rss = []
        began = time.time()
        while time.time() - began < minutes * 60:
            rss.append(s.agent.ps.memory_info().rss / 2**20)
            time.sleep(5)
        stopper.kill()
        starts = [ts(x) for x in s.lines("heal.stopping")]
        worst = max(sum(1 for t in starts if a <= t < a + 30) for a in starts) if starts else 0
        give_ups = len(s.lines("heal.gave_up"))
        third = max(1, len(rss) // 3)
        report(
            f"crash loop for {minutes:g} min (window 30 s, max_restarts 3)",
            "a container that turns unhealthy right after every start",
            1,
            f"restarts in any 30 s window: at most {worst} (budget 3); give-up lines: {give_ups}",
            f"agent RSS {statistics.mean(rss[:third]):.1f} MB in the first third, "
            f"{statistics.mean(rss[-third:]):.1f} MB in the last",
        )
    finally:
        s.close()


_KEEP_UNHEALTHY = """
import sys, time, docker
c = docker.from_env(version="auto").containers.get(sys.argv[1])
while True:
    try:
        c.exec_run(["rm", "-f", "/tmp/healthy"])
    except Exception:
        pass
    time.sleep(0.3)
"""

# A memory hog capped by its container: memory pressure (PSI counts its stalls host-wide)
# without risking the host's own memory.
HOG = ["sh", "-c", "while :; do tail /dev/zero; done"]


def storm_run(guarded: bool, count: int, broken: int, noise: int, load_s: float):
    """One storm: `count` supervised services and `broken` that really fail, on a host
    pressed by `noise` more containers with a health check every second (each check an
    exec: the load that made checks time out on a host of 200 containers) and a memory hog
    in a capped container."""
    name = "storm-on" if guarded else "storm-off"
    extra = () if guarded else ("--no-pressure-guard",)
    s = Setup(name, count + broken, *extra, interval="2s")
    load: list = []
    hog = None
    try:
        slow, bad = s.containers[:count], s.containers[count:]
        service = {c.id: c.name.rsplit("-", 1)[-1] for c in s.containers}
        began = time.time()
        load = make_containers(s.client, s.run_id, noise, 1.0, "noise")
        hog = s.client.containers.run(
            IMAGE, HOG, detach=True, mem_limit="128m", memswap_limit="128m",
            labels={LABEL: s.run_id},
        )  # fmt: skip
        broke_at = time.time()
        for c in bad:
            c.exec_run(["rm", "/tmp/healthy"])
        time.sleep(load_s)
        for c in [*load, hog]:
            c.remove(force=True)
        load, hog = [], None
        calm_at = time.time()
        wait_healthy(s.client, bad + slow, timeout_s=300)
        settled = time.time()

        def stops(containers, until=None) -> int:
            return sum(
                1
                for c in containers
                for line in s.lines("heal.stopping", service=service[c.id])
                if until is None or ts(line) < until
            )

        healed = []
        for c in bad:  # the first recovery after it was broken (one before is a timeout's)
            after = [ts(x) for x in s.lines("heal.recovered", service=service[c.id])]
            after = [at for at in after if at > broke_at]
            if after:
                healed.append(after[0] - broke_at)
        pressure = s.lines("pressure.started")
        return {
            "restarts_of_slow_under_load": stops(slow, calm_at),
            "restarts_of_slow_after": stops(slow) - stops(slow, calm_at),
            "restarts_of_broken": stops(bad),
            "deferred": len({line["service"] for line in s.lines("heal.deferred")}),
            "broken_healed_s": statistics.median(healed) if healed else None,
            "all_healthy_after_load_s": round(settled - calm_at, 1),
            "pressure": [p["why"] for p in pressure][:3],
            "load_s": round(calm_at - began, 1),
        }
    finally:
        s.close()  # removes the load's containers too (they carry the run's label)


def fault_storm(count: int = 12, broken: int = 3, noise: int = 45) -> None:
    load_s = 90.0
    on = storm_run(True, count, broken, noise, load_s)
    off = storm_run(False, count, broken, noise, load_s)
    report(
        f"storm: {noise} more containers checked every second, and a memory hog, {load_s:g} s",
        f"{count} light services, {broken} broken; with the guard, then without",
        2,
        f"restarts of the {count} under load: {on['restarts_of_slow_under_load']} with, "
        f"{off['restarts_of_slow_under_load']} without",
        f"broken healed in {on['broken_healed_s']} s with, {off['broken_healed_s']} s without; "
        f"all healthy {on['all_healthy_after_load_s']} s / {off['all_healthy_after_load_s']} s "
        f"after the load; deferred {on['deferred']}; pressure {on['pressure']}",
    )
    print(json.dumps({"with_guard": on, "without_guard": off}, indent=2), flush=True)


FAULTS = {
    "dockerd-kill": fault_dockerd_kill,
    "dockerd-freeze": fault_dockerd_freeze,
    "agent-kill": fault_agent_kill,
    "container-churn": fault_container_churn,
    "compose-hang": fault_compose_hang,
    "incident": fault_incident,
    "crash-loop": fault_crash_loop,
    "storm": fault_storm,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faults", nargs="+", choices=[*FAULTS, "all"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    chosen = list(FAULTS) if "all" in args.faults else args.faults
    print("| fault | what was done | runs | lost | figure |\n|---|---|---|---|---|", flush=True)
    for name in chosen:
        try:
            FAULTS[name]()
        except Exception as e:  # one fault's trouble must not hide the others' results
            report(name, "did not complete", 0, "?", f"{type(e).__name__}: {e}")
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
