"""A real systemd host for the end-to-end suite, and the project installed on it as the README
says: a Debian 12 rootfs (debootstrap, cached as an image) booted with systemd as PID 1 in a
container, with its own dockerd, driven only through `docker exec` of the commands an operator
types.

It protects the machine it runs on. Not `--privileged` (this VM's bounding set lacks
CAP_SYS_RESOURCE): every other capability, unconfined seccomp and AppArmor, a device rule for
everything. The host's cgroup hierarchies are bound one by one into a private tmpfs, never
/sys/fs/cgroup whole (systemd would remount it read-only for everyone), and /proc/sys stays
read-only (systemd would set host-wide sysctls); systemd-sysctl and binfmt are masked in the
image. Teardown removes the nested containers, then the host container, then the directory
that held its /var/lib/docker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import REPO, wait_for

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-host-image"
WORK_ROOT = Path("/var/tmp/docker-supervisor-e2e")
WHEELHOUSE = REPO / "build/e2e/wheelhouse"
SOURCE_DIR = "/root/docker-supervisor"
# pip on the host installs from the wheelhouse only: the host may not reach a registry.
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/root/wheelhouse"}
TEST_LABEL = "docker-supervisor.test"
UNIT = "docker-supervisor"
IMAGE_REPOSITORY = "docker-supervisor/e2e-host"


def image_tag(engine: str = "bookworm") -> str:
    """The host image for this build script, with the Docker engine of Debian's `engine`
    suite (bookworm: 20.10, trixie: 26.1); a changed script builds a new one."""
    digest = hashlib.sha256(BUILD_SCRIPT.read_bytes()).hexdigest()[:12]
    return f"{IMAGE_REPOSITORY}:{engine}-engine-{digest}"


def ensure_image(engine: str = "bookworm") -> tuple[str, float]:
    """The host image, built if missing; returns the tag and the seconds spent building."""
    tag = image_tag(engine)
    if docker_quiet("image", "inspect", tag):
        return tag, 0.0
    env = {**os.environ, "ENGINE": engine}
    began = time.monotonic()
    if engine != "bookworm":  # the same host with another engine: built on the first
        env["BASE"], _ = ensure_image("bookworm")
    subprocess.run([str(BUILD_SCRIPT), tag], check=True, timeout=1200, env=env)
    # Images of this engine built by an older script are no longer a cache of anything.
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    stale = [
        old for old in listed if old.startswith(f"{IMAGE_REPOSITORY}:{engine}-") and old != tag
    ]
    if stale:
        subprocess.run(["docker", "rmi", *stale], capture_output=True, timeout=120, check=False)
    return tag, time.monotonic() - began


def build_wheelhouse() -> Path:
    """Wheels for everything `make install` installs, built here (the host may not reach a
    registry): the project's dependencies with its dev extra (the engine matrix runs tests
    there), and what pip needs to build the project itself."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(REPO / ".venv/bin/pip"),
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(WHEELHOUSE),
            f"{REPO}[dev]",
            "pip",
            "setuptools>=68",
            "wheel",
        ],
        check=True,
        timeout=900,
    )
    return WHEELHOUSE


def docker_quiet(*args: str) -> bool:
    done = subprocess.run(["docker", *args], capture_output=True, timeout=60, check=False)
    return done.returncode == 0


def cgroup_binds() -> list[str]:
    """Each of the machine's cgroup hierarchies, bound at its own path (inside the tmpfs)."""
    binds = []
    for entry in sorted(os.listdir("/sys/fs/cgroup")):
        path = f"/sys/fs/cgroup/{entry}"
        if os.path.ismount(path):
            binds += ["-v", f"{path}:{path}"]
    return binds


def source_tar() -> bytes:
    """The working tree as git sees it (tracked and new files, nothing ignored)."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in filter(None, names):
            path = REPO / name.decode()
            if path.exists():
                tar.add(path, arcname=name.decode(), recursive=False)
    return buffer.getvalue()


def directory_tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(directory, arcname=".")
    return buffer.getvalue()


class Host:
    """One booted host container; every method is a command an operator would run on it."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.run_id = uuid.uuid4().hex[:8]
        self.name = f"docker-supervisor-e2e-{self.run_id}"
        self.work = WORK_ROOT / self.run_id
        self.figures: dict[str, float] = {}

    # -- life ------------------------------------------------------------------------------

    def __enter__(self) -> Host:
        """Booted; removed again if the boot fails, and on leaving the block."""
        try:
            self.boot()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def boot(self) -> None:
        (self.work / "docker").mkdir(parents=True)
        began = time.monotonic()
        argv = [
            "docker",
            "run",
            "-d",
            "--name",
            self.name,
            "--hostname",
            "e2e-host",
            "--stop-signal",
            "SIGRTMIN+3",  # systemd's own shutdown
            "--label",
            f"{TEST_LABEL}={self.run_id}",
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--device-cgroup-rule",
            "a *:* rwm",
            "--cgroupns",
            "host",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--tmpfs",
            "/sys/fs/cgroup",
            *cgroup_binds(),
            "-v",
            f"{self.work / 'docker'}:/var/lib/docker",
            "-e",
            "container=docker",
            self.image,
            "/sbin/init",
        ]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

        def booted() -> str | None:
            # Until systemd's bus is up, systemctl cannot even say "starting".
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            return state if state in ("running", "degraded", "maintenance") else None

        state = wait_for(booted, 120, "systemd to finish booting", every_s=0.2)
        self.figures["boot_s"] = time.monotonic() - began
        failed = self.run("systemctl", "--failed", "--plain", "--no-legend", check=False).stdout
        assert state == "running", f"{state}; failed units: {failed}"
        wait_for(lambda: self.ok("docker", "info"), 60, "the nested dockerd to answer")

    def remove(self) -> None:
        """Nested containers first, then the host container, then its engine's directory."""
        if docker_quiet("container", "inspect", self.name):
            ids = self.run("docker", "ps", "-aq", check=False).stdout.split()
            if ids:
                self.run("docker", "rm", "-f", *ids, check=False, timeout=120)
            subprocess.run(
                ["docker", "rm", "-f", self.name], capture_output=True, timeout=120, check=False
            )
        if self.work.exists():
            shutil.rmtree(self.work)
        if WORK_ROOT.exists() and not any(WORK_ROOT.iterdir()):
            WORK_ROOT.rmdir()

    # -- commands --------------------------------------------------------------------------

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 120,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
    ) -> subprocess.CompletedProcess:
        """`argv` on the host, as root, with its output."""
        options = ["-i"] if stdin is not None else []
        for key, value in (env or {}).items():
            options += ["-e", f"{key}={value}"]
        if workdir:
            options += ["-w", workdir]
        done = subprocess.run(
            ["docker", "exec", *options, self.name, *argv],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def shell(self, script: str, check: bool = True, timeout: float = 60):
        """A line typed at the host's shell (pipes and all), as the README's recipes are."""
        return self.run("bash", "-o", "pipefail", "-c", script, check=check, timeout=timeout)

    def ok(self, *argv: str) -> bool:
        return self.run(*argv, check=False).returncode == 0

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.run("mkdir", "-p", os.path.dirname(path))
        self.run("dd", f"of={path}", "status=none", stdin=text.encode())
        self.run("chmod", mode, path)

    def put_project(self) -> None:
        """The checkout at SOURCE_DIR and the wheelhouse where OFFLINE points pip."""
        self.untar(source_tar(), SOURCE_DIR)
        self.untar(directory_tar(build_wheelhouse()), OFFLINE["PIP_FIND_LINKS"])

    def untar(self, data: bytes, directory: str) -> None:
        self.run("mkdir", "-p", directory)
        self.run("tar", "-x", "-C", directory, stdin=data, timeout=300)

    # -- the agent, as systemd and journald see it -------------------------------------------

    def unit(self, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", UNIT, *[f"--property={p}" for p in properties])
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """The unit's journal entries (journalctl -o json), oldest first."""
        out = self.run("journalctl", "-u", UNIT, "-o", "json", "--no-pager", *args)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def lines(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The agent's own JSON lines in the journal, optionally one event with some fields."""
        found = []
        for entry in self.journal("SYSLOG_IDENTIFIER=docker-supervisor"):
            try:
                line = json.loads(entry["MESSAGE"])
            except (ValueError, TypeError):
                continue
            if event is not None and line.get("event") != event:
                continue
            if all(line.get(k) == v for k, v in fields.items()):
                found.append(line)
        return found

    def wait_line(
        self, event: str, timeout_s: float = 60, after: int = 0, **fields: Any
    ) -> dict[str, Any]:
        """The `after`-th next line of `event` with `fields`, polled from the journal."""

        def seen() -> dict[str, Any] | None:
            got = self.lines(event, **fields)
            return got[after] if len(got) > after else None

        return wait_for(seen, timeout_s, f"{event} {fields} in the journal", every_s=0.5)

    def measure(self, name: str, action: Callable[[], Any]) -> Any:
        began = time.monotonic()
        result = action()
        self.figures[name] = time.monotonic() - began
        return result

    def container_address(self, name: str) -> str:
        return self.run(
            "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name
        ).stdout.strip()
