"""Agent-side probes (http, tcp, exec) with Kubernetes' semantics.

`ProbeTracker` is pure: results go in, it says whether the probe has now failed (after
`failure_threshold` failures in a row) or succeeded (after `success_threshold` successes), and
it starts over, after `initial_delay`, whenever the container starts again. `run_probe` does
the I/O, bounded by the probe's timeout; it never raises. Neither decides to heal.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import requests

from ..config.model import ProbePolicy
from ..docker.containers import ContainerInfo
from ..docker.engine import Engine
from ..errors import ExecTimedOut
from ..publish.outbound import request_status

UNKNOWN, OK, FAILED = "unknown", "ok", "failed"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    error: str | None = None
    timed_out: bool = False  # it failed because it did not answer within its timeout


@dataclass
class ProbeTracker:
    probe: ProbePolicy
    started_at: float | None = None
    state: str = UNKNOWN
    successes: int = 0
    failures: int = 0
    timeouts: int = 0  # of the failures in a row, those that timed out
    last_error: str | None = None

    def due(self, started_at: float | None, now: float) -> bool:
        """Whether to probe now; a container started anew resets the counts."""
        if started_at != self.started_at:
            self.started_at = started_at
            self.state, self.successes, self.failures, self.last_error = UNKNOWN, 0, 0, None
            self.timeouts = 0
        return started_at is None or now - started_at >= self.probe.initial_delay_s

    def record(self, result: ProbeResult) -> bool:
        """Count one result; True when the state changed (to ok or to failed)."""
        before = self.state
        if result.ok:
            self.successes, self.failures, self.timeouts = self.successes + 1, 0, 0
            if self.successes >= self.probe.success_threshold:
                self.state = OK
        else:
            self.successes, self.failures = 0, self.failures + 1
            self.timeouts += 1 if result.timed_out else 0
            self.last_error = result.error
            if self.failures >= self.probe.failure_threshold:
                self.state = FAILED
        return self.state != before

    @property
    def timed_out(self) -> bool:
        """Failed because every try of its failing streak timed out (what a pressed host
        does to a working service), not because one was refused or answered wrong."""
        return self.state == FAILED and self.failures > 0 and self.timeouts == self.failures


def probe_target(probe: ProbePolicy, container: ContainerInfo) -> tuple[str, int | None]:
    """The host to reach (given, or the container's first address) and the port."""
    host = probe.host or (container.addresses[0] if container.addresses else "127.0.0.1")
    return host, probe.port


def build_url(probe: ProbePolicy, container: ContainerInfo) -> str:
    if probe.url:
        return probe.url
    host, port = probe_target(probe, container)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{probe.path}"


def run_probe(probe: ProbePolicy, container: ContainerInfo, engine: Engine) -> ProbeResult:
    """Probe once, within the probe's timeout. Never raises."""
    try:
        if probe.kind == "http":
            url = build_url(probe, container)
            status = request_status("GET", url, probe.timeout_s)
            if probe.status_low <= status <= probe.status_high:
                return ProbeResult(True)
            return ProbeResult(False, f"GET {url}: HTTP {status}")
        if probe.kind == "tcp":
            host, port = probe_target(probe, container)
            with socket.create_connection((host, port), timeout=probe.timeout_s):
                return ProbeResult(True)
        code, output = engine.exec_probe(container.id, list(probe.command), probe.timeout_s)
        if code == 0:
            return ProbeResult(True)
        return ProbeResult(False, f"exec {' '.join(probe.command)}: exit code {code}: {output}")
    except ExecTimedOut as e:  # it says what it ran
        return ProbeResult(False, str(e), timed_out=True)
    except (requests.Timeout, TimeoutError):
        return ProbeResult(False, f"timed out after {probe.timeout_s:g}s", timed_out=True)
    except Exception as e:  # any failure (a name no resolver takes, too) is a failed try
        return ProbeResult(False, f"{type(e).__name__}: {e}")
