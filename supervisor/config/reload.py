"""What a reload changes: added, changed and removed services, and what is kept.

A file that no longer validates keeps its last good version (`policy.invalid`); a service
whose file is gone is no longer supervised. A directory that cannot be read at all (missing,
writable by others, empty) changes nothing: every last good policy stays, and one line says
so. Pure but for the log lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PolicyError
from ..logs import log_event
from .model import Policy
from .policy import LoadResult

log = logging.getLogger("supervisor.agent")


@dataclass
class Plan:
    added: list[Policy] = field(default_factory=list)
    changed: list[Policy] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[Policy] = field(default_factory=list)  # every policy in force afterwards


def log_invalid(error: PolicyError) -> None:
    """One `policy.invalid` line: the error's own one-line text, and where it is."""
    log_event(
        log,
        logging.ERROR,
        "policy.invalid",
        str(error),
        file=error.file,
        line=error.line,
        field=error.field,
        error=error.message,
    )


def plan_reload(current: dict[str, Policy], result: LoadResult, directory: Path) -> Plan:
    """Compare the running policies with a fresh load of `directory`; log what it finds."""
    for error in result.errors:
        log_invalid(error)
    if any(error.file == str(directory) for error in result.errors):
        log_event(
            log,
            logging.ERROR,
            "policy.unreadable",
            "the policies directory cannot be used; every last good policy stays",
            directory=str(directory),
            services=len(current),
        )
        return Plan(kept=list(current.values()))
    bad_files = {error.file for error in result.errors}
    wanted = {p.service: p for p in result.policies}
    for service, policy in current.items():
        if service not in wanted and str(policy.source) in bad_files:
            wanted[service] = policy  # its file is broken: the last good version stays
    plan = Plan(kept=list(wanted.values()))
    plan.removed = [s for s in current if s not in wanted]
    plan.added = [p for s, p in wanted.items() if s not in current]
    plan.changed = [p for s, p in wanted.items() if s in current and current[s] != p]
    for event, services in (
        ("policy.added", [p.service for p in plan.added]),
        ("policy.changed", [p.service for p in plan.changed]),
        ("policy.removed", plan.removed),
    ):
        for service in services:
            log_event(log, logging.INFO, event, event.replace(".", " "), service=service)
    log_event(
        log,
        logging.INFO,
        "policy.reloaded",
        "policies reloaded",
        services=len(wanted),
        added=len(plan.added),
        changed=len(plan.changed),
        removed=len(plan.removed),
        invalid=len(result.errors),
    )
    return plan
