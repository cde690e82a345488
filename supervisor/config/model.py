"""The policy as the agent holds it (frozen dataclasses) and the words it is made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HEALABLE_REASONS = ("unhealthy", "exited", "oom_killed", "dead", "missing")
SCOPES = ("container", "compose", "project")
COMPOSE_SCOPES = frozenset({"compose", "project"})
DEPENDENTS = ("none", "restart")


@dataclass(frozen=True)
class Match:
    compose_service: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    port: int | None = None
    # A selector policy's: every container carrying these labels ({} for `all`) is a service.
    selector: Mapping[str, str] | None = None
    # An expanded service's: the one container it is (selector.identity_of), not in the format.
    identity: tuple[str, str] | None = None


@dataclass(frozen=True)
class ComposeRef:
    file: Path
    project: str | None = None


@dataclass(frozen=True)
class ProbePolicy:
    """An agent-side probe, with Kubernetes' semantics (defaults as in Kubernetes)."""

    kind: str  # http, tcp or exec
    url: str | None = None  # http: a full URL, or
    port: int | None = None  # http and tcp: a port on `host`, or on the container's address
    path: str = "/"
    host: str | None = None
    status_low: int = 200
    status_high: int = 399
    command: tuple[str, ...] = ()  # exec: argv run inside the container
    timeout_s: float = 1.0
    period_s: float = 10.0
    initial_delay_s: float = 0.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class CheckPolicy:
    interval_s: float = 10.0
    grace_s: float = 0.0
    failures: int = 1
    probe: ProbePolicy | None = None


NOTIFY_EVENTS = ("heal.gave_up", "heal.recovered", "heal.failed")


@dataclass(frozen=True)
class NotifyPolicy:
    """Who hears of give-ups, recoveries and failures: a command (argv), a webhook, or both."""

    on: frozenset[str] = frozenset(NOTIFY_EVENTS)
    command: tuple[str, ...] = ()
    webhook: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 10.0
    factor: float = 2.0
    max_s: float = 300.0
    jitter: float = 0.1


@dataclass(frozen=True)
class HealPolicy:
    on: frozenset[str] = frozenset({"unhealthy"})
    scope: str = "container"
    stop_timeout_s: float | None = None  # None: each container's own StopTimeout
    pause_s: float = 2.0
    ready_timeout_s: float = 120.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    max_restarts: int = 5
    window_s: float = 600.0
    reset_after_s: float = 600.0
    dependents: str = "none"


@dataclass(frozen=True)
class Policy:
    service: str
    match: Match
    compose: ComposeRef | None = None
    check: CheckPolicy = field(default_factory=CheckPolicy)
    heal: HealPolicy = field(default_factory=HealPolicy)
    notify: NotifyPolicy | None = None
    source: Path | None = None
    # An expanded service's: the selector policy it came from.
    selected_by: str | None = None

    @property
    def is_selector(self) -> bool:
        """One policy for every container its selector finds, each its own service."""
        return self.match.selector is not None

    @property
    def project(self) -> str | None:
        """The compose project named in the policy, if any."""
        return self.compose.project if self.compose else None

    @property
    def compose_file(self) -> Path | None:
        """The compose file the policy names, if any."""
        return self.compose.file if self.compose else None
