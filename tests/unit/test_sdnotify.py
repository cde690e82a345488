"""notify.py over a real datagram socket; the systemd unit."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.publish.sdnotify import Notifier
from tests.support import datagram_listener

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd/docker-supervisor.service"


@pytest.fixture
def listener(tmp_path):
    with datagram_listener(tmp_path / "notify.sock") as bound:
        yield bound


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
