"""How Docker health checks fare as the host gets pressed: the figures behind the host-pressure
guard's defaults (README, Host pressure).

For each load it waits for PSI's 10 s average to settle, then reads the host's pressure
(what the agent reads) and looks at a light health check (`test -f`, 1 s timeout, every
second) in a few containers: how many of their last checks timed out, and how long a check
took (Docker's own Start and End in the health log). Two kinds of load: busy-loop processes
(N per core), and N more containers with the same check every second, the load that made
checks time out on a host with 200 containers (each check is an exec: runc, containerd and
dockerd at work). Run as root beside an engine, after `make images`:

    .venv/bin/python bench/pressure.py --kind busy --loads 0 1 2 4 8 16
    .venv/bin/python bench/pressure.py --kind checks --loads 0 50 100 150 200

It asserts nothing, and removes every container and process it starts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime

from harness import LABEL, engine_client, make_containers, wait_healthy

from supervisor.core.pressure import read_host

BUSY = "while True: pass"


def checks_since(client, containers, since: float) -> tuple[list[float], int, int]:
    """Durations of the checks that ended after `since`, how many, how many timed out."""
    took, runs, timeouts = [], 0, 0
    for c in containers:
        c.reload()
        for entry in (c.attrs["State"].get("Health") or {}).get("Log") or []:
            start = datetime.fromisoformat(entry["Start"]).timestamp()
            end = datetime.fromisoformat(entry["End"]).timestamp()
            if end < since:
                continue
            runs += 1
            took.append(end - start)
            timeouts += entry.get("ExitCode") == -1
    return took, runs, timeouts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["busy", "checks"], default="checks")
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 50, 100, 150, 200])
    parser.add_argument("--seconds", type=float, default=20.0, help="per load, after settling")
    parser.add_argument("--containers", type=int, default=4)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    client = engine_client()
    run_id = f"pressure-{os.getpid()}"
    containers = make_containers(client, run_id, args.containers, 1.0, "p")
    busy: list[subprocess.Popen] = []
    noise: list = []
    print(f"{cores} cores; {args.containers} containers, `test -f` every 1 s, timeout 1 s")
    unit = "busy/core" if args.kind == "busy" else "  checks/s"
    print(f"{unit}  psi_cpu  psi_mem  load/core  checks  timed_out  check_median_s  check_max_s")
    try:
        wait_healthy(client, containers)
        for load in args.loads:
            if args.kind == "busy":
                while len(busy) < load * cores:
                    busy.append(subprocess.Popen([sys.executable, "-c", BUSY]))
                while len(busy) > load * cores:
                    busy.pop().kill()
            elif load > len(noise):
                more = make_containers(client, run_id, load - len(noise), 1.0, f"n{len(noise)}-")
                noise += more
            time.sleep(12)  # PSI's avg10 follows within about 10 s
            began = time.time()
            samples = []
            while time.time() - began < args.seconds:
                samples.append(read_host())
                time.sleep(2)
            took, runs, timeouts = checks_since(client, containers, began)
            shown = load + args.containers if args.kind == "checks" else load
            cpu = statistics.median(s.cpu_pct or 0.0 for s in samples)
            mem = statistics.median(s.memory_pct or 0.0 for s in samples)
            per_core = statistics.median(s.load_per_core for s in samples)
            print(
                f"{shown:9d}  {cpu:7.1f}  {mem:7.1f}  {per_core:9.2f}  {runs:6d}  {timeouts:9d}  "
                f"{statistics.median(took) if took else 0:14.3f}  {max(took, default=0):11.3f}",
                flush=True,
            )
    finally:
        for proc in busy:
            proc.kill()
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}):
            c.remove(force=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
