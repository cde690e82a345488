"""An optional Prometheus endpoint (prometheus-client): per-service figures and the agent's own.

Counters and the heal-duration histogram are fed by the agent as things happen; the per-service
gauges are read from the agent's slots at scrape time, so nothing is kept twice. The agent's
RSS and CPU come from prometheus-client's process collector. Off unless --metrics-addr is
given; it binds to loopback unless told otherwise. It never decides anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from ..errors import UsageError

STATUSES = ("running", "starting", "stopped", "error")
DEFAULT_HOST = "127.0.0.1"


def parse_metrics_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (loopback) into (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--metrics-addr: expected HOST:PORT like 127.0.0.1:9464, got {text!r}")
    return (host.strip("[]") or DEFAULT_HOST), int(port)


class Metrics:
    """What the agent reports; `serve` exposes it over HTTP."""

    def __init__(
        self,
        read_services: Callable[[], Iterable[dict[str, Any]]],
        read_api_calls: Callable[[], int],
        read_engine_up: Callable[[], bool] = lambda: True,
        read_pressure: Callable[[], bool] = lambda: False,
        read_state_ok: Callable[[], bool] = lambda: True,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(
            _LiveCollector(
                read_services, read_api_calls, read_engine_up, read_pressure, read_state_ok
            )
        )
        self._checks = Counter(
            "supervisor_checks", "Checks made, by service", ["service"], registry=self.registry
        )
        self._probes = Counter(
            "supervisor_probes",
            "Agent-side probes run, by service and result",
            ["service", "result"],
            registry=self.registry,
        )
        self._heals = Counter(
            "supervisor_heals",
            "Heal cycles ended, by service and result",
            ["service", "result"],
            registry=self.registry,
        )
        self._give_ups = Counter(
            "supervisor_give_ups",
            "Crash loops given up on, by service",
            ["service"],
            registry=self.registry,
        )
        self._heal_seconds = Histogram(
            "supervisor_heal_duration_seconds",
            "Heal cycle duration, stop to healthy",
            ["service"],
            registry=self.registry,
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self._server: Any = None

    def checked(self, service: str) -> None:
        self._checks.labels(service).inc()

    def probed(self, service: str, ok: bool) -> None:
        self._probes.labels(service, "ok" if ok else "failed").inc()

    def healed(self, service: str, recovered: bool, duration_s: float) -> None:
        self._heals.labels(service, "recovered" if recovered else "failed").inc()
        self._heal_seconds.labels(service).observe(duration_s)

    def gave_up(self, service: str) -> None:
        self._give_ups.labels(service).inc()

    def forget(self, service: str) -> None:
        """A service no longer supervised leaves no series behind (selected containers come
        and go: their series would pile up)."""
        for metric, labels in (
            (self._checks, [(service,)]),
            (self._give_ups, [(service,)]),
            (self._heal_seconds, [(service,)]),
            (self._probes, [(service, "ok"), (service, "failed")]),
            (self._heals, [(service, "recovered"), (service, "failed")]),
        ):
            for values in labels:
                with contextlib.suppress(KeyError):
                    metric.remove(*values)

    def serve(self, host: str, port: int) -> None:
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _LiveCollector:
    """Gauges read from the agent at scrape time."""

    def __init__(
        self, read_services, read_api_calls, read_engine_up, read_pressure, read_state_ok
    ) -> None:
        self._read_services = read_services
        self._read_api_calls = read_api_calls
        self._read_engine_up = read_engine_up
        self._read_pressure = read_pressure
        self._read_state_ok = read_state_ok

    def collect(self):
        status = GaugeMetricFamily(
            "supervisor_service_status",
            "1 for the service's current status",
            labels=["service", "status"],
        )
        restarts = GaugeMetricFamily(
            "supervisor_service_restarts_in_window",
            "Restarts inside the policy's window",
            labels=["service"],
        )
        flags = GaugeMetricFamily(
            "supervisor_service_flag",
            "1 while the service is healing, held, given up, or deferred (host pressure)",
            labels=["service", "flag"],
        )
        for row in self._read_services():
            for name in STATUSES:
                status.add_metric([row["service"], name], 1.0 if row["status"] == name else 0.0)
            restarts.add_metric([row["service"]], row["restarts"])
            for flag in ("healing", "held", "gave_up", "deferred"):
                flags.add_metric([row["service"], flag], 1.0 if row[flag] else 0.0)
        calls = CounterMetricFamily(
            "supervisor_engine_api_calls", "Docker engine API requests made by the agent"
        )
        calls.add_metric([], self._read_api_calls())
        engine = GaugeMetricFamily(
            "supervisor_engine_up", "1 while the Docker engine answers the agent, else 0"
        )
        engine.add_metric([], 1.0 if self._read_engine_up() else 0.0)
        pressure = GaugeMetricFamily(
            "supervisor_host_pressure",
            "1 while the host is pressed (or a storm lasts): timed-out checks wait, else 0",
        )
        pressure.add_metric([], 1.0 if self._read_pressure() else 0.0)
        state = GaugeMetricFamily(
            "supervisor_state_writable",
            "1 while the agent's state file can be written, else 0 (no heal stops anything)",
        )
        state.add_metric([], 1.0 if self._read_state_ok() else 0.0)
        yield from (status, restarts, flags, calls, engine, pressure, state)
