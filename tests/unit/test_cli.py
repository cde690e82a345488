"""cli.py without Docker: validate's lines and exit codes, and bad flags."""

from tests.support import run_cli


def test_validate_ok_prints_one_line_per_service():
    done = run_cli("validate", "policies")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "policies/chatterbox.yaml: ok: service chatterbox",
        "policies/demo-flaky.yaml: ok: service flaky",
        "policies/demo-web.yaml: ok: service web",
    ]


def test_validate_bad_policy_exits_2_with_file_line_field(tmp_path):
    (tmp_path / "web.yaml").write_text(
        "service: web\nmatch: {name: web}\nheal:\n  backoff:\n    max: soon\n"
    )
    done = run_cli("validate", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr == (
        f"{tmp_path}/web.yaml:5: at 'heal.backoff.max': expected a duration like 30s, got 'soon'\n"
    )
    assert "Traceback" not in done.stderr


def test_run_refuses_bad_policies_before_touching_anything(tmp_path):
    (tmp_path / "web.yaml").write_text("service: web\nmatch: {name: web}\nextra: 1\n")
    done = run_cli("run", "--policies", str(tmp_path), "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"{tmp_path}/web.yaml:3: at 'extra': unknown key")
    assert not (tmp_path / "s").exists()


def test_bad_flag_is_one_line_and_exit_2():
    done = run_cli("run", "--heal-concurrency", "zero")
    assert done.returncode == 2
    assert done.stderr == (
        "docker-supervisor run: argument --heal-concurrency: expected a whole number >= 1, "
        "got 'zero'\n"
    )


def test_unknown_service_for_lifecycle_command():
    done = run_cli("start", "ghost", "--policies", "policies")
    assert done.returncode == 2
    assert done.stderr == "policies: no policy for service 'ghost'\n"


def test_metrics_addr_parsing():
    import pytest

    from supervisor.errors import UsageError
    from supervisor.publish.metrics import parse_metrics_addr

    assert parse_metrics_addr("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_metrics_addr(":9464") == ("127.0.0.1", 9464)
    assert parse_metrics_addr("0.0.0.0:1") == ("0.0.0.0", 1)
    assert parse_metrics_addr("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", "host:70000", "host:x"):
        with pytest.raises(UsageError):
            parse_metrics_addr(bad)


def _parsers():
    """The main parser and every command's, with their names."""
    import argparse

    from supervisor.cli.parser import build_parser

    main = build_parser()
    found = [("docker-supervisor", main)]
    for action in main._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"docker-supervisor {n}", p) for n, p in action.choices.items()]
    return found


def test_every_option_says_what_it_does_and_its_default():
    import argparse

    silent = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    for name, parser in _parsers():
        for action in parser._actions:
            if isinstance(action, silent):
                continue
            where = f"{name} {action.option_strings or action.dest}"
            assert action.help, f"{where} has no help"
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            assert has_default <= ("default:" in action.help), f"{where} hides its default"


def test_help_describes_the_tool_with_examples():
    done = run_cli("--help")
    assert done.returncode == 0
    assert "\n\nSupervise the containers of a Docker host: one YAML policy" in done.stdout
    assert "argparse" not in done.stdout  # not the module's own docstring
    examples = done.stdout.split("examples:\n", 1)[1]
    assert "docker-supervisor pause web --for 30m" in examples
    assert "--policies DIR" in run_cli("pause", "--help").stdout


def test_every_help_fits_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what argparse wraps to
    commands = [n.split(" ", 1)[1] for n, _ in _parsers()[1:]]
    for command in ["", *commands]:
        done = run_cli(*command.split(), "--help")
        wide = [line for line in done.stdout.splitlines() if len(line) > 79]
        assert done.returncode == 0 and not wide, (command, wide)


def test_completion_offers_the_services_of_the_policies_on_the_line():
    """The shell's request as argcomplete's bash and zsh functions make it."""
    import os
    import subprocess
    import sys

    line = "docker-supervisor restart --policies policies "
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_SHELL": "bash",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": "/dev/stdout",
    }
    done = subprocess.run(
        [sys.executable, "-m", "supervisor"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split("\v")) == ["chatterbox", "flaky", "web"]


def test_validate_without_an_engine_checks_the_files_and_says_what_it_could_not(tmp_path):
    compose = tmp_path / "compose.yml"
    compose.write_text("services: {web: {image: busybox}}\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "web.yaml").write_text(
        f"service: web\nmatch: {{compose_service: web}}\ncompose: {{file: {compose}}}\n"
    )
    done = run_cli(
        "validate", str(tmp_path / "p"), env={"DOCKER_HOST": f"unix://{tmp_path}/n.sock"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path}/p/web.yaml: ok: service web\n"
    [note] = done.stderr.splitlines()
    assert note.startswith("note: the engine did not answer (") and note.endswith(
        "): compose projects not checked"
    )
