"""The command line's parser and options, and what every command shares: the exit codes
(0 done, 1 the end state was not reached, 2 bad input) and how a command refuses."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..config.policy import load_policy_dir
from ..config.values import parse_duration
from ..errors import (
    PolicyError,
    UsageError,
)
from ..logs import log_event, stream_is_journal

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
