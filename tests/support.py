"""Helpers for tests against the real engine: the one engine DOCKER_HOST names, a bounded
poll, and the agent as a process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker
import psutil

REPO = Path(__file__).resolve().parents[1]

# A heal policy quick enough for tests: short stop, pause and backoff.
FAST_HEAL = {
    "on": ["unhealthy"],
    "stop_timeout": "2s",
    "pause": "200ms",
    "ready_timeout": "30s",
    "backoff": {"initial": "1s", "factor": 2, "max": "4s", "jitter": 0},
}


DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_client(timeout_s: float = 60) -> docker.DockerClient:
    """A client of the engine DOCKER_HOST names (the default socket without it): the one the
    agent, the docker CLI and compose talk to, and no other on the host."""
    return docker.from_env(version="auto", timeout=timeout_s)


def engine_answers(timeout_s: float = 3) -> bool:
    client = None
    try:
        client = engine_client(timeout_s)
        client.ping()
    except docker.errors.DockerException:
        return False
    finally:
        if client is not None:
            client.close()
    return True


def engine_socket() -> str:
    """The unix socket DOCKER_HOST names, resolved (/var/run is a link to /run)."""
    url = urlparse(os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}")
    if url.scheme != "unix":
        raise AssertionError(f"DOCKER_HOST={url.geturl()}: tests find dockerd by its unix socket")
    return os.path.realpath(url.path)


def serving_dockerd() -> psutil.Process:
    """The dockerd listening on DOCKER_HOST's socket: found by the socket, never by name, so a
    second engine on this host is left alone."""
    path = engine_socket()
    for conn in psutil.net_connections(kind="unix"):
        if conn.pid and conn.laddr and os.path.realpath(conn.laddr) == path:
            proc = psutil.Process(conn.pid)
            if proc.name() == "dockerd":
                return proc
    raise AssertionError(f"no dockerd process listens on {path}")


def start_dockerd_again(cmdline: list[str]) -> None:
    """Start the engine a test stopped, as it was started, and wait until it answers."""
    if any(arg.startswith("fd://") for arg in cmdline):  # socket-activated by systemd
        subprocess.run(["systemctl", "start", "docker"], check=True, timeout=120)
    else:
        with open("/var/log/dockerd.log", "ab") as log:
            subprocess.Popen(
                cmdline, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
    wait_for(engine_answers, 60, f"the engine to answer after {' '.join(cmdline)}")


@contextlib.contextmanager
def datagram_listener(path: Path):
    """A unix datagram socket bound at `path`, as systemd's notify socket and journald's are."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield path, sock
    finally:
        sock.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`docker-supervisor ARGS` from the checkout, as an operator would type it (with `env`
    on top of this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
        env={**os.environ, **(env or {})},
    )


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


class AgentProcess:
    """`docker-supervisor run` in a subprocess, its JSON lines collected as they come."""

    def __init__(self, policies: Path, state_dir: Path, *extra: str, env: dict | None = None):
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor",
                "run",
                "--policies",
                str(policies),
                "--state-dir",
                str(state_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.raw.append(line)
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    self.lines.append({"event": "not_json", "text": line})

    def events(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            lines = list(self.lines)
        return [
            x
            for x in lines
            if (event is None or x.get("event") == event)
            and all(x.get(k) == v for k, v in fields.items())
        ]

    def wait_event(self, event: str, timeout_s: float = 30, **fields: Any) -> dict[str, Any]:
        def found():
            if self.proc.poll() is not None and not self.events(event, **fields):
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.output()}")
            hits = self.events(event, **fields)
            return hits[0] if hits else None

        try:
            return wait_for(found, timeout_s, f"{event} {fields}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nagent output:\n{self.output()}") from None

    def output(self) -> str:
        with self._lock:
            return "".join(self.raw[-60:])

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def scrape_metrics(port: int) -> dict[str, float]:
    """The agent's metrics endpoint on this port: each sample (name and labels) -> value."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def write_policy(directory: Path, service: str, **sections: Any) -> Path:
    """Write a policy file from keyword sections (match=..., check=..., heal=...)."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{service}.yaml"
    path.write_text(yaml.safe_dump({"service": service, **sections}, sort_keys=False))
    return path
