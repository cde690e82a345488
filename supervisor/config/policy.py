"""The policy schema (version 1): parsing durations, loading one file or a whole directory.

Every problem is a PolicyError naming the file, the line and the dotted field. This module
reads files but has no other I/O: it never talks to Docker, never sleeps, never logs. The CLI's
`validate` and the agent use exactly the same loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PolicyError, PolicyErrors
from .keys import NOTIFY, POLICY
from .model import (
    COMPOSE_SCOPES,
    NOTIFY_EVENTS,
    BackoffPolicy,
    CheckPolicy,
    ComposeRef,
    HealPolicy,
    Match,
    NotifyPolicy,
    Policy,
    ProbePolicy,
)
from .source import _read_yaml, _Section, _Source
from .trust import chain_problem, command_path, compose_inputs, permission_problem
from .values import POLICY_SUFFIXES


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
