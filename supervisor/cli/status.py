"""`status`: every service's row as the agent would show it, once or `--watch`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config.model import Policy
from ..config.policy import load_policies
from ..errors import (
    SupervisorError,
)
from .parser import EXIT_OK, _strict


def cmd_status(args: argparse.Namespace) -> int:
    policies = load_policies(args.policies, _strict(args))
    if args.watch:
        return _watch(args, policies)
    agent, rows = _status_now(args, policies)
    if args.json:
        print(json.dumps({"agent": agent, "services": rows}, indent=2))
    else:
        from .screen import agent_line

        _print_table(rows)
        print(agent_line(agent))
    return EXIT_OK


def _status_now(args: argparse.Namespace, policies: list[Policy]) -> tuple[Any, list[Any]]:
    """The agent's figures and one row per service, as of now (one engine listing)."""
    from ..docker.engine import Engine
    from ..store.commands import running_agent_pid
    from ..store.state import default_state_dir, load_state

    state_dir = args.state_dir or default_state_dir()
    saved = load_state(state_dir, move_aside=False).services
    pid = running_agent_pid(state_dir)
    engine = Engine()
    containers = None
    with contextlib.suppress(SupervisorError):  # each row then says engine_unreachable
        containers = engine.list_containers()
    engine.close()
    now = time.time()
    if containers is not None:
        from ..core.selector import in_force

        policies = in_force(policies, containers, saved)
    agent = _agent_figures(pid)
    # What the agent cannot write, it cannot save either: the filesystem itself says so.
    problem = unwritable(state_dir) if agent is not None else None
    if agent is not None:
        agent["state_file"] = problem or "writable"
    rows = [
        _status_row(
            p, engine.observe(p, containers), saved.get(p.service, {}), now, pid, bool(problem)
        )
        for p in policies
        if not p.is_selector
    ]
    return agent, rows


def unwritable(state_dir: Path) -> str | None:
    """Why the state directory's filesystem cannot take a state file now (read-only, full),
    from its figures alone (nothing is written to find out); None when it can."""
    import os

    try:
        fs = os.statvfs(state_dir)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if fs.f_flag & os.ST_RDONLY:
        return "cannot be written: read-only filesystem"
    free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
    if free < 64 * 1024:
        return f"cannot be written: {free // 1024} KiB free"
    return None


def _watch(args: argparse.Namespace, policies: list[Policy]) -> int:
    """Redraw the table in place on a terminal (colour unless NO_COLOR); piped, print one
    JSON line per refresh. Ends on Ctrl-C (exit 0) or when the reader goes away."""
    import os
    import shutil

    from .screen import render_watch

    tty = sys.stdout.isatty()
    colour = tty and not os.environ.get("NO_COLOR")
    try:
        while True:
            agent, rows = _status_now(args, policies)
            if tty:
                width = shutil.get_terminal_size().columns
                screen = render_watch(rows, agent, time.time(), width, colour)
                sys.stdout.write("\x1b[H\x1b[2J" + screen + "\n")
            else:
                line = {"at": round(time.time(), 3), "agent": agent, "services": rows}
                sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written
        return EXIT_OK


def _status_row(
    policy: Policy,
    seen: Any,
    saved: dict[str, Any],
    now: float,
    agent_pid: int | None,
    unwritable_now: bool = False,
) -> dict[str, Any]:
    """The row the agent would publish, from its saved memory and the gate it asks."""
    from dataclasses import replace

    from ..core.rows import build_row, make_facts
    from ..core.tracker import RestartTracker, policy_digest

    tracker = RestartTracker(policy.heal, policy.check)
    tracker.restore(saved, same_policy=saved.get("policy_digest") == policy_digest(policy))
    manual = saved.get("manual_stop")
    if seen.container is not None and manual == seen.container.id and not seen.is_healthy:
        seen = replace(seen, manual_stop=True)
    held_until = (
        saved.get("held_until") if isinstance(saved.get("held_until"), int | float) else None
    )
    # A cycle in flight is the running agent's to tell; without one, none is in flight.
    phase = saved.get("phase") if agent_pid is not None else None
    # So is a deferral: only the agent reads the host's pressure.
    deferred = agent_pid is not None and bool(saved.get("deferred"))
    # And what it waits for: only the agent looks at what a service needs, and only the
    # agent knows its state file could not be written.
    waiting = saved.get("waiting_for") if agent_pid is not None else None
    facts = make_facts(
        policy,
        seen,
        tracker,
        now,
        held_until,
        waiting if isinstance(waiting, str) else None,
        deferred=deferred,
        state_unwritable=agent_pid is not None
        and (unwritable_now or bool(saved.get("state_unwritable"))),
    )
    row = build_row(
        policy,
        seen,
        facts,
        tracker,
        now,
        phase=phase,
        held_until=held_until,
        last_heal=saved.get("last_heal"),
    )
    return {
        "service": policy.service,
        "container": row["container"],
        "status": row["status"],
        "reason": row["reason"],
        "restarts_in_window": row["restarts_in_window"],
        "backoff_attempt": row["attempt"],
        "next_action": row["next_action"],
        "last_heal": row["last_heal"],
    }


def _agent_figures(pid: int | None) -> dict[str, Any] | None:
    if pid is None:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            cpu = proc.cpu_times()
            return {
                "pid": pid,
                "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                "cpu_s": round(cpu.user + cpu.system, 2),
                "uptime_s": round(time.time() - proc.create_time()),
            }
    except psutil.Error:
        return None


def _print_table(rows: list[dict[str, Any]]) -> None:
    from .screen import format_table, table_cells

    print("\n".join(format_table(table_cells(rows, time.time()))))
