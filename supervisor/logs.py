"""JSON logging: one object per line with timestamp, level, logger, message and event.

This module sets up the handler and offers `log_event`, which every part of the agent uses so
that each line carries a stable dotted `event` name with its data beside it. It never decides
what to log.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

ROOT_LOGGER = "supervisor"


# syslog priorities by logging level, for journald's `<N>` line prefix.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalPrefixFormatter(logging.Formatter):
    """Prefix each line with its syslog priority, so `journalctl -p warning` works;
    journald strips the prefix, so `journalctl -o cat` still shows pure JSON."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{self._inner.format(record)}"


def stream_is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal stream systemd announced in JOURNAL_STREAM."""
    announced = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return announced == f"{info.st_dev}:{info.st_ino}"


def setup_logging(
    level: str = "INFO", stream: TextIO | None = None, static: dict[str, Any] | None = None
) -> None:
    """Send the project's log records, as JSON lines, to `stream` (stdout by default).

    `static` fields go on every line (the dry run's `dry_run: true`).
    """
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter = JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        json_ensure_ascii=False,
        static_fields=static,
    )
    if stream_is_journal(stream):
        formatter = JournalPrefixFormatter(formatter)
    handler.setFormatter(formatter)
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
