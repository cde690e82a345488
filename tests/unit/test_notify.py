"""notify.py over a real datagram socket; the journald priority prefix; the systemd unit."""

import io
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.logs import JournalPrefixFormatter, stream_is_journal
from supervisor.notify import Notifier

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd/docker-supervisor.service"


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_messages_arrive_as_datagrams(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.ready("2 services: 2 running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=2 services: 2 running"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.reloading()
    assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")


def test_without_socket_nothing_is_sent_and_nothing_raises(tmp_path):
    assert Notifier({}).ready("x") is False
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).watchdog() is False


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env, interval):
    assert Notifier(env).watchdog_interval_s == interval


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


def test_the_agent_prefixes_lines_under_journald(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "p").mkdir()
    (tmp_path / "p/x.yaml").write_text("service: x\nmatch: {name: x}\nextra: 1\n")
    with open(out, "w") as stream:
        info = os.fstat(stream.fileno())
        code = (
            "import logging, sys; from supervisor.logs import setup_logging, log_event; "
            "setup_logging(); log_event(logging.getLogger('supervisor.t'), logging.WARNING, "
            "'t.e', 'hello')"
        )
        subprocess.run(
            [sys.executable, "-c", code],
            stdout=stream,
            check=True,
            cwd=REPO,
            env={**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"},
        )
    assert out.read_text().startswith('<4>{"level": "WARNING"')


def systemd_analyze(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is needed (Debian package systemd)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_unit_verifies(tmp_path):
    # verify wants the executables to exist: point the unit at this checkout's installation.
    installed = Path(sys.executable).with_name("docker-supervisor")
    unit = tmp_path / "docker-supervisor.service"
    unit.write_text(
        UNIT.read_text().replace(
            "/opt/docker-supervisor/venv/bin/docker-supervisor", str(installed)
        )
    )
    done = systemd_analyze("verify", str(unit))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_unit_security_exposure_is_at_most_2_5():
    done = systemd_analyze("security", "--offline=true", str(UNIT))
    [line] = [x for x in done.stdout.splitlines() if "Overall exposure level" in x]
    score = float(line.split(":")[1].split()[0])
    assert score <= 2.5, line
