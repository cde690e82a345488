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
    from supervisor.metrics import parse_metrics_addr

    assert parse_metrics_addr("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_metrics_addr(":9464") == ("127.0.0.1", 9464)
    assert parse_metrics_addr("0.0.0.0:1") == ("0.0.0.0", 1)
    assert parse_metrics_addr("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", "host:70000", "host:x"):
        with pytest.raises(UsageError):
            parse_metrics_addr(bad)
