"""Talking to a running agent: the lock that says one runs (and which), and the queue of
operator commands (pause, resume, reset) it takes and answers."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config.policy import check_permissions
from ..errors import AgentRunning, UnsafeFile

LOCK_FILE = "agent.lock"


def lock_state_dir(state_dir: Path, strict: bool = True) -> IO[str]:
    """Hold the state directory's exclusive lock for as long as the returned file is open.

    The directory is checked like the policies (with `strict`: no one but root or us may own
    or write it: the state file names containers the agent will start), and the lock is
    never a symbolic link, so it cannot be aimed at another file to truncate.
    Raises AgentRunning when another agent holds it: one agent per state directory.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = check_permissions(state_dir) if strict else None
    if problem is not None:
        raise UnsafeFile(str(problem))
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFile(f"{path}: a symbolic link; remove it") from None
        raise UnsafeFile(f"{path}: cannot open: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path}: not a regular file; remove it")
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise AgentRunning(f"{state_dir}: another agent is running (pid {pid})") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def running_agent_pid(state_dir: Path) -> int | None:
    """The pid of the agent holding the state directory's lock, or None."""
    try:
        handle = open(state_dir / LOCK_FILE, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


COMMANDS_DIR = "commands"


def send_command(state_dir: Path, command: dict[str, Any]) -> Path:
    """Drop an operator command where the running agent picks it up within a beat."""
    directory = state_dir / COMMANDS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cmd-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(command, f)
    final = directory / f"{time.time_ns()}-{os.getpid()}.json"
    os.replace(tmp, final)
    return final


def answer_command(path: Path, refused: str | None = None) -> None:
    """The agent's answer to a command: its file goes; a refusal first leaves its reason
    beside it (a dot file, which no agent takes for a command)."""
    if refused is not None:
        with contextlib.suppress(OSError):
            refusal_path(path).write_text(refused, encoding="utf-8")
    path.unlink(missing_ok=True)


def refusal_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.refused")


def take_refusal(path: Path) -> str | None:
    """Why the agent refused the command at `path`, once it answered; None if it did not."""
    answer = refusal_path(path)
    try:
        why = answer.read_text(encoding="utf-8")
    except OSError:
        return None
    answer.unlink(missing_ok=True)
    return why


COMMAND_ACTIONS = ("pause", "resume", "reset")


@dataclass(frozen=True)
class Command:
    """An operator's pause, resume or reset, as the running agent takes it."""

    action: str
    service: str
    until: float | None = None  # pause only: when the hold ends (None: until resumed)
    # Pause only: how long it holds, counted where it takes effect (a step of the clock
    # between the command and the agent does not move its end); `until` is as asked.
    for_s: float | None = None


def parse_command(data: Any) -> Command:
    """A command file's JSON as a Command; ValueError says what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    action, service, until = data.get("command"), data.get("service"), data.get("until")
    if action not in COMMAND_ACTIONS:
        raise ValueError(f"'command' must be one of {', '.join(COMMAND_ACTIONS)}")
    if not isinstance(service, str) or not service:
        raise ValueError("'service' must be a service name")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)):
        raise ValueError("'until' must be a time in seconds or null")
    for_s = data.get("for_s")
    if for_s is not None and (isinstance(for_s, bool) or not isinstance(for_s, int | float)):
        raise ValueError("'for_s' must be seconds or null")
    return Command(
        action,
        service,
        None if until is None else float(until),
        None if for_s is None else float(for_s),
    )


def pending_commands(state_dir: Path) -> list[tuple[Path, Command | str]]:
    """The commands waiting for the agent, oldest first, each parsed or with its problem.

    The caller removes each file once the command took effect: that is the sender's answer.
    """
    directory = state_dir / COMMANDS_DIR
    try:
        paths = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return []
    found: list[tuple[Path, Command | str]] = []
    for path in paths:
        try:
            found.append((path, parse_command(json.loads(path.read_text(encoding="utf-8")))))
        except (OSError, ValueError) as e:
            found.append((path, str(e)))
    return found
