"""Shared by the benchmarks and fault scripts in bench/: containers, policies, the agent as a
process (its JSON log kept), and Docker's own event record. Not a test; asserts nothing."""

from __future__ import annotations

import contextlib
import json
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The engine DOCKER_HOST names, and its dockerd found by its socket: shared with the tests.
from tests.support import engine_client, serving_dockerd, start_dockerd_again  # noqa: E402

__all__ = ["engine_client", "serving_dockerd", "start_dockerd_again"]
IMAGE = "docker-supervisor/busybox:local"
LABEL = "docker-supervisor.bench"
SECOND_NS = 1_000_000_000
DEFAULT_AGENT = (
    f"{sys.executable} -m supervisor run --policies {{policies}} --state-dir {{state_dir}}"
)
HEALTHY_CMD = ["sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait"]


class EventLog:
    """Every event of the bench's containers, from one stream, in arrival order."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.events: list[dict] = []
        self.arrived: queue.Queue = queue.Queue()
        self._stream = client.api.events(
            decode=True, filters={"type": "container", "label": f"{LABEL}={run_id}"}
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self.events.append(event)
                self.arrived.put(event)
        except Exception:  # the stream is closed at the end
            pass

    def wait(self, cid: str, action: str, after_ns: int, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            for event in list(self.events):
                if (
                    event["id"] == cid
                    and event["Action"] == action
                    and event["timeNano"] > after_ns
                ):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {action} for {cid[:12]} within {timeout_s}s")
            with contextlib.suppress(queue.Empty):
                self.arrived.get(timeout=min(left, 0.05))

    def first(self, cid: str, actions: set[str], after_ns: int) -> dict | None:
        for event in self.events:
            if event["id"] == cid and event["Action"] in actions and event["timeNano"] > after_ns:
                return event
        return None

    def close(self) -> None:
        self._stream.close()


def client_with_image(timeout_s: float) -> docker.DockerClient | None:
    """A client of the engine, or None (said on stderr) when the bench image is missing."""
    client = engine_client(timeout_s)
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        print(f"no image {IMAGE}: run `make images` first", file=sys.stderr)
        return None
    return client


def make_containers(
    client, run_id: str, count: int, health_interval_s: float, prefix: str, **kwargs
):
    check = {
        "test": ["CMD", "test", "-f", "/tmp/healthy"],
        "interval": int(health_interval_s * SECOND_NS),
        "timeout": SECOND_NS,
        "retries": 1,
    }
    command = kwargs.pop("command", HEALTHY_CMD)
    made = []
    for i in range(count):
        made.append(
            client.containers.run(
                IMAGE,
                command,
                name=f"bench-{run_id}-{prefix}{i:03d}",
                detach=True,
                labels={LABEL: run_id},
                healthcheck=check,
                init=True,
                **kwargs,
            )
        )
    return made


def wait_healthy(client, containers, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(containers)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} containers not healthy")
        still = []
        for c in pending:
            c.reload()
            state = c.attrs["State"]
            # A stopped container keeps its last health: running matters too.
            if not state.get("Running") or (state.get("Health") or {}).get("Status") != "healthy":
                still.append(c)
        pending = still
        if pending:
            time.sleep(0.2)


def write_policies(
    directory: Path, containers, pause_s: float, interval: str, **heal_overrides
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for c in containers:
        service = c.name.rsplit("-", 1)[-1]
        policy = {
            "service": service,
            "match": {"name": c.name},
            "check": {"interval": interval},
            "heal": {
                "on": ["unhealthy"],
                "stop_timeout": "5s",
                "pause": f"{pause_s}s",
                "ready_timeout": "60s",
                "max_restarts": 100,
                "window": "1h",
                "backoff": {"initial": "1s", "factor": 1, "max": "1s", "jitter": 0},
                **heal_overrides,
            },
        }
        (directory / f"{service}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


class Agent:
    """The supervisor under test as a process; with `log`, its stdout is kept in that file."""

    def __init__(
        self,
        template: str,
        policies: Path,
        state_dir: Path,
        *extra: str,
        log: Path | None = None,
        env: dict | None = None,
    ) -> None:
        argv = [
            part.format(policies=policies, state_dir=state_dir) for part in shlex.split(template)
        ]
        self.state_file = state_dir / "state.json"
        self.log = log
        out = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([*argv, *extra], stdout=out, stderr=subprocess.STDOUT, env=env)
        self.ps = psutil.Process(self.proc.pid)

    def lines(self, event: str | None = None, **fields) -> list[dict]:
        found = []
        for raw in self.log.read_text().splitlines() if self.log and self.log.exists() else []:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if (event is None or line.get("event") == event) and all(
                    line.get(k) == v for k, v in fields.items()
                ):
                    found.append(line)
        return found

    def wait_event(self, event: str, timeout_s: float = 60, after: int = 0, **fields) -> dict:
        """The first matching line past the first `after` matches."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hits = self.lines(event, **fields)
            if len(hits) > after:
                return hits[after]
            time.sleep(0.05)
        raise TimeoutError(f"no {event} {fields} within {timeout_s}s")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_bytes(self) -> int:
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def api_calls(self) -> int | None:
        """docker-supervisor's own count, via SIGUSR1 and its state file; None for others."""
        before = self.state_file.stat().st_mtime_ns if self.state_file.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if self.state_file.exists() and self.state_file.stat().st_mtime_ns != before:
                try:
                    return json.loads(self.state_file.read_text())["agent"]["api_calls"]
                except (ValueError, KeyError):
                    pass
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
