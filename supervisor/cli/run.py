"""`run` (the agent, until a signal ends it) and `validate`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config.model import Policy
from ..config.policy import load_notify_file, load_policies, load_policy_dir
from ..errors import (
    PolicyError,
    SupervisorError,
)
from ..logs import SaidOnce, log_event
from .parser import BEAT_S, EXIT_BAD_INPUT, EXIT_OK, _strict


def cmd_run(args: argparse.Namespace) -> int:
    from ..agent import Agent
    from ..publish.metrics import parse_metrics_addr
    from ..store.commands import lock_state_dir
    from ..store.state import default_state_dir

    metrics_addr = parse_metrics_addr(args.metrics_addr) if args.metrics_addr else None
    policies = load_policies(args.policies, _strict(args))
    notify_default = load_notify_file(args.notify, _strict(args)) if args.notify else None
    if args.insecure_policies:
        log_event(
            logging.getLogger("supervisor.cli"),
            logging.WARNING,
            "policy.insecure",
            "--insecure-policies: policy files that others may write are accepted",
        )
    state_dir = args.state_dir or default_state_dir()
    lock = lock_state_dir(state_dir, _strict(args))
    # Signals are taken by the main loop (sigtimedwait), never by a handler: nothing runs
    # between two bytecodes of whatever the main thread was doing. Blocked before any
    # thread starts, so every thread inherits the mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    agent = Agent(
        policies,
        state_dir=state_dir,
        compose_bin=args.compose_bin,
        compose_timeout_s=args.compose_timeout,
        heal_concurrency=args.heal_concurrency,
        relist_s=args.relist_interval,
        metrics_addr=metrics_addr,
        dry_run=args.dry_run,
        notify_default=notify_default,
        pressure=None if args.no_pressure_guard else _thresholds(args),
    )
    try:
        agent.start()
        _serve(agent, args, state_dir)
    finally:
        agent.stop()
        lock.close()
    return EXIT_OK


SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


def _thresholds(args: argparse.Namespace) -> Any:
    from ..core.pressure import Thresholds

    return Thresholds(
        cpu_pct=args.pressure_cpu,
        memory_pct=args.pressure_memory,
        io_pct=args.pressure_io,
        load_per_core=args.pressure_load,
        storm_share=args.storm_share,
        max_defer_s=args.pressure_max_defer,
    )


def _serve(agent: Any, args: argparse.Namespace, state_dir: Path) -> None:
    """The main loop: signals and operator commands, one beat at a time, until a stop."""
    from ..store.commands import answer_command, pending_commands

    taken: set[Path] = set()
    told: dict[str, SaidOnce] = {}  # what each part raised, said once per cause

    def guarded(part: str, step: Callable[[], None]) -> None:
        """One part of a beat; what it raises (a policy file replaced while read,
        `commands/` replaced by a file) is said once per cause, and the agent goes on with
        what it runs: the unit would not start it again after an exit 2."""
        try:
            step()
        except Exception as e:
            what = f"{part} failed; the agent goes on as it was"
            said = told.setdefault(part, SaidOnce())
            said.say(logging.getLogger("supervisor.cli"), "agent.loop_error", what, e, part=part)
        else:
            told.pop(part, None)

    def reload() -> None:
        agent.reload(load_policy_dir(args.policies, _strict(args)), args.policies)

    def take_commands() -> None:
        nonlocal taken
        for path, command in pending_commands(state_dir):
            if path in taken:
                continue  # posted; its file goes once the worker took it
            if isinstance(command, str):
                log_event(
                    logging.getLogger("supervisor.cli"),
                    logging.WARNING,
                    "command.invalid",
                    "operator command refused",
                    path=str(path),
                    error=command,
                )
                answer_command(path, f"not a command: {command}")
                continue
            taken.add(path)
            agent.apply_command(
                command, lambda refused=None, path=path: answer_command(path, refused)
            )
        taken = {path for path in taken if path.exists()}

    while True:
        got = signal.sigtimedwait(SIGNALS, BEAT_S)
        if got is not None and got.si_signo in (signal.SIGTERM, signal.SIGINT):
            return
        if got is not None and got.si_signo == signal.SIGHUP:
            guarded("reload", reload)
        if got is not None and got.si_signo == signal.SIGUSR1:
            guarded("flush", agent.flush_state)
        guarded("commands", take_commands)


def cmd_validate(args: argparse.Namespace) -> int:
    result = load_policy_dir(args.policies, _strict(args))
    for error in result.errors:
        print(error, file=sys.stderr)
    if result.errors:
        return EXIT_BAD_INPUT
    refused = _other_projects(result.policies)
    for error in refused:
        print(error, file=sys.stderr)
    for policy in result.policies:
        if policy.is_selector:
            labels = ", ".join(f"{k}={v}" for k, v in (policy.match.selector or {}).items())
            print(f"{policy.source}: ok: selector {policy.service} ({labels or 'all'})")
        elif not any(e.file == str(policy.source) for e in refused):
            print(f"{policy.source}: ok: service {policy.service}")
    return EXIT_BAD_INPUT if refused else EXIT_OK


def _other_projects(policies: list[Policy]) -> list[PolicyError]:
    """A policy whose compose file or project is not its container's (the agent would refuse
    to heal it): one error each, at its field. Asked of the engine when it answers; when it
    does not, one note says nothing was checked."""
    from ..config.policy import field_line
    from ..docker.containers import (
        LABEL_COMPOSE_CONFIG_FILES,
        LABEL_COMPOSE_PROJECT,
        observe_in,
        refusal_for,
    )
    from ..docker.engine import Engine

    with_compose = [p for p in policies if p.compose is not None and not p.is_selector]
    if not with_compose:
        return []
    engine = Engine(timeout_s=5.0)
    try:
        containers = engine.list_containers()
    except SupervisorError as e:
        print(
            f"note: the engine did not answer ({e}): compose projects not checked", file=sys.stderr
        )
        return []
    finally:
        engine.close()
    errors = []
    for policy in with_compose:
        container = observe_in(policy, containers).container
        if refusal_for(policy, container) is None or container is None:
            continue
        project = container.labels.get(LABEL_COMPOSE_PROJECT)
        files = container.labels.get(LABEL_COMPOSE_CONFIG_FILES) or "?"
        field = ("compose", "project") if policy.compose.project else ("compose", "file")
        errors.append(
            PolicyError(
                str(policy.source),
                field_line(policy.source, field),
                ".".join(field),
                f"its container {container.name} is of compose project {project!r} "
                f"(from {files}); the agent would refuse to heal it",
            )
        )
    return errors
