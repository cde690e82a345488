"""JSON logging: one object per line with timestamp, level, logger, message and event.

This module sets up the handler and offers `log_event`, which every part of the agent uses so
that each line carries a stable dotted `event` name with its data beside it. It never decides
what to log.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

ROOT_LOGGER = "supervisor"


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the project's log records, as JSON lines, to `stream` (stdout by default)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            json_ensure_ascii=False,
        )
    )
    root = logging.getLogger(ROOT_LOGGER)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # APScheduler's own warnings (a missed run, a skipped instance) are worth seeing too.
    aps = logging.getLogger("apscheduler")
    aps.handlers[:] = [handler]
    aps.setLevel(logging.WARNING)
    aps.propagate = False


def log_event(logger: logging.Logger, level: int, event: str, message: str, **fields: Any) -> None:
    """Log one line: a message for people, an event name for machines, and the fields.

    Fields whose value is None are left out, so a line carries only what is known.
    """
    extra = {k: v for k, v in fields.items() if v is not None}
    extra["event"] = event
    logger.log(level, message, extra=extra)
