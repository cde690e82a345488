"""The policy format, key by key (what the loader reads and `docker-supervisor schema`
prints as a JSON Schema)."""

from __future__ import annotations

from typing import Any

from .model import DEPENDENTS, SCOPES
from .values import (
    Key,
    Keys,
    _argv,
    _duration_above_zero,
    _host,
    _http_url,
    _int_at_least,
    _labels,
    _notify_events,
    _number_in,
    _one_of,
    _port,
    _reasons,
    _selector,
    _service_name,
    _status_range,
    _string,
    _url_path,
    parse_duration,
)

_DURATION = "a duration: 500ms, 10s, 5m, 1h, 1h30m, or plain seconds"
NOTIFY = Keys(
    {
        "on": Key(_notify_events, "which events notify", (["heal.gave_up", "heal.failed"],)),
        "command": Key(
            _argv,
            "a program and its arguments, run without a shell, with the event in SUPERVISOR_* "
            "variables",
            (["/usr/local/bin/page-oncall", "--team", "ops"],),
        ),
        "webhook": Key(
            _http_url,
            "an http(s) URL that gets the event as a JSON POST (redirects are not followed)",
            ("http://127.0.0.1:9095/alerts",),
        ),
        "timeout": Key(_duration_above_zero, f"cut a command or webhook after this; {_DURATION}"),
    },
    "who hears of give-ups, recoveries and failures: a command, a webhook, or both",
    any_of=(("command", "webhook"), "expected a command, a webhook, or both"),
)
PROBE = Keys(
    {
        "http": Keys(
            {
                "url": Key(_http_url, "probe this URL", ("http://127.0.0.1:8080/health",)),
                "port": Key(_port, "probe this port of the container's address", (8080,)),
                "path": Key(_url_path, "the path asked for with port (default /)", ("/health",)),
                "host": Key(_host, "the host to ask instead of the container's address"),
                "status": Key(_status_range, "the statuses that pass (default 200-399)", ("200",)),
            },
            "an HTTP GET that passes on a status in range",
            one_of=(("url", "port"), "expected either url, or port (with path and host)"),
        ),
        "tcp": Keys(
            {
                "host": Key(_host, "the host to connect to instead of the container's address"),
                "port": Key(_port, "the port to connect to", (5432,)),
            },
            "a TCP connect that passes when it is accepted",
            required={"port": "required"},
        ),
        "exec": Key(_argv, "a command run in the container, passing on exit 0", (["pg_isready"],)),
        "timeout": Key(_duration_above_zero, f"each probe's limit (default 1s); {_DURATION}"),
        "period": Key(_duration_above_zero, f"between probes (default 10s); {_DURATION}"),
        "initial_delay": Key(parse_duration, f"after a start, before probing; {_DURATION}"),
        "failure_threshold": Key(_int_at_least(1), "failures in a row that fail it (default 3)"),
        "success_threshold": Key(_int_at_least(1), "passes in a row that pass it (default 1)"),
    },
    "an agent-side probe, with Kubernetes' semantics: exactly one of http, tcp, exec",
    one_of=(("http", "tcp", "exec"), "expected exactly one of http, tcp, exec"),
)
POLICY = Keys(
    {
        "service": Key(
            _service_name,
            "the service's name, unique in the directory (a selector policy's own name)",
            ("web", "db-1"),
        ),
        "match": Keys(
            {
                "compose_service": Key(
                    _string, "the container's com.docker.compose.service label", ("web",)
                ),
                "label": Key(
                    _labels, "labels the container carries, all of them", ({"app": "web"},)
                ),
                "name": Key(_string, "a part of the container's name (an exact name wins)"),
                "port": Key(_port, "a port the container publishes or exposes", (8080,)),
                "selector": Key(
                    _selector,
                    "every container carrying these labels (or all) is a service of its "
                    "own, named after its compose service or container name",
                    ({"autoheal": "true"}, "all"),
                ),
            },
            "how the container is found: the keys are tried in this order",
            any_of=(
                ("compose_service", "label", "name", "port", "selector"),
                "expected at least one of compose_service, label, name, port, selector",
            ),
            alone=("selector", "a selector stands alone: remove the other match keys"),
        ),
        "compose": Keys(
            {
                "file": Key(
                    _string,
                    "the compose file, relative to this policy; it must exist",
                    ("../compose/demo/compose.yml",),
                ),
                "project": Key(_service_name, "the compose project name", ("demo",)),
            },
            "the service's compose file: for heal.scope compose or project, start and stop",
            required={"file": "required"},
        ),
        "check": Keys(
            {
                "interval": Key(_duration_above_zero, f"between checks (default 10s); {_DURATION}"),
                "grace": Key(
                    parse_duration, f"no healing this long after a start (default 0s); {_DURATION}"
                ),
                "failures": Key(_int_at_least(1), "bad checks in a row before healing (default 1)"),
                "probe": PROBE,
            },
            "how often the service is looked at, and how patiently",
        ),
        "heal": Keys(
            {
                "on": Key(
                    _reasons,
                    "the reasons that heal (default [unhealthy]); exited means a non-zero exit",
                    (["unhealthy", "exited"],),
                ),
                "scope": Key(
                    _one_of(SCOPES),
                    "what a heal stops: container (default), compose (the service's "
                    "containers), project (the whole compose project)",
                ),
                "stop_timeout": Key(
                    parse_duration,
                    "before SIGKILL, rounded up to whole seconds (default: the container's own "
                    f"stop_grace_period or --stop-timeout, else Docker's 10s); {_DURATION}",
                ),
                "pause": Key(parse_duration, f"between stop and start (default 2s); {_DURATION}"),
                "ready_timeout": Key(
                    _duration_above_zero, f"to become healthy (default 120s); {_DURATION}"
                ),
                "backoff": Keys(
                    {
                        "initial": Key(
                            parse_duration, f"before attempt 2 (default 10s); {_DURATION}"
                        ),
                        "factor": Key(_number_in(1, 100), "each attempt waits this times more (2)"),
                        "max": Key(parse_duration, f"the longest wait (default 5m); {_DURATION}"),
                        "jitter": Key(_number_in(0, 1, high_open=True), "spread, +-(0.1)"),
                    },
                    "attempt n >= 2 waits min(initial * factor ** (n - 2), max), +-jitter",
                ),
                "max_restarts": Key(_int_at_least(1), "attempts allowed inside window (default 5)"),
                "window": Key(
                    _duration_above_zero, f"the restart budget's window (10m); {_DURATION}"
                ),
                "reset_after": Key(
                    parse_duration, f"healthy this long resets the backoff (10m); {_DURATION}"
                ),
                "dependents": Key(
                    _one_of(DEPENDENTS), "restart: restart what depends on it after a recovery"
                ),
            },
            "how the service is healed: stop, pause, start, wait for health, back off, give up",
        ),
        "notify": NOTIFY,
    },
    "one service's policy for docker-supervisor",
    required={"service": "required", "match": "required: how to find the container"},
)


def json_schema() -> dict[str, Any]:
    """The policy format as a JSON Schema (2020-12), made from POLICY."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "docker-supervisor policy",
        **_keys_schema(POLICY, top=True),
    }


def _keys_schema(spec: Keys, top: bool = False) -> dict[str, Any]:
    # An empty section (`check:`) is read as no keys at all, unless it needs some.
    empty_ok = not (top or spec.required or spec.any_of or spec.one_of)
    out: dict[str, Any] = {
        "type": ["object", "null"] if empty_ok else "object",
        "description": spec.help,
        "properties": {
            name: _keys_schema(item) if isinstance(item, Keys) else _key_schema(item)
            for name, item in spec.keys.items()
        },
        "additionalProperties": False,
    }
    if spec.required:
        out["required"] = list(spec.required)
    if spec.any_of:
        out["anyOf"] = [{"required": [k]} for k in spec.any_of[0]]
    if spec.one_of:
        out["oneOf"] = [{"required": [k]} for k in spec.one_of[0]]
    if spec.alone:
        out["if"] = {"required": [spec.alone[0]]}
        out["then"] = {"maxProperties": 1}
    return out


def _key_schema(key: Key) -> dict[str, Any]:
    out = {"description": key.help, **key.parse.schema}  # type: ignore[attr-defined]
    if key.examples:
        out["examples"] = list(key.examples)
    return out
