"""`migrate autoheal`: docker-autoheal's settings as selector policies.

docker-autoheal is configured by environment variables (in its container, an env file, or
typed on the command line) and by one label per container (`autoheal.stop.timeout`). Each
setting becomes a policy key where one means the same; every other setting becomes a comment
in the written policy, saying what the agent does instead. The written policies are loaded
back through the policy loader before anything is written: what is written validates.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import PolicyError, UsageError
from .policy import load_policy_file

# docker-autoheal's defaults.
DEFAULTS = {
    "AUTOHEAL_CONTAINER_LABEL": "autoheal",
    "AUTOHEAL_INTERVAL": "5",
    "AUTOHEAL_START_PERIOD": "0",
    "AUTOHEAL_DEFAULT_STOP_TIMEOUT": "10",
    "AUTOHEAL_ONLY_MONITOR_RUNNING": "false",
    "WEBHOOK_URL": "",
}
STOP_TIMEOUT_LABEL = "autoheal.stop.timeout"
# Settings with no equivalent, and what the agent does instead.
NO_EQUIVALENT = {
    "DOCKER_SOCK": "the agent reaches the engine through DOCKER_HOST in its unit's environment",
    "CURL_TIMEOUT": "the agent's engine calls have their own timeouts (15 s)",
    "WEBHOOK_JSON_KEY": "the webhook gets the agent's JSON event (event, service, reason, ...)",
    "APPRISE_URL": "use notify.webhook or notify.command (for example the apprise CLI)",
    "POST_RESTART_SCRIPT": "notify.command runs on heal.recovered, heal.failed, heal.gave_up",
}
BETTER = (
    "What changes for the better:",
    "- a restart waits for the container to be healthy again, and backs off (10s doubling to",
    "  5m) instead of restarting it every interval forever;",
    "- a crash loop is given up after 5 restarts in 10 minutes (docker-supervisor reset NAME",
    "  tries again) instead of being fought;",
    "- a container an operator stopped by hand stays stopped; `docker-supervisor pause NAME`",
    "  holds one without touching the others;",
    "- Docker's events are followed: a container turning unhealthy is seen at once.",
)
SCHEMA_LINE = "# yaml-language-server: $schema=../policy.schema.json"

_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")


@dataclass(frozen=True)
class Setting:
    value: str
    where: str  # "defaults", "FILE:LINE", "container NAME", "-e"


@dataclass
class Migration:
    """What docker-autoheal was told, and the policies that do the same."""

    settings: dict[str, Setting]
    timeouts: list[str] = field(default_factory=list)  # autoheal.stop.timeout values found
    labels_read: bool = True  # whether the engine's containers were looked at


def read_env_file(path: Path) -> dict[str, Setting]:
    """VAR=VALUE lines (a docker --env-file or a compose .env); # comments and blank lines
    are skipped; one pair of surrounding quotes is removed."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    found: dict[str, Setting] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _ENV_LINE.fullmatch(line)
        if parsed is None:
            raise UsageError(f"{path}:{number}: expected VAR=VALUE, got {line!r}")
        found[parsed.group(1)] = Setting(_unquote(parsed.group(2)), f"{path}:{number}")
    return found


def read_assignments(pairs: Iterable[str], where: str) -> dict[str, Setting]:
    found: dict[str, Setting] = {}
    for pair in pairs:
        parsed = _ENV_LINE.fullmatch(pair.strip())
        if parsed is None:
            raise UsageError(f"{where}: expected VAR=VALUE, got {pair!r}")
        found[parsed.group(1)] = Setting(_unquote(parsed.group(2)), where)
    return found


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def merged(*layers: Mapping[str, Setting]) -> dict[str, Setting]:
    """Later layers win; autoheal's own defaults under all of them."""
    out = {k: Setting(v, "defaults") for k, v in DEFAULTS.items()}
    for layer in layers:
        out.update(layer)
    return out


def stop_timeouts(containers: Iterable[Any], label: str) -> list[str]:
    """The distinct `autoheal.stop.timeout` values on the containers autoheal would watch."""
    values = set()
    for container in containers:
        labels = container.labels
        if label != "all" and labels.get(label) != "true":
            continue
        if STOP_TIMEOUT_LABEL in labels:
            values.add(labels[STOP_TIMEOUT_LABEL])
    return sorted(values, key=lambda v: (len(v), v))


def policies(migration: Migration) -> dict[str, str]:
    """File name -> policy text. Raises UsageError naming the setting that is wrong."""
    s = migration.settings
    label = s["AUTOHEAL_CONTAINER_LABEL"].value.strip()
    if not label:
        raise _bad(s, "AUTOHEAL_CONTAINER_LABEL", "expected a label name or all")
    interval = _seconds(s, "AUTOHEAL_INTERVAL", low=1)
    start_period = _seconds(s, "AUTOHEAL_START_PERIOD", low=0)
    stop_timeout = _seconds(s, "AUTOHEAL_DEFAULT_STOP_TIMEOUT", low=0)
    only_running = s["AUTOHEAL_ONLY_MONITOR_RUNNING"].value.strip().lower()
    if only_running not in ("true", "false"):
        raise _bad(s, "AUTOHEAL_ONLY_MONITOR_RUNNING", "expected true or false")
    selector: Any = "all" if label == "all" else {label: "true"}
    notes = _notes(migration, label, start_period, only_running)
    base: dict[str, Any] = {
        "service": "autoheal",
        "match": {"selector": selector},
        "check": {"interval": f"{interval}s"},
        "heal": {"on": ["unhealthy"], "stop_timeout": f"{stop_timeout}s"},
    }
    if start_period:
        base["check"]["grace"] = f"{start_period}s"
    webhook = s["WEBHOOK_URL"].value.strip()
    if webhook:
        base["notify"] = {
            "on": ["heal.recovered", "heal.failed", "heal.gave_up"],
            "webhook": webhook,
        }
    out = {"autoheal.yaml": (base, notes)}
    for value in migration.timeouts:
        if not re.fullmatch(r"\d+", value):
            raise UsageError(
                f"a container's label {STOP_TIMEOUT_LABEL}: expected whole seconds, got {value!r}"
            )
        name = f"autoheal-stop-{int(value)}s"
        labels = {} if label == "all" else {label: "true"}
        policy = {
            **base,
            "service": name,
            "match": {"selector": {**labels, STOP_TIMEOUT_LABEL: value}},
            "heal": {**base["heal"], "stop_timeout": f"{int(value)}s"},
        }
        why = [
            f"Containers labelled {STOP_TIMEOUT_LABEL}={value}: the same, stopped within {value}s."
        ]
        out[f"{name}.yaml"] = (policy, why + notes)
    texts = {name: _render(policy, notes) for name, (policy, notes) in out.items()}
    _validate(texts, s)
    return texts


def _notes(migration: Migration, label: str, start_period: int, only_running: str) -> list[str]:
    s = migration.settings
    watched = "every container" if label == "all" else f"every container labelled {label}=true"
    notes = [
        f"From docker-autoheal's settings ({_sources(s)}): {watched},",
        "each its own service, named after its compose service or container name.",
        "",
        *BETTER,
        "",
    ]
    if start_period:
        notes += [
            f"AUTOHEAL_START_PERIOD={start_period}: autoheal waited this long after its own start;",
            "check.grace holds heals this long after each container's start instead.",
        ]
    if only_running == "false":
        notes += [
            "AUTOHEAL_ONLY_MONITOR_RUNNING=false: autoheal also restarted unhealthy containers",
            "that were not running (paused); the agent leaves a paused container alone.",
        ]
    else:
        notes += ["AUTOHEAL_ONLY_MONITOR_RUNNING=true: the same, running containers only."]
    if s["WEBHOOK_URL"].value.strip():
        notes += [
            "WEBHOOK_URL: the webhook gets the agent's JSON event (event, service, reason,",
            'attempt, host, ...), not autoheal\'s {"text": ...}.',
        ]
    for name, setting in sorted(s.items()):
        if name in NO_EQUIVALENT and setting.value:
            notes.append(f"{name}={setting.value}: no equivalent; {NO_EQUIVALENT[name]}.")
        elif name.startswith("AUTOHEAL_") and name not in DEFAULTS and setting.value:
            notes.append(f"{name}={setting.value}: not known to this migration; not carried over.")
    if not migration.labels_read:
        notes.append(
            f"The engine could not be read: containers' {STOP_TIMEOUT_LABEL} labels were not "
            "looked for."
        )
    return notes


def _sources(s: Mapping[str, Setting]) -> str:
    # A file's settings say their line (for errors); here the file is enough.
    origins = {re.sub(r":\d+$", "", v.where) for v in s.values() if v.where != "defaults"}
    return ", ".join(sorted(origins)) or "autoheal's defaults"


def _seconds(s: Mapping[str, Setting], name: str, low: int) -> int:
    text = s[name].value.strip()
    if not re.fullmatch(r"\d+", text) or int(text) < low:
        raise _bad(s, name, f"expected whole seconds >= {low}")
    return int(text)


def _bad(s: Mapping[str, Setting], name: str, expected: str) -> UsageError:
    return UsageError(f"{s[name].where}: {name}: {expected}, got {s[name].value!r}")


def _render(policy: dict[str, Any], notes: list[str]) -> str:
    comments = "\n".join(f"# {line}".rstrip() for line in notes)
    body = yaml.safe_dump(policy, sort_keys=False, default_flow_style=None, width=88)
    return f"{SCHEMA_LINE}\n{comments}\n{body}"


def _validate(texts: Mapping[str, str], s: Mapping[str, Setting]) -> None:
    """Every written policy loads; a value the loader refuses names the setting it came from."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in texts.items():
            path = Path(tmp) / name
            path.write_text(text)
            try:
                load_policy_file(path)
            except PolicyError as e:
                if e.field and e.field.startswith("notify.webhook"):
                    raise _bad(s, "WEBHOOK_URL", "expected an http:// or https:// URL") from None
                raise UsageError(f"the written {name} does not load: {e.message}") from None


def write(texts: Mapping[str, str], directory: Path) -> list[Path]:
    """Write every file, or none: a file already there is never replaced."""
    paths = [directory / name for name in texts]
    for path in paths:
        if path.exists():
            raise UsageError(f"{path}: already exists; move it away or choose another --out")
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory")
    for path in paths:
        path.write_text(texts[path.name])
        path.chmod(0o644)
    return paths
