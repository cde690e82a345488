"""The command line: argparse, and the only place that turns errors into exit codes.

Exit codes: 0 done, 1 the end state was not reached (or the engine is away), 2 bad input
(a policy, a flag, a compose file), always with one clear line and never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import argcomplete

from .. import __version__
from ..config.model import Policy
from ..config.policy import load_notify_file, load_policies, load_policy_dir
from ..config.values import parse_duration
from ..core.gate import HELD_FOREVER
from ..errors import (
    AgentRunning,
    EngineUnreachable,
    PolicyError,
    PolicyErrors,
    SupervisorError,
    UnsafeFile,
    UsageError,
)
from ..logs import SaidOnce, log_event, setup_logging, stream_is_journal
from ..runtime.clock import Clock

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DEFAULT_POLICIES = "/etc/docker-supervisor/policies.d"
BEAT_S = 0.2

DESCRIPTION = """\
Supervise the containers of a Docker host: one YAML policy per service says
how to find its container, how to check it and how to heal it (stop, pause,
start, wait for health, back off, give up on a crash loop). `run` is the
agent; the other commands inspect and steer it."""

EXAMPLES = f"""\
examples:
  docker-supervisor validate policies/          check policies (exit 2 if bad)
  docker-supervisor run --policies policies/ --dry-run
                                                decide and log, act on nothing
  docker-supervisor status                      one row per service
  docker-supervisor pause web --for 30m         watch web, do not heal it
  docker-supervisor reset web                   forget web's give-up, backoff
  docker-supervisor restart web                 stop, pause, start, healthy

Policies: {DEFAULT_POLICIES} unless --policies says.
State: $STATE_DIRECTORY, else /var/lib/docker-supervisor as root.
Exit codes: 0 done, 1 the end state was not reached, 2 bad input."""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Keep the description's and examples' lines as written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, as argparse does, no usage
        raise UsageError(f"{self.prog}: {message}")


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options every command takes; with `suppress`, unset ones leave the main parser's."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--log-level",
        default=default("INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least level logged (default: INFO)",
    )
    parser.add_argument(
        "--compose-bin",
        default=default(None),
        metavar="PATH",
        help="the Compose v2 to run (default: docker compose, then the docker-compose "
        "installed with the agent, then docker-compose on PATH)",
    )
    parser.add_argument(
        "--compose-timeout",
        type=_duration_arg,
        default=default(120.0),
        metavar="DURATION",
        help="cut a compose command after this long (default: 120s)",
    )
    parser.add_argument(
        "--insecure-policies",
        action="store_true",
        default=default(False),
        help="accept policy files others may write (development only; warned at every start)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="docker-supervisor",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, suppress=False)
    # The same options are taken after the command too (`run --compose-bin X`).
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, suppress=True)
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )

    run = sub.add_parser("run", parents=[common], help="run the agent in the foreground")
    _policies_option(run)
    _state_dir_option(run)
    run.add_argument(
        "--heal-concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="heal cycles at once, halved under host pressure; the rest queue (default: 4)",
    )
    pressure = run.add_argument_group(
        "host pressure",
        "heals of services whose health checks time out wait while the host is pressed "
        "(PSI some avg10, or load and memory without PSI) or a storm lasts",
    )
    for flag, default, text in (
        ("--pressure-cpu", 60.0, "pressed at this CPU pressure, %% (default: 60)"),
        ("--pressure-memory", 20.0, "pressed at this memory pressure, %% (default: 20)"),
        ("--pressure-io", 60.0, "pressed at this I/O pressure, %% (default: 60)"),
        ("--pressure-load", 4.0, "without PSI: pressed at this load per core (default: 4)"),
        (
            "--storm-share",
            0.25,
            "a storm: this share of services (and 3) timing out within a minute (default: 0.25)",
        ),
    ):
        pressure.add_argument(flag, type=_non_negative, default=default, metavar="N", help=text)
    pressure.add_argument(
        "--pressure-max-defer",
        type=_duration_arg,
        default=600.0,
        metavar="DURATION",
        help="a heal waits for the pressure at most this long after its checks began to "
        "time out, then goes ahead (default: 10m)",
    )
    pressure.add_argument(
        "--no-pressure-guard",
        action="store_true",
        help="heal every bad check as it comes, pressure or not (default: guarded)",
    )
    run.add_argument(
        "--relist-interval",
        type=_duration_arg,
        default=60.0,
        metavar="DURATION",
        help="full re-listing to correct drift (default: 60s)",
    )

    run.add_argument(
        "--notify",
        type=Path,
        metavar="FILE",
        help="default notifications for policies without a notify section (YAML)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="decide and log everything, act on nothing"
    )
    run.add_argument(
        "--metrics-addr",
        metavar="HOST:PORT",
        help="serve Prometheus metrics here, e.g. 127.0.0.1:9464 (default: off; "
        ":PORT means loopback)",
    )

    validate = sub.add_parser("validate", parents=[common], help="check a policies directory")
    validate.add_argument(
        "policies",
        nargs="?",
        default=DEFAULT_POLICIES,
        type=Path,
        help=f"the policies directory (default: {DEFAULT_POLICIES})",
    )

    status = sub.add_parser("status", parents=[common], help="show each service's status")
    status.add_argument(
        "policies",
        nargs="?",
        default=DEFAULT_POLICIES,
        type=Path,
        help=f"the policies directory (default: {DEFAULT_POLICIES})",
    )
    status.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    status.add_argument(
        "--watch",
        action="store_true",
        help="refresh in place until Ctrl-C (piped: one JSON line per refresh)",
    )
    status.add_argument(
        "--interval",
        type=_duration_arg,
        default=2.0,
        metavar="DURATION",
        help="how often --watch refreshes (default: 2s)",
    )
    _state_dir_option(status)

    sub.add_parser(
        "schema", parents=[common], help="print the policy format as JSON Schema (for editors)"
    )

    migrate = sub.add_parser(
        "migrate",
        parents=[common],
        help="write policies equivalent to another tool's set-up",
        description="Read docker-autoheal's settings (its defaults, then --env-file, then "
        "--from-container, then -e) and the autoheal.stop.timeout labels on the engine's "
        "containers; write selector policies that do the same, with a comment for each "
        "setting that has no equivalent. Try them with `run --dry-run` before switching.",
    )
    migrate.add_argument("tool", choices=["autoheal"], help="the tool to move from")
    migrate.add_argument(
        "--env-file", type=Path, metavar="FILE", help="autoheal's VAR=VALUE file (default: none)"
    )
    migrate.add_argument(
        "--from-container",
        metavar="NAME",
        help="read the environment of this running autoheal container (default: none)",
    )
    migrate.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="one setting, as autoheal's -e (repeatable; default: none)",
    )
    migrate.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the policies into DIR, never over a file (default: print them)",
    )

    # Commands about one service; the operator's ones also name the state directory.
    for name, text, operator in (
        ("pause", "hold a service: watch it, do not heal it", True),
        ("resume", "end a hold", True),
        ("reset", "clear a service's give-up and backoff", True),
        ("start", "start a service (compose up -d) and wait until healthy", False),
        ("stop", "stop a service (compose stop)", False),
        ("restart", "stop, pause, start, and wait until healthy", False),
    ):
        cmd = sub.add_parser(name, parents=[common], help=text)
        service = cmd.add_argument(
            "service", help="a service named by a policy, or selected by one"
        )
        service.completer = _service_names  # type: ignore[attr-defined]
        _policies_option(cmd)
        if operator:
            _state_dir_option(cmd)
        if name == "pause":
            cmd.add_argument(
                "--for",
                dest="for_s",
                type=_duration_arg,
                help="hold this long (default: until resumed)",
            )
    return parser


def _policies_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        default=DEFAULT_POLICIES,
        type=Path,
        metavar="DIR",
        help=f"the policies directory (default: {DEFAULT_POLICIES})",
    )


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="the agent's state directory (default: $STATE_DIRECTORY, else "
        "/var/lib/docker-supervisor as root, else $XDG_STATE_HOME/docker-supervisor)",
    )


def _service_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Shell completion: the services of the policies directory the line names (or the
    default one), and those its selectors expanded to in the agent's state file; nothing
    when they cannot be read."""
    directory = getattr(parsed_args, "policies", None) or DEFAULT_POLICIES
    try:
        result = load_policy_dir(directory, strict=False)
        names = {p.service for p in result.policies if not p.is_selector}
        selectors = {p.service for p in result.policies if p.is_selector}
        if selectors:
            from ..store.state import default_state_dir, load_state

            state_dir = getattr(parsed_args, "state_dir", None) or default_state_dir()
            rows = load_state(state_dir, move_aside=False).services
            names |= {s for s, row in rows.items() if row.get("selected_by") in selectors}
    except Exception:  # completing must never print a traceback into a shell
        return []
    return sorted(name for name in names if name.startswith(prefix))


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _strict(args: argparse.Namespace) -> bool:
    return not args.insecure_policies


def _duration_arg(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above 0, got {text!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        # A shell asking for completions gets them and the process ends here.
        argcomplete.autocomplete(parser, always_complete_options=False)
        args = parser.parse_args(argv)
        dry_run = getattr(args, "dry_run", False)
        setup_logging(
            args.log_level,
            sys.stdout if args.command == "run" else sys.stderr,
            static={"dry_run": True} if dry_run else None,
        )
        return COMMANDS[args.command](args)
    except PolicyErrors as e:
        _refuse(args, e.errors)
        return EXIT_BAD_INPUT
    except (PolicyError, UsageError, AgentRunning, UnsafeFile) as e:
        _refuse(args, [e])
        return EXIT_BAD_INPUT
    except SupervisorError as e:
        _refuse(args, [e], prefix="docker-supervisor: ")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _refuse(args: argparse.Namespace | None, errors: list[Exception], prefix: str = "") -> None:
    """Say why a command ends: one line per problem on stderr, or, for `run` under systemd,
    one JSON line each in the journal like every other line the agent writes there."""
    if args is None or args.command != "run" or not stream_is_journal(sys.stdout):
        for error in errors:
            print(f"{prefix}{error}", file=sys.stderr)
        return
    from ..config.reload import log_invalid

    log = logging.getLogger("supervisor.cli")
    for error in errors:
        if isinstance(error, PolicyError):
            log_invalid(error)
        else:
            log_event(log, logging.ERROR, "agent.refused", f"{prefix}{error}", error=str(error))


def cmd_run(args: argparse.Namespace) -> int:
    from ..agent import Agent
    from ..publish.metrics import parse_metrics_addr
    from ..store.state import default_state_dir, lock_state_dir

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
    from ..store.state import answer_command, pending_commands

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


def cmd_status(args: argparse.Namespace) -> int:
    policies = load_policies(args.policies, _strict(args))
    if args.watch:
        return _watch(args, policies)
    agent, rows = _status_now(args, policies)
    if args.json:
        print(json.dumps({"agent": agent, "services": rows}, indent=2))
    else:
        from .screen import agent_line

        _print_table(rows)
        print(agent_line(agent))
    return EXIT_OK


def _status_now(args: argparse.Namespace, policies: list[Policy]) -> tuple[Any, list[Any]]:
    """The agent's figures and one row per service, as of now (one engine listing)."""
    from ..docker.engine import Engine
    from ..store.state import default_state_dir, load_state, running_agent_pid

    state_dir = args.state_dir or default_state_dir()
    saved = load_state(state_dir, move_aside=False).services
    pid = running_agent_pid(state_dir)
    engine = Engine()
    containers = None
    with contextlib.suppress(SupervisorError):  # each row then says engine_unreachable
        containers = engine.list_containers()
    engine.close()
    now = time.time()
    if containers is not None:
        from ..core.selector import in_force

        policies = in_force(policies, containers, saved)
    agent = _agent_figures(pid)
    # What the agent cannot write, it cannot save either: the filesystem itself says so.
    problem = unwritable(state_dir) if agent is not None else None
    if agent is not None:
        agent["state_file"] = problem or "writable"
    rows = [
        _status_row(
            p, engine.observe(p, containers), saved.get(p.service, {}), now, pid, bool(problem)
        )
        for p in policies
        if not p.is_selector
    ]
    return agent, rows


def unwritable(state_dir: Path) -> str | None:
    """Why the state directory's filesystem cannot take a state file now (read-only, full),
    from its figures alone (nothing is written to find out); None when it can."""
    import os

    try:
        fs = os.statvfs(state_dir)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if fs.f_flag & os.ST_RDONLY:
        return "cannot be written: read-only filesystem"
    free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
    if free < 64 * 1024:
        return f"cannot be written: {free // 1024} KiB free"
    return None


def _watch(args: argparse.Namespace, policies: list[Policy]) -> int:
    """Redraw the table in place on a terminal (colour unless NO_COLOR); piped, print one
    JSON line per refresh. Ends on Ctrl-C (exit 0) or when the reader goes away."""
    import os
    import shutil

    from .screen import render_watch

    tty = sys.stdout.isatty()
    colour = tty and not os.environ.get("NO_COLOR")
    try:
        while True:
            agent, rows = _status_now(args, policies)
            if tty:
                width = shutil.get_terminal_size().columns
                screen = render_watch(rows, agent, time.time(), width, colour)
                sys.stdout.write("\x1b[H\x1b[2J" + screen + "\n")
            else:
                line = {"at": round(time.time(), 3), "agent": agent, "services": rows}
                sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written
        return EXIT_OK


def _status_row(
    policy: Policy,
    seen: Any,
    saved: dict[str, Any],
    now: float,
    agent_pid: int | None,
    unwritable_now: bool = False,
) -> dict[str, Any]:
    """The row the agent would publish, from its saved memory and the gate it asks."""
    from dataclasses import replace

    from ..core.rows import build_row, make_facts
    from ..core.tracker import RestartTracker, policy_digest

    tracker = RestartTracker(policy.heal, policy.check)
    tracker.restore(saved, same_policy=saved.get("policy_digest") == policy_digest(policy))
    manual = saved.get("manual_stop")
    if seen.container is not None and manual == seen.container.id and not seen.is_healthy:
        seen = replace(seen, manual_stop=True)
    held_until = (
        saved.get("held_until") if isinstance(saved.get("held_until"), int | float) else None
    )
    # A cycle in flight is the running agent's to tell; without one, none is in flight.
    phase = saved.get("phase") if agent_pid is not None else None
    # So is a deferral: only the agent reads the host's pressure.
    deferred = agent_pid is not None and bool(saved.get("deferred"))
    # And what it waits for: only the agent looks at what a service needs, and only the
    # agent knows its state file could not be written.
    waiting = saved.get("waiting_for") if agent_pid is not None else None
    facts = make_facts(
        policy,
        seen,
        tracker,
        now,
        held_until,
        waiting if isinstance(waiting, str) else None,
        deferred=deferred,
        state_unwritable=agent_pid is not None
        and (unwritable_now or bool(saved.get("state_unwritable"))),
    )
    row = build_row(
        policy,
        seen,
        facts,
        tracker,
        now,
        phase=phase,
        held_until=held_until,
        last_heal=saved.get("last_heal"),
    )
    return {
        "service": policy.service,
        "container": row["container"],
        "status": row["status"],
        "reason": row["reason"],
        "restarts_in_window": row["restarts_in_window"],
        "backoff_attempt": row["attempt"],
        "next_action": row["next_action"],
        "last_heal": row["last_heal"],
    }


def _agent_figures(pid: int | None) -> dict[str, Any] | None:
    if pid is None:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            cpu = proc.cpu_times()
            return {
                "pid": pid,
                "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                "cpu_s": round(cpu.user + cpu.system, 2),
                "uptime_s": round(time.time() - proc.create_time()),
            }
    except psutil.Error:
        return None


def _print_table(rows: list[dict[str, Any]]) -> None:
    from .screen import format_table, table_cells

    print("\n".join(format_table(table_cells(rows, time.time()))))


def cmd_schema() -> int:
    """The policy format as JSON Schema, for editors (yaml-language-server and others)."""
    from ..config.keys import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_command(args: argparse.Namespace) -> int:
    """pause, resume, reset: through the running agent, or on the state file without one."""
    from ..store.state import (
        default_state_dir,
        load_state,
        lock_state_dir,
        save_state,
        send_command,
        take_refusal,
    )

    policy = _find_policy(args)
    state_dir = args.state_dir or default_state_dir()
    command: dict[str, Any] = {"command": args.command, "service": policy.service}
    if args.command == "pause":
        command["until"] = time.time() + args.for_s if args.for_s else None
        command["for_s"] = args.for_s or None
    try:
        lock = lock_state_dir(state_dir, _strict(args))
    except AgentRunning:
        path = send_command(state_dir, command)
        deadline = time.monotonic() + 5
        while path.exists():
            if time.monotonic() > deadline:
                print(
                    f"docker-supervisor: the agent did not take the command ({path})",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            time.sleep(0.05)
        refused = take_refusal(path)
        if refused is not None:
            print(
                f"docker-supervisor: {policy.service}: {args.command} refused by the running "
                f"agent: {refused}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"{policy.service}: {args.command} done by the running agent")
        return EXIT_OK
    with lock:
        saved = load_state(state_dir)
        entry = saved.services.setdefault(policy.service, {})
        if args.command == "pause":
            # In the frame the row's other instants were saved in (the next agent moves
            # them together by a step of the clock since).
            until = command["until"] and command["until"] - Clock().since_saved(entry.get("clock"))
            entry["held_until"] = until or HELD_FOREVER
        elif args.command == "resume":
            entry["held_until"] = None
        else:
            entry.update(attempt=0, restarts_at=[], gave_up=False)
        save_state(state_dir, saved.services, intents=saved.intents)
    print(f"{policy.service}: {args.command} recorded (no agent running)")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """docker-autoheal's set-up as policies: printed, or written into --out."""
    from ..config import migrate
    from ..docker.engine import Engine

    layers = []
    if args.env_file is not None:
        layers.append(migrate.read_env_file(args.env_file))
    engine = Engine()
    try:
        if args.from_container:
            where = f"container {args.from_container}"
            layers.append(
                migrate.read_assignments(engine.environment_of(args.from_container), where)
            )
        layers.append(migrate.read_assignments(args.env, "-e"))
        settings = migrate.merged(*layers)
        label = settings["AUTOHEAL_CONTAINER_LABEL"].value.strip()
        migration = migrate.Migration(settings)
        try:
            migration.timeouts = migrate.stop_timeouts(engine.list_containers(), label)
        except EngineUnreachable as e:
            migration.labels_read = False
            print(f"docker-supervisor: labels not read: {e}", file=sys.stderr)
    finally:
        engine.close()
    texts = migrate.policies(migration)
    if args.out is None:
        for name, text in texts.items():
            print(f"==> {name} <==\n{text}")
        return EXIT_OK
    for path in migrate.write(texts, args.out):
        print(f"wrote {path}")
    return EXIT_OK


def _find_policy(args: argparse.Namespace) -> Policy:
    """The service's policy: its own, or its selector's for the container it names."""
    policies = load_policies(args.policies, _strict(args))
    for policy in policies:
        if policy.service == args.service and not policy.is_selector:
            return policy
    if any(p.is_selector for p in policies):
        from ..core.selector import in_force
        from ..docker.engine import Engine
        from ..store.state import default_state_dir, load_state

        # start, stop and restart take no --state-dir: the default one names them then.
        state_dir = getattr(args, "state_dir", None) or default_state_dir()
        saved = load_state(state_dir, move_aside=False).services
        engine = Engine()
        try:
            containers = engine.list_containers()
        finally:
            engine.close()
        for policy in in_force(policies, containers, saved):
            if policy.service == args.service:
                return policy
    raise UsageError(f"{args.policies}: no policy for service {args.service!r}")


def _lifecycle(action: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        from ..act.manager import ServiceManager

        manager = ServiceManager(
            _find_policy(args), compose_bin=args.compose_bin, compose_timeout_s=args.compose_timeout
        )
        done = getattr(manager, f"{action}_service")()
        seen = manager.observe()
        print(f"{manager.service}: {seen.status}" + (f" ({seen.reason})" if seen.reason else ""))
        return EXIT_OK if done else EXIT_FAILED

    return command


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "status": cmd_status,
    "pause": cmd_command,
    "resume": cmd_command,
    "reset": cmd_command,
    "start": _lifecycle("start"),
    "stop": _lifecycle("stop"),
    "restart": _lifecycle("restart"),
    "schema": lambda args: cmd_schema(),
    "migrate": cmd_migrate,
}
