"""logs.py: JSON lines, and under systemd journald's native protocol over a real socket."""

import io
import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.logs import (
    JournalPrefixFormatter,
    encode_journal_entry,
    log_event,
    setup_logging,
    stream_is_journal,
)
from tests.support import datagram_listener

LOGGER = logging.getLogger("supervisor.test")
REPO = Path(__file__).resolve().parents[2]


def decode_journal_entry(data: bytes) -> dict[str, str]:
    """The inverse of the native protocol, as journald reads it."""
    fields, rest = {}, data
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            key, value, rest = line, after[8 : 8 + size], after[8 + size + 1 :]
        fields[key.decode()] = value.decode()
    return fields


@pytest.fixture
def journald(tmp_path):
    with datagram_listener(tmp_path / "journal.sock") as bound:
        yield bound


@pytest.fixture
def journal_stream(tmp_path, monkeypatch):
    """A file systemd would have announced as the journal stream."""
    with open(tmp_path / "stream", "w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        yield stream
    logging.getLogger("supervisor").handlers[:] = []


def test_journal_prefix_carries_the_syslog_priority():
    formatter = JournalPrefixFormatter(logging.Formatter("%(message)s"))
    lines = [
        formatter.format(logging.LogRecord("x", level, __file__, 1, "m", None, None))
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
    ]
    assert lines == ["<7>m", "<6>m", "<4>m", "<3>m"]


def test_journal_stream_is_recognised_by_device_and_inode(tmp_path, monkeypatch):
    with open(tmp_path / "out", "w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert stream_is_journal(stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino + 1}")
        assert not stream_is_journal(stream)
    assert not stream_is_journal(io.StringIO())


def test_the_native_encoding_frames_a_value_with_a_newline_by_its_length():
    assert encode_journal_entry({"A": "x=1", "B": "two\nlines"}) == (
        b"A=x=1\nB\n" + struct.pack("<Q", 9) + b"two\nlines\n"
    )
    assert decode_journal_entry(encode_journal_entry({"A": "x=1", "B": "two\nlines"})) == {
        "A": "x=1",
        "B": "two\nlines",
    }


def test_under_journald_each_line_goes_natively_with_its_fields(journald, journal_stream):
    path, sock = journald
    setup_logging(stream=journal_stream, journal_socket=str(path))
    log_event(
        LOGGER,
        logging.WARNING,
        "heal.started",
        "healing web",
        service="web",
        container="demo-web-1",
        status="error",
        reason="unhealthy",
        attempt=2,
        delay_s=None,
    )
    fields = decode_journal_entry(sock.recv(65536))
    line = json.loads(fields.pop("MESSAGE"))
    assert fields == {
        "PRIORITY": "4",
        "SYSLOG_IDENTIFIER": "docker-supervisor",
        "SUPERVISOR_EVENT": "heal.started",
        "SUPERVISOR_SERVICE": "web",
        "SUPERVISOR_CONTAINER": "demo-web-1",
        "SUPERVISOR_STATUS": "error",
        "SUPERVISOR_REASON": "unhealthy",
        "SUPERVISOR_ATTEMPT": "2",
    }
    assert {k: line[k] for k in ("level", "logger", "message", "event", "service", "attempt")} == {
        "level": "WARNING",
        "logger": "supervisor.test",
        "message": "healing web",
        "event": "heal.started",
        "service": "web",
        "attempt": 2,
    }
    journal_stream.flush()
    assert os.path.getsize(journal_stream.name) == 0  # nothing twice


def test_a_line_journald_does_not_take_goes_to_the_stream_with_its_priority(
    tmp_path, journal_stream
):
    setup_logging(stream=journal_stream, journal_socket=str(tmp_path / "no-journald.sock"))
    log_event(LOGGER, logging.ERROR, "heal.failed", "it failed", service="web")
    journal_stream.flush()
    with open(journal_stream.name) as written:
        text = written.read()
    assert text.startswith('<3>{"level": "ERROR"') and text.endswith("}\n")
    assert json.loads(text[3:])["service"] == "web"


def test_outside_systemd_lines_are_plain_json(tmp_path, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    setup_logging(stream=stream)
    try:
        log_event(LOGGER, logging.INFO, "x.y", "hello", service="web")
    finally:
        logging.getLogger("supervisor").handlers[:] = []
    assert json.loads(stream.getvalue())["event"] == "x.y"


def test_run_refuses_a_bad_policy_in_the_journal_as_json(tmp_path, journald):
    """Under systemd, `run`'s refusal is one JSON line in the journal like any other line."""
    path, sock = journald
    policies = tmp_path / "p"
    policies.mkdir(mode=0o755)
    (policies / "web.yaml").write_text("service: web\nmatch: {name: web}\nheal: {pause: soon}\n")
    code = (
        "import sys; import supervisor.logs as logs; "
        f"logs.JOURNAL_SOCKET = {str(path)!r}; from supervisor.cli.main import main; "
        f"sys.exit(main(['run', '--policies', {str(policies)!r}, '--state-dir', "
        f"{str(tmp_path / 'state')!r}]))"
    )
    with open(tmp_path / "stream", "w") as stream:
        info = os.fstat(stream.fileno())
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdout=stream,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"},
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr == ""
    fields = decode_journal_entry(sock.recv(65536))
    line = json.loads(fields["MESSAGE"])
    assert (fields["PRIORITY"], fields["SUPERVISOR_EVENT"]) == ("3", "policy.invalid")
    assert {k: line[k] for k in ("file", "line", "field")} == {
        "file": str(policies / "web.yaml"),
        "line": 3,
        "field": "heal.pause",
    }
    assert line["message"].startswith(f"{policies / 'web.yaml'}:3: at 'heal.pause': ")
