"""JSON logging: one object per line with timestamp, level, logger, message and event.

This module sets up the handler and offers `log_event`, which every part of the agent uses so
that each line carries a stable dotted `event` name with its data beside it. It never decides
what to log.

Under systemd (stdout is the journal stream systemd announced), each line goes to journald
over its native protocol instead: the JSON line as MESSAGE, its priority, and the line's main
fields as journal fields (SUPERVISOR_SERVICE=web), so `journalctl` can filter without jq.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
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
        return f"<{priority_of(record.levelno)}>{self._inner.format(record)}"


def priority_of(levelno: int) -> int:
    return _PRIORITY.get(levelno, 6 if levelno < logging.WARNING else 3)


def stream_is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal stream systemd announced in JOURNAL_STREAM."""
    announced = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return announced == f"{info.st_dev}:{info.st_ino}"


JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "docker-supervisor"
# The line's fields that become journal fields, as SUPERVISOR_<NAME>.
JOURNAL_FIELDS = ("event", "service", "container", "status", "reason", "attempt")


def encode_journal_entry(fields: dict[str, str]) -> bytes:
    """One entry in journald's native protocol: `KEY=value` lines, or, for a value holding a
    newline, the key, a newline, the value's length (64-bit little-endian) and the value."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode()
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.StreamHandler):
    """Send each record to journald natively; if journald refuses it (gone, or a line too big
    for one datagram), write it to the stream with its `<N>` priority prefix, so nothing is
    lost and `-p` still works.

    journald's protocol is a few documented lines over a datagram socket; the bindings
    (systemd-python) need a C compiler and libsystemd's headers at install time, which a plain
    host does not have.
    """

    def __init__(self, stream: TextIO, json_formatter: logging.Formatter, path: str) -> None:
        super().__init__(stream)
        self.setFormatter(JournalPrefixFormatter(json_formatter))
        self._json = json_formatter
        self._path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "MESSAGE": self._json.format(record),
                "PRIORITY": str(priority_of(record.levelno)),
                "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
            }
            for name in JOURNAL_FIELDS:
                value = getattr(record, name, None)
                if value is not None:
                    fields[f"SUPERVISOR_{name.upper()}"] = str(value)
            self._socket.sendto(encode_journal_entry(fields), self._path)
        except OSError:
            super().emit(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()


def setup_logging(
    level: str = "INFO",
    stream: TextIO | None = None,
    static: dict[str, Any] | None = None,
    journal_socket: str | None = None,
) -> None:
    """Send the project's log records, as JSON lines, to `stream` (stdout by default), or to
    journald when `stream` is the journal stream systemd announced.

    `static` fields go on every line (the dry run's `dry_run: true`).
    """
    stream = stream or sys.stdout
    formatter = JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        json_ensure_ascii=False,
        static_fields=static,
    )
    handler: logging.Handler
    if stream_is_journal(stream):
        handler = JournalHandler(stream, formatter, journal_socket or JOURNAL_SOCKET)
    else:
        handler = logging.StreamHandler(stream)
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


class SaidOnce:
    """A fault said once per cause: the first time at `level`, the same again at debug,
    until `clear()` (it is over) or another cause comes."""

    def __init__(self, level: int = logging.ERROR) -> None:
        self._level = level
        self._told: str | None = None

    def say(
        self, logger: logging.Logger, event: str, message: str, error: BaseException, **fields: Any
    ) -> None:
        text = f"{type(error).__name__}: {error}"
        level = self._level if text != self._told else logging.DEBUG
        log_event(logger, level, event, message, error=text, **fields)
        self._told = text

    def clear(self) -> None:
        self._told = None
