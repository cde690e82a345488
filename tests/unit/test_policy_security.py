"""Policies run commands as the agent: files others may write are refused (like sshd's
StrictModes), and no string from a policy is ever interpreted by a shell."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from supervisor.compose import Compose
from supervisor.hooks import Notifications
from supervisor.policy import NotifyPolicy, load_policy_dir

VALID = "service: web\nmatch: {name: web}\n"
METACHARACTERS = "; touch {m} && touch {m} | touch {m} $(touch {m}) `touch {m}` > {m} * ~ \\n"


def policies(tmp_path: Path, mode: int = 0o644) -> Path:
    d = tmp_path / "p"
    d.mkdir(mode=0o755)
    (d / "web.yaml").write_text(VALID)
    (d / "web.yaml").chmod(mode)
    return d


def test_a_safe_directory_loads(tmp_path):
    assert [p.service for p in load_policy_dir(policies(tmp_path)).policies] == ["web"]


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_file_others_may_write_is_refused(tmp_path, mode):
    d = policies(tmp_path, mode)
    [error] = load_policy_dir(d).errors
    assert str(error) == (
        f"{d}/web.yaml: writable by group or others (mode {mode:04o}): chmod go-w it, "
        "or run with --insecure-policies"
    )
    assert [p.service for p in load_policy_dir(d, strict=False).policies] == ["web"]


def test_a_directory_others_may_write_is_refused(tmp_path):
    d = policies(tmp_path)
    d.chmod(0o777)
    [error] = load_policy_dir(d).errors
    assert str(error).startswith(f"{d}: writable by group or others (mode 0777)")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_a_file_owned_by_someone_else_is_refused(tmp_path):
    d = policies(tmp_path)
    os.chown(d / "web.yaml", 4321, 4321)
    [error] = load_policy_dir(d).errors
    assert str(error).startswith(f"{d}/web.yaml: owned by uid 4321, not root or the agent's user")


def test_compose_arguments_reach_the_binary_verbatim(tmp_path):
    marker = tmp_path / "interpreted"
    record = tmp_path / "argv.json"
    fake = tmp_path / "fake-compose"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    strange = tmp_path / METACHARACTERS.format(m=marker).replace("/", "_")
    Compose([str(fake)]).up(strange, "demo")
    assert json.loads(record.read_text()) == ["-f", str(strange), "-p", "demo", "up", "-d"]
    assert not marker.exists()


def test_a_notify_command_gets_its_arguments_and_environment_verbatim(tmp_path):
    marker = tmp_path / "interpreted"
    record = tmp_path / "argv.json"
    text = METACHARACTERS.format(m=marker)
    command = (
        sys.executable,
        "-c",
        "import json, os, sys; json.dump([sys.argv[1:], os.environ['SUPERVISOR_REASON']],"
        f" open({str(record)!r}, 'w'))",
        text,
    )
    notifications = Notifications()
    notifications.send(NotifyPolicy(command=command), "heal.failed", service="web", reason=text)
    deadline = time.monotonic() + 10
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    notifications.close()
    assert json.loads(record.read_text()) == [[text], text]
    assert not marker.exists()
