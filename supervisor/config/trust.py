"""Which files the agent may trust, like sshd's StrictModes: a file the agent reads to act as
root, and every directory above it, must belong to root or the agent's user and be writable
by no one else. A user who could change one of them could make the agent run what they like.

Here: the check of one path and its parents, and the files a compose file makes compose read
(`include`, `extends`, `env_file`, the project's `.env`). Pure but for `stat` and reading the
compose files; it never refuses anything itself (policy.py does, with the policy's line).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

INSECURE_HINT = "or run with --insecure-policies"
MAX_COMPOSE_DEPTH = 8  # includes of includes; compose itself refuses cycles


def permission_problem(path: Path) -> str | None:
    """Why `path` is not to be trusted (writable by group or others, or owned by someone but
    root or us), or None. Follows symbolic links: the file read is what counts."""
    try:
        info = path.stat()
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    return _problem(info, parent=False)


def chain_problem(path: Path) -> str | None:
    """The first problem with `path` or a directory above it, named: "DIR: writable by ...".

    A parent with the sticky bit (/tmp) may be writable by others: they cannot replace what
    is in it."""
    path = Path(os.path.abspath(path))
    problem = permission_problem(path)
    if problem is not None:
        return f"{path}: {problem}"
    for parent in path.parents:
        try:
            info = parent.stat()
        except OSError as e:
            return f"{parent}: cannot read: {e.strerror or e}"
        problem = _problem(info, parent=True)
        if problem is not None:
            return f"{parent}: {problem}"
    return None


def _problem(info: os.stat_result, parent: bool) -> str | None:
    sticky = parent and bool(info.st_mode & stat.S_ISVTX)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
        mode = stat.S_IMODE(info.st_mode)
        return f"writable by group or others (mode {mode:04o}): chmod go-w it, {INSECURE_HINT}"
    if info.st_uid not in (0, os.geteuid()):
        return (
            f"owned by uid {info.st_uid}, not root or the agent's user: chown it, {INSECURE_HINT}"
        )
    return None


def command_path(argv0: str) -> Path | None:
    """The file a command's argv[0] runs (PATH looked up as the agent would), if found."""
    found = shutil.which(argv0)
    return Path(found) if found else None


def compose_inputs(file: Path) -> Iterator[tuple[Path, str]]:
    """Every file compose reads for `file`, with how it is reached: the file itself, the
    project's `.env`, and, through the YAML, `include`, `extends` and `env_file`, followed
    into included and extended files. Files that do not exist are left to compose."""
    seen: set[Path] = set()
    pending = [(Path(os.path.abspath(file)), "", 0)]
    env = Path(os.path.abspath(file)).parent / ".env"
    if env.exists():
        yield env, " (the project's .env)"
    while pending:
        path, how, depth = pending.pop(0)
        if path in seen or not path.exists():
            continue
        seen.add(path)
        yield path, how
        if depth >= MAX_COMPOSE_DEPTH:
            continue
        for reached, kind in _references(path):
            target = Path(os.path.abspath(path.parent / reached))
            label = f" ({kind} in {path})"
            if kind in ("include", "extends"):
                pending.append((target, label, depth + 1))
            elif target.exists() and target not in seen:
                seen.add(target)
                yield target, label


def _references(path: Path) -> Iterator[tuple[str, str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # compose says what is wrong with it when it runs
    if not isinstance(data, dict):
        return
    for item in _as_list(data.get("include")):
        if isinstance(item, str):
            yield item, "include"
        elif isinstance(item, dict):
            for included in _as_list(item.get("path")):
                if isinstance(included, str):
                    yield included, "include"
            for env_file in _as_list(item.get("env_file")):
                if isinstance(env_file, str):
                    yield env_file, "env_file"
    services = data.get("services")
    for service in services.values() if isinstance(services, dict) else ():
        if not isinstance(service, dict):
            continue
        extends = service.get("extends")
        if isinstance(extends, dict) and isinstance(extends.get("file"), str):
            yield extends["file"], "extends"
        for env_file in _as_list(service.get("env_file")):
            if isinstance(env_file, str):
                yield env_file, "env_file"
            elif isinstance(env_file, dict) and isinstance(env_file.get("path"), str):
                yield env_file["path"], "env_file"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
