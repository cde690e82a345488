"""The command line: the only place that turns errors into exit codes (each command's
module beside this one; exit codes and refusals in parser.py)."""

from __future__ import annotations

import argparse
import sys

import argcomplete

from ..errors import (
    AgentRunning,
    PolicyError,
    PolicyErrors,
    SupervisorError,
    UnsafeFile,
    UsageError,
)
from ..logs import setup_logging
from .commands import _lifecycle, cmd_command, cmd_migrate, cmd_schema
from .parser import EXIT_BAD_INPUT, EXIT_FAILED, _refuse, build_parser
from .run import cmd_run, cmd_validate
from .status import cmd_status


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
