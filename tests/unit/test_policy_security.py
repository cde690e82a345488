"""Policies run commands as the agent: files others may write are refused (like sshd's
StrictModes), and no string from a policy is ever interpreted by a shell."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from supervisor.config.model import NotifyPolicy
from supervisor.config.policy import load_policy_dir
from supervisor.docker.compose import Compose
from supervisor.publish.notifications import Notifications
from tests.support import run_cli

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


HINT = "chmod go-w it, or run with --insecure-policies"


def stack(tmp_path: Path, compose: str, policy_extra: str = "") -> tuple[Path, Path]:
    """A policies directory and a compose stack beside it, every mode safe to start with."""
    d = policies(tmp_path)
    app = tmp_path / "app"
    app.mkdir(mode=0o755)
    (app / "compose.yml").write_text(compose)
    (d / "web.yaml").write_text(
        "service: web\nmatch: {compose_service: web}\n"
        "compose:\n  file: ../app/compose.yml\n" + policy_extra
    )
    return d, app


ENV_FILE_COMPOSE = "services:\n  web:\n    image: x\n    env_file: [web.env]\n"


def test_a_compose_file_others_may_write_is_refused_at_the_policys_line(tmp_path):
    d, app = stack(tmp_path, "services: {web: {image: x}}\n")
    assert load_policy_dir(d).errors == []
    (app / "compose.yml").chmod(0o666)
    [error] = load_policy_dir(d).errors
    assert str(error) == (
        f"{d}/web.yaml:4: at 'compose.file': {app}/compose.yml: writable by group or others "
        f"(mode 0666): {HINT}"
    )
    assert load_policy_dir(d, strict=False).errors == []


def test_a_directory_above_the_compose_file_others_may_write_is_refused(tmp_path):
    d, app = stack(tmp_path, "services: {web: {image: x}}\n")
    app.chmod(0o777)
    [error] = load_policy_dir(d).errors
    assert str(error).endswith(f"{app}: writable by group or others (mode 0777): {HINT}")
    app.chmod(0o1777)  # sticky, like /tmp: others cannot replace what is in it
    assert load_policy_dir(d).errors == []


@pytest.mark.parametrize(
    ("compose", "written", "how"),
    [
        (ENV_FILE_COMPOSE, "web.env", "env_file in {app}/compose.yml"),
        ("include: [more.yml]\nservices: {web: {image: x}}\n", "more.yml", "include in "),
        (
            "services:\n  web:\n    extends: {file: base.yml, service: base}\n",
            "base.yml",
            "extends in ",
        ),
        ("services: {web: {image: x}}\n", ".env", "the project's .env"),
    ],
)
def test_every_file_compose_reads_is_checked(tmp_path, compose, written, how):
    d, app = stack(tmp_path, compose)
    (app / written).write_text("services: {}\n" if written.endswith(".yml") else "A=1\n")
    assert load_policy_dir(d).errors == []
    (app / written).chmod(0o646)
    [error] = load_policy_dir(d).errors
    assert f"{app / written}: writable by group or others (mode 0646)" in str(error)
    assert f"({how.format(app=app)}" in str(error)


def test_an_include_of_an_include_is_followed(tmp_path):
    d, app = stack(tmp_path, "include: [one.yml]\nservices: {web: {image: x}}\n")
    (app / "one.yml").write_text("include: [two.yml]\n")
    (app / "two.yml").write_text("services:\n  two:\n    image: x\n    env_file: two.env\n")
    (app / "two.env").write_text("A=1\n")
    assert load_policy_dir(d).errors == []
    (app / "two.env").chmod(0o666)
    [error] = load_policy_dir(d).errors
    assert f"{app}/two.env: writable" in str(error) and f"(env_file in {app}/two.yml)" in str(error)


def test_a_notify_command_others_may_replace_is_refused(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir(mode=0o755)
    (tools / "page").write_text("#!/bin/sh\n")
    (tools / "page").chmod(0o755)
    d = policies(tmp_path)
    (d / "web.yaml").write_text(VALID + f"notify:\n  command: [{tools}/page]\n")
    assert load_policy_dir(d).errors == []
    tools.chmod(0o777)
    [error] = load_policy_dir(d).errors
    assert str(error) == (
        f"{d}/web.yaml:4: at 'notify.command': {tools}: writable by group or others "
        f"(mode 0777): {HINT}"
    )


def test_validate_and_run_say_the_same(tmp_path):
    d, app = stack(tmp_path, ENV_FILE_COMPOSE)
    (app / "web.env").write_text("A=1\n")
    (app / "web.env").chmod(0o666)
    validate = run_cli("validate", str(d))
    run = run_cli("run", "--policies", str(d), "--state-dir", str(tmp_path / "state"))
    assert validate.returncode == run.returncode == 2
    assert validate.stderr == run.stderr
    assert validate.stderr.count("\n") == 1 and "web.env: writable" in validate.stderr
