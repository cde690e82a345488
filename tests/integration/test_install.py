"""`make install` into a scratch root: the venv runs, the unit points at it and verifies."""

import shutil
import subprocess

from tests.support import REPO


def test_make_install(tmp_path):
    prefix, etc, units = tmp_path / "opt", tmp_path / "etc", tmp_path / "units"
    bindir = tmp_path / "bin"
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "install",
            f"PREFIX={prefix}",
            f"SYSCONFDIR={etc}",
            f"UNITDIR={units}",
            f"BINDIR={bindir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    validate = subprocess.run(
        [str(bindir / "docker-supervisor"), "validate", str(etc / "examples")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    assert len(validate.stdout.splitlines()) == 3
    assert (etc / "policies.d").is_dir()
    unit = (units / "docker-supervisor.service").read_text()
    assert f"ExecStart={prefix}/venv/bin/docker-supervisor run --policies {etc}/policies.d" in unit
    verify = subprocess.run(
        [shutil.which("systemd-analyze"), "verify", str(units / "docker-supervisor.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
