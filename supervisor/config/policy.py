"""The policy schema (version 1): parsing durations, loading one file or a whole directory.

Every problem is a PolicyError naming the file, the line and the dotted field. This module
reads files but has no other I/O: it never talks to Docker, never sleeps, never logs. The CLI's
`validate` and the agent use exactly the same loader.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..errors import PolicyError, PolicyErrors
from .trust import chain_problem, command_path, compose_inputs, permission_problem

MAX_FILE_BYTES = 1024 * 1024
MAX_DURATION_S = 366 * 24 * 3600.0
POLICY_SUFFIXES = (".yaml", ".yml")
MAX_FLOW_DEPTH = 64

HEALABLE_REASONS = ("unhealthy", "exited", "oom_killed", "dead", "missing")
SCOPES = ("container", "compose", "project")
COMPOSE_SCOPES = frozenset({"compose", "project"})
DEPENDENTS = ("none", "restart")

_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


@dataclass(frozen=True)
class Key:
    """One key of the policy format: the parser the loader reads it with (whose `schema`
    says the same in JSON Schema), what it means, and examples (editors show them)."""

    parse: Callable[[Any], Any]
    help: str
    examples: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Keys:
    """A mapping of the policy format: its keys in order, the required ones (with what the
    loader says when one is missing), and keys of which at least one, or exactly one, must
    be there (with what it says otherwise)."""

    keys: Mapping[str, Key | Keys]
    help: str
    required: Mapping[str, str] = field(default_factory=dict)
    any_of: tuple[tuple[str, ...], str] | None = None
    one_of: tuple[tuple[str, ...], str] | None = None
    alone: tuple[str, str] | None = None  # a key that admits no sibling, and what is said


def _schema(fragment: dict[str, Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach a parser's JSON Schema: what it accepts, as far as JSON Schema can say it."""

    def attach(parse: Callable[..., Any]) -> Callable[..., Any]:
        parse.schema = fragment  # type: ignore[attr-defined]
        return parse

    return attach


# A duration: plain seconds, or units (the loader also bounds it to 366 days).
_DURATION_TEXT = r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h))+)\s*$"
DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 366 * 24 * 3600},
        {"type": "string", "pattern": _DURATION_TEXT},
    ],
}


@_schema(DURATION_SCHEMA)
def parse_duration(value: Any) -> float:
    """Return seconds for `500ms`, `10s`, `5m`, `1h`, `1h30m` or a plain non-negative number.

    Raises ValueError with the message the policy error shows.
    """
    seconds = _duration_s(value)
    if seconds is None:
        raise ValueError(f"expected a duration like 30s, got {value!r}")
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"expected a duration from 0 to 366 days, got {value!r}")
    return seconds


def _duration_s(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value == value else None  # NaN is no duration
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text and all(c.isdigit() or c == "." for c in text) and text.count(".") <= 1:
        return float(text)
    pos, total = 0, 0.0
    for found in _DURATION_RE.finditer(text):
        if found.start() != pos:
            break
        total += float(found.group(1)) * _UNIT_S[found.group(2)]
        pos = found.end()
    return total if text and pos == len(text) else None


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 `on:` (a schema key) would be True."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Source:
    """One policy file's text, its YAML node tree, and where each field sits."""

    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display
        self.lines: dict[tuple[str, ...], int] = {}
        self.problems: list[PolicyError] = []

    def line_of(self, path: tuple[str, ...]) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: tuple[str, ...], message: str) -> PolicyError:
        return PolicyError(self.display, self.line_of(path), ".".join(path) or None, message)

    def index(self, node: yaml.Node, path: tuple[str, ...] = (), seen: set[int] | None = None):
        """Record each mapping key's line; report duplicate keys. Visits each node once."""
        seen = set() if seen is None else seen
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = (*path, key)
                if key in keys:
                    self.problems.append(
                        PolicyError(
                            self.display,
                            key_node.start_mark.line + 1,
                            ".".join(sub),
                            "duplicate key",
                        )
                    )
                keys.add(key)
                self.lines.setdefault(sub, key_node.start_mark.line + 1)
                self.index(value_node, sub, seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines.setdefault((*path, str(i)), item.start_mark.line + 1)
                self.index(item, (*path, str(i)), seen)


def _read_yaml(src: _Source) -> Any:
    try:
        raw = src.path.read_bytes()
    except OSError as e:
        raise PolicyError(src.display, None, None, f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyError(src.display, None, None, f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(src.display, 1, None, "not UTF-8 text") from None
    _check_nesting(src, text)
    loader = None
    try:
        loader = _Loader(text)  # the reader checks the characters here already
        node = loader.get_single_node()
        if node is None:
            raise PolicyError(src.display, 1, None, "empty file: expected a mapping")
        src.index(node)
        if src.problems:
            raise src.problems[0]
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise PolicyError(src.display, line, None, f"invalid YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise PolicyError(src.display, 1, None, f"invalid YAML: {e}") from None
    except RecursionError:
        raise PolicyError(src.display, 1, None, "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_nesting(src: _Source, text: str) -> None:
    """Refuse flow collections nested deeper than MAX_FLOW_DEPTH before parsing: PyYAML's
    scanner is quadratic in that depth and its composer recursive, so a few kilobytes of
    brackets would take seconds. Quoted scalars and comments are skipped; a bracket in a
    plain scalar may count, which no real policy comes near."""
    depth, quote, line = 0, "", 1
    previous = "\n"
    for char in text:
        if char == "\n":
            line += 1
            if quote == "#":
                quote = ""
        elif quote:
            if char == quote and quote != "#":
                quote = ""
        elif char in "'\"" or (char == "#" and previous in " \t\n"):
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                raise PolicyError(src.display, line, None, "invalid YAML: nested too deeply")
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char


class _Section:
    """A mapping at `path`, read as its `Keys` say: no unknown key, the required ones there,
    and each value through its key's parser."""

    def __init__(self, src: _Source, path: tuple[str, ...], value: Any, spec: Keys):
        self.src, self.path, self.spec = src, path, spec
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise src.error(path, f"expected a mapping, got {_describe(value)}")
        allowed = tuple(spec.keys)
        for key in value:
            if key not in allowed:
                raise src.error(
                    (*path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})"
                )
        self.value = value
        for key, message in spec.required.items():
            if key not in value:
                raise src.error((*path, key), message)
        if spec.any_of and not any(k in value for k in spec.any_of[0]):
            raise src.error(path, spec.any_of[1])
        if spec.one_of and sum(k in value for k in spec.one_of[0]) != 1:
            raise src.error(path, spec.one_of[1])
        if spec.alone and spec.alone[0] in value and len(value) > 1:
            raise src.error((*path, spec.alone[0]), spec.alone[1])

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.value:
            return default
        try:
            return self.spec.keys[key].parse(self.value[key])
        except ValueError as e:
            raise self.src.error((*self.path, key), str(e)) from None

    def section(self, key: str) -> _Section:
        return _Section(self.src, (*self.path, key), self.value.get(key), self.spec.keys[key])


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, dict) else "a mapping"


@_schema({"type": "string", "minLength": 1})
def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {_describe(value)}")
    return value


@_schema({"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$"})
def _service_name(value: Any) -> str:
    if not isinstance(value, str) or not _SERVICE_RE.fullmatch(value):
        raise ValueError(f"expected a name like web or db-1 ([a-z0-9][a-z0-9_.-]*), got {value!r}")
    return value


def _int_at_least(low: int) -> Callable[[Any], int]:
    @_schema({"type": "integer", "minimum": low})
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"expected a whole number >= {low}, got {value!r}")
        return value

    return parse


def _number_in(low: float, high: float, high_open: bool = False) -> Callable[[Any], float]:
    upper = "exclusiveMaximum" if high_open else "maximum"

    @_schema({"type": "number", "minimum": low, upper: high})
    def parse(value: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and (value < low or value > high or (high_open and value == high)):
            ok = False
        if not ok:
            upper = f"below {high:g}" if high_open else f"at most {high:g}"
            raise ValueError(f"expected a number from {low:g} and {upper}, got {value!r}")
        return float(value)

    return parse


@_schema(
    {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": 366 * 24 * 3600},
            {"type": "string", "pattern": "(?=.*[1-9])" + _DURATION_TEXT},
        ],
    }
)
def _duration_above_zero(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration above 0, got {value!r}")
    return seconds


@_schema({"type": "integer", "minimum": 1, "maximum": 65535})
def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"expected a port number from 1 to 65535, got {value!r}")
    return value


@_schema(
    {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"type": "string"},
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }
)
def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of label names to values, got {_describe(value)}")
    if not value:
        raise ValueError("expected at least one label: value")
    labels = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, dict | list) or item is None:
            raise ValueError(f"expected label: value strings, got {key!r}: {item!r}")
        labels[key] = item if isinstance(item, str) else str(item).lower()
    return labels


@_schema({"oneOf": [{"const": "all"}, _labels.schema]})  # type: ignore[attr-defined]
def _selector(value: Any) -> dict[str, str]:
    if value == "all":
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected all, or a mapping of label names to values, got {value!r}")
    return _labels(value)


@_schema({"type": "array", "items": {"enum": list(HEALABLE_REASONS)}})
def _reasons(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of reasons, got {_describe(value)}")
    for item in value:
        if item not in HEALABLE_REASONS:
            raise ValueError(f"expected reasons from {', '.join(HEALABLE_REASONS)}, got {item!r}")
    return frozenset(value)


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    @_schema({"enum": list(choices)})
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def parse_policy(src: _Source, data: Any) -> Policy:
    """Build a Policy from a file's parsed YAML, raising the first PolicyError found."""
    top = _Section(src, (), data, POLICY)
    service = top.get("service")
    m = top.section("match")
    match = Match(
        compose_service=m.get("compose_service"),
        labels=m.get("label", {}),
        name=m.get("name"),
        port=m.get("port"),
        selector=m.get("selector"),
    )

    compose = None
    if "compose" in top.value:
        c = top.section("compose")
        file = (src.path.parent / c.get("file")).resolve()
        if not file.is_file():
            raise src.error(("compose", "file"), f"no such file: {file}")
        compose = ComposeRef(file=file, project=c.get("project"))

    ck = top.section("check")
    check = CheckPolicy(
        interval_s=ck.get("interval", CheckPolicy.interval_s),
        grace_s=ck.get("grace", CheckPolicy.grace_s),
        failures=ck.get("failures", CheckPolicy.failures),
        probe=parse_probe(ck) if "probe" in ck.value else None,
    )

    h = top.section("heal")
    b = h.section("backoff")
    defaults = BackoffPolicy()
    backoff = BackoffPolicy(
        initial_s=b.get("initial", defaults.initial_s),
        factor=b.get("factor", defaults.factor),
        max_s=b.get("max", defaults.max_s),
        jitter=b.get("jitter", defaults.jitter),
    )
    if backoff.max_s < backoff.initial_s:
        raise src.error(("heal", "backoff", "max"), "must be at least heal.backoff.initial")
    hd = HealPolicy()
    heal = HealPolicy(
        on=h.get("on", hd.on),
        scope=h.get("scope", hd.scope),
        stop_timeout_s=h.get("stop_timeout", hd.stop_timeout_s),
        pause_s=h.get("pause", hd.pause_s),
        ready_timeout_s=h.get("ready_timeout", hd.ready_timeout_s),
        backoff=backoff,
        max_restarts=h.get("max_restarts", hd.max_restarts),
        window_s=h.get("window", hd.window_s),
        reset_after_s=h.get("reset_after", hd.reset_after_s),
        dependents=h.get("dependents", hd.dependents),
    )
    if heal.scope in COMPOSE_SCOPES and compose is None:
        raise src.error(
            ("heal", "scope"), f"scope {heal.scope} needs a compose section with a file"
        )
    if "missing" in heal.on and heal.scope not in COMPOSE_SCOPES:
        # Only compose can create a container that no longer exists.
        raise src.error(("heal", "on"), "healing 'missing' needs heal.scope compose or project")
    if "missing" in heal.on and heal.scope == "compose" and match.compose_service is None:
        # A missing container carries no label to say which compose service it was.
        raise src.error(
            ("heal", "on"),
            "healing 'missing' with scope compose needs match.compose_service "
            "(the service to create), or scope project",
        )
    if "missing" in heal.on and match.selector is not None:
        # A selector's service ends with its container: nothing says what to create.
        raise src.error(("heal", "on"), "a selector policy cannot heal 'missing'")
    notify = parse_notify(top.section("notify")) if "notify" in top.value else None
    return Policy(
        service=service,
        match=match,
        compose=compose,
        check=check,
        heal=heal,
        notify=notify,
        source=src.path,
    )


def parse_probe(check: _Section) -> ProbePolicy:
    p = check.section("probe")
    kind = next(k for k in ("http", "tcp", "exec") if k in p.value)
    common = dict(
        timeout_s=p.get("timeout", 1.0),
        period_s=p.get("period", 10.0),
        initial_delay_s=p.get("initial_delay", 0.0),
        failure_threshold=p.get("failure_threshold", 3),
        success_threshold=p.get("success_threshold", 1),
    )
    if common["timeout_s"] > common["period_s"]:
        raise p.src.error((*p.path, "timeout"), "must be at most check.probe.period")
    if kind == "exec":
        return ProbePolicy("exec", command=p.get("exec"), **common)
    if kind == "tcp":
        t = p.section("tcp")
        return ProbePolicy("tcp", host=t.get("host"), port=t.get("port"), **common)
    h = p.section("http")
    low, high = h.get("status", (200, 399))
    return ProbePolicy(
        "http",
        url=h.get("url"),
        port=h.get("port"),
        path=h.get("path", "/"),
        host=h.get("host"),
        status_low=low,
        status_high=high,
        **common,
    )


def parse_notify(n: _Section) -> NotifyPolicy:
    return NotifyPolicy(
        on=n.get("on", frozenset(NOTIFY_EVENTS)),
        command=n.get("command", ()),
        webhook=n.get("webhook"),
        timeout_s=n.get("timeout", 10.0),
    )


def load_notify_file(path: Path | str, strict: bool = True) -> NotifyPolicy:
    """The agent-wide default `notify` section, from its own YAML file (--notify FILE)."""
    path = Path(path)
    if strict and (problem := check_permissions(path)):
        raise problem
    src = _Source(path, str(path))
    notify = parse_notify(_Section(src, (), _read_yaml(src), NOTIFY))
    if strict and (problem := _command_problem(notify)):
        raise PolicyError(str(path), src.line_of(("command",)), "command", problem)
    return notify


@_schema({"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}})
def _argv(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x for x in value):
        raise ValueError(f"expected a command as a list of strings (no shell), got {value!r}")
    return tuple(value)


@_schema({"type": "string", "pattern": r"^https?://[^\s/]+(/\S*)?$"})
def _http_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    try:
        host = urlsplit(value).hostname
        urlsplit(value).port  # noqa: B018 - raises for a port out of range
    except ValueError as e:
        raise ValueError(f"{value!r} is not a URL a probe can reach: {e}") from None
    _host(host)
    return value


_HOST_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"


@_schema({"type": "string", "minLength": 1, "maxLength": 253})
def _host(value: Any) -> str:
    """A host a resolver accepts: an IP address, or a name of labels of 1 to 63 characters
    (IDNA for non-ASCII), 253 at most: a probe to anything else could never run."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a host name or address, got {_describe(value)}")
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value.strip("[]"))
        return value
    try:
        name = value.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise ValueError(f"{value!r} is not a host name a resolver accepts ({e})") from None
    if len(name) > 253 or not re.fullmatch(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*\.?", name):
        raise ValueError(f"{value!r} is not a host name a resolver accepts")
    return value


@_schema({"type": "string", "pattern": "^/"})
def _url_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"expected a path starting with /, got {value!r}")
    return value


@_schema(
    {
        "anyOf": [
            {"type": "integer", "minimum": 100, "maximum": 599},
            {"type": "string", "pattern": "^[1-5][0-9]{2}(-[1-5][0-9]{2})?$"},
        ],
    }
)
def _status_range(value: Any) -> tuple[int, int]:
    text = str(value)
    found = re.fullmatch(r"(\d{3})(?:-(\d{3}))?", text)
    if isinstance(value, bool) or not found:
        raise ValueError(f"expected a status like 200 or 200-399, got {value!r}")
    low = int(found.group(1))
    high = int(found.group(2) or low)
    if not 100 <= low <= high <= 599:
        raise ValueError(f"expected a status range within 100-599, got {value!r}")
    return low, high


@_schema({"type": "array", "items": {"enum": list(NOTIFY_EVENTS)}})
def _notify_events(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(x in NOTIFY_EVENTS for x in value):
        raise ValueError(f"expected events from {', '.join(NOTIFY_EVENTS)}, got {value!r}")
    return frozenset(value)


# The policy format, once: the loader reads every file through it, and `schema` (the JSON
# Schema editors use) is made from it. Rules across keys and files (a compose file that
# exists, scope compose needing a compose section, timeout <= period) are the loader's alone.
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


def load_policy_file(path: Path | str, display: str | None = None) -> Policy:
    """Load and validate one policy file; raise PolicyError."""
    path = Path(path)
    src = _Source(path, display or str(path))
    return parse_policy(src, _read_yaml(src))


@dataclass
class LoadResult:
    policies: list[Policy]
    errors: list[PolicyError]


def list_policy_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES and not p.name.startswith(".")
    )


def check_permissions(path: Path) -> PolicyError | None:
    """Policies can run commands as the agent: like sshd's StrictModes, refuse a file or
    directory that others may write, or that belongs to someone but root or us."""
    problem = permission_problem(path)
    return None if problem is None else PolicyError(str(path), None, None, problem)


def check_what_runs(policy: Policy, path: Path) -> PolicyError | None:
    """What the agent runs as root for this policy must be as trusted as the policy: the
    compose file with every file compose reads for it, the notify command, and every
    directory above them. The first problem, at the policy's field."""
    if policy.compose is not None:
        for file, how in compose_inputs(policy.compose.file):
            if problem := chain_problem(file):
                line = _line(path, ("compose", "file"))
                return PolicyError(str(path), line, "compose.file", f"{problem}{how}")
    if policy.notify is not None and (problem := _command_problem(policy.notify)):
        return PolicyError(str(path), _line(path, ("notify", "command")), "notify.command", problem)
    return None


def _command_problem(notify: NotifyPolicy) -> str | None:
    if not notify.command:
        return None
    program = command_path(notify.command[0])
    if program is None:
        return None  # not found: the notification fails and says so, as before
    return chain_problem(program)


def load_policy_dir(directory: Path | str, strict: bool = True) -> LoadResult:
    """Load every policy file in `directory`, collecting all problems instead of stopping.

    A file that fails, or that repeats a service name already taken, is left out of
    `policies` and reported in `errors`; its valid siblings still load. With `strict`, the
    directory and each file must pass `check_permissions`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return LoadResult([], [PolicyError(str(directory), None, None, "no such directory")])
    if strict and (problem := check_permissions(directory)):
        return LoadResult([], [problem])
    files = list_policy_files(directory)
    if not files:
        message = "no policy files (*.yaml, *.yml)"
        return LoadResult([], [PolicyError(str(directory), None, None, message)])
    policies: list[Policy] = []
    errors: list[PolicyError] = []
    taken: dict[str, Policy] = {}
    for path in files:
        try:
            if strict and (problem := check_permissions(path)):
                raise problem
            policy = load_policy_file(path)
            if strict and (problem := check_what_runs(policy, path)):
                raise problem
        except PolicyError as e:
            errors.append(e)
            continue
        if policy.service in taken:
            first = taken[policy.service].source
            errors.append(
                PolicyError(
                    str(path),
                    _service_line(path),
                    "service",
                    f"{policy.service!r} is already defined in {first}",
                )
            )
            continue
        taken[policy.service] = policy
        policies.append(policy)
    return LoadResult(policies, errors)


def load_policies(directory: Path | str, strict: bool = True) -> list[Policy]:
    """Load a policies directory; raise PolicyErrors listing every problem if any file is bad."""
    result = load_policy_dir(directory, strict)
    if result.errors:
        raise PolicyErrors(result.errors)
    return result.policies


def _service_line(path: Path) -> int:
    return _line(path, ("service",))


def field_line(path: Path, field_path: tuple[str, ...]) -> int:
    """The line of a field in a policy file (the nearest enclosing key's when absent)."""
    return _line(path, field_path)


def _line(path: Path, field_path: tuple[str, ...]) -> int:
    src = _Source(path, str(path))
    _read_yaml(src)
    return src.line_of(field_path)
