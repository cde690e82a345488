"""Classify a container's Docker state into a Status and a reason.

Pure: it reads the `State` mapping of `docker inspect` and nothing else. It never raises:
a state it does not know, or a malformed one, is an error with reason `unknown_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    RUNNING = "running"
    STARTING = "starting"
    STOPPED = "stopped"
    ERROR = "error"


REASON_MISSING = "missing"
REASON_CREATED = "created"
REASON_HEALTH_STARTING = "health_starting"
REASON_UNHEALTHY = "unhealthy"
REASON_RESTARTING = "restarting"
REASON_PAUSED = "paused"
REASON_EXITED = "exited"
REASON_OOM_KILLED = "oom_killed"
REASON_DEAD = "dead"
REASON_REMOVING = "removing"
REASON_ENGINE_UNREACHABLE = "engine_unreachable"
REASON_UNKNOWN_STATE = "unknown_state"
# Reasons the agent adds on top of Docker's view.
REASON_AMBIGUOUS = "ambiguous"
REASON_GAVE_UP = "gave_up"
REASON_HELD = "held"
REASON_MANUAL_STOP = "manual_stop"
REASON_PROBE_FAILED = "probe_failed"
REASON_HOST_PRESSURE = "host_pressure"
# The container is not the agent's to stop and start (a Swarm task): observed only.
REASON_NOT_HEALABLE = "not_healable"
# What it needs (a depends_on service, its network parent) is down: healing it cannot help.
REASON_DEPENDENCY_DOWN = "dependency_down"
# The agent's state file cannot be written (a full or read-only filesystem): no heal stops
# anything until it can, since a stop whose intent is not on disk could be left down.
REASON_STATE_UNWRITABLE = "state_unwritable"


def classify_state(state: Mapping[str, Any] | None) -> tuple[Status, str | None]:
    """Map `docker inspect`'s State (None when there is no container) to (Status, reason)."""
    if state is None:
        return Status.STOPPED, REASON_MISSING
    try:
        return _classify(state)
    except (AttributeError, TypeError, ValueError):
        return Status.ERROR, REASON_UNKNOWN_STATE


def _classify(state: Mapping[str, Any]) -> tuple[Status, str | None]:
    name = state.get("Status")
    if name == "running":
        if state.get("Paused"):
            return Status.STOPPED, REASON_PAUSED
        if state.get("Restarting"):
            return Status.STARTING, REASON_RESTARTING
        health = (state.get("Health") or {}).get("Status")
        if health == "starting":
            return Status.STARTING, REASON_HEALTH_STARTING
        if health == "unhealthy":
            return Status.ERROR, REASON_UNHEALTHY
        if health in (None, "", "none", "healthy"):
            return Status.RUNNING, None
        return Status.ERROR, REASON_UNKNOWN_STATE
    if name == "exited":
        if state.get("OOMKilled"):
            return Status.ERROR, REASON_OOM_KILLED
        if int(state.get("ExitCode") or 0) != 0:
            return Status.ERROR, REASON_EXITED
        return Status.STOPPED, REASON_EXITED
    simple = {
        "created": (Status.STOPPED, REASON_CREATED),
        "restarting": (Status.STARTING, REASON_RESTARTING),
        "paused": (Status.STOPPED, REASON_PAUSED),
        "dead": (Status.ERROR, REASON_DEAD),
        "removing": (Status.STOPPED, REASON_REMOVING),
    }
    return simple.get(name, (Status.ERROR, REASON_UNKNOWN_STATE))
