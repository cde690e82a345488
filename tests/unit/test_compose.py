"""compose.py: the exact argv lists, and the runner's errors (with a real process)."""

import sys
from pathlib import Path

import pytest

from supervisor.compose import (
    build_config_argv,
    build_stop_argv,
    build_up_argv,
    find_compose_command,
    run_compose,
)
from supervisor.errors import ComposeError

CMD = ["docker", "compose"]
FILE = Path("/srv/demo/compose.yml")


def test_up_is_blanket():
    assert build_up_argv(CMD, FILE, "demo") == [
        "docker",
        "compose",
        "-f",
        "/srv/demo/compose.yml",
        "-p",
        "demo",
        "up",
        "-d",
    ]


def test_up_without_project():
    assert build_up_argv(["/usr/bin/docker-compose"], FILE, None) == [
        "/usr/bin/docker-compose",
        "-f",
        "/srv/demo/compose.yml",
        "up",
        "-d",
    ]


def test_stop_with_timeout():
    assert build_stop_argv(CMD, FILE, "demo", 9.6) == [
        "docker",
        "compose",
        "-f",
        "/srv/demo/compose.yml",
        "-p",
        "demo",
        "stop",
        "--timeout",
        "10",
    ]
    assert build_stop_argv(CMD, FILE, None) == [
        "docker",
        "compose",
        "-f",
        "/srv/demo/compose.yml",
        "stop",
    ]


def test_config():
    assert build_config_argv(CMD, FILE, None) == [
        "docker",
        "compose",
        "-f",
        "/srv/demo/compose.yml",
        "config",
        "--quiet",
    ]


def test_runner_reports_exit_code_and_stderr():
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('no such service'); sys.exit(3)"]
    with pytest.raises(ComposeError) as caught:
        run_compose(argv, timeout_s=10)
    assert str(caught.value).startswith("exit code 3: ")
    assert caught.value.stderr == "no such service"


def test_runner_cuts_a_hanging_command_at_its_timeout():
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(ComposeError) as caught:
        run_compose(argv, timeout_s=0.5)
    assert str(caught.value).startswith("timed out after 0.5s: ")


def test_runner_does_not_use_a_shell(tmp_path):
    marker = tmp_path / "touched"
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1])", f"; touch {marker}"]
    result = run_compose(argv, timeout_s=10)
    assert result.stdout.strip() == f"; touch {marker}"
    assert not marker.exists()


def test_explicit_binary_that_does_not_exist():
    with pytest.raises(ComposeError) as caught:
        find_compose_command("/nonexistent/compose")
    assert str(caught.value) == "compose binary not found: /nonexistent/compose"
