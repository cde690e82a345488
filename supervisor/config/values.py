"""How each value of a policy is read (the parsers a key names), each carrying its JSON
Schema, and durations. The config package's own: keys.py and the loader use them."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .model import HEALABLE_REASONS, NOTIFY_EVENTS

MAX_FILE_BYTES = 1024 * 1024
MAX_DURATION_S = 366 * 24 * 3600.0
POLICY_SUFFIXES = (".yaml", ".yml")
MAX_FLOW_DEPTH = 64
_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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
