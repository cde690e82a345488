"""The status table as text: its cells, fitted to a width, coloured on a terminal.

Pure: rows in, lines out. `status` prints the table; `status --watch` redraws it in place,
fitted to the terminal (the widest of the container, next-action and last-heal columns give
way first, cut with "…"), with each status in its colour when colour is on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

HEADER = ("SERVICE", "CONTAINER", "STATUS", "REASON", "RESTARTS", "BACKOFF", "NEXT", "LAST HEAL")
# Columns that give way when the table is wider than the screen, and how narrow they may go.
FLEXIBLE = {1: 6, 6: 8, 7: 10}
COLOURS = {"running": "32", "starting": "33", "stopped": "2", "error": "31"}  # SGR codes


def table_cells(rows: Sequence[dict[str, Any]], now: float) -> list[tuple[str, ...]]:
    """The header and one line of cells per service."""
    lines = [HEADER]
    for row in rows:
        heal = row["last_heal"]
        last = "-"
        if heal:
            ago = int(now - heal.get("at", now))
            last = f"{heal.get('result')} (attempt {heal.get('attempt')}, {ago}s ago)"
        lines.append(
            (
                row["service"],
                row["container"] or "-",
                row["status"],
                row["reason"] or "-",
                str(row["restarts_in_window"]),
                str(row["backoff_attempt"]),
                row["next_action"],
                last,
            )
        )
    return lines


def column_widths(lines: Sequence[Sequence[str]], width: int | None = None) -> list[int]:
    """Each column's width; with `width`, the flexible ones narrowed (widest first) until
    a line, with two spaces between columns, fits."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    if width is None:
        return widths
    while sum(widths) + 2 * (len(widths) - 1) > width:
        narrowable = [i for i, least in FLEXIBLE.items() if widths[i] > least]
        if not narrowable:
            break
        widest = max(narrowable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(0, width - 1)].rstrip() + "…"


def format_table(
    lines: Sequence[Sequence[str]], width: int | None = None, colour: bool = False
) -> list[str]:
    widths = column_widths(lines, width)
    out = []
    for n, line in enumerate(lines):
        cells = [_cut(cell, w).ljust(w) for cell, w in zip(line, widths, strict=True)]
        if colour and n > 0 and line[2] in COLOURS:
            cells[2] = f"\x1b[{COLOURS[line[2]]}m{cells[2]}\x1b[0m"
        if colour and n == 0:
            cells = [f"\x1b[1m{c}\x1b[0m" for c in cells]
        out.append("  ".join(cells).rstrip())
    return out


def agent_line(agent: dict[str, Any] | None) -> str:
    if agent is None:
        return "agent: not running"
    line = (
        f"agent: pid {agent['pid']}, up {agent['uptime_s']}s, RSS {agent['rss_mb']} MB, "
        f"CPU {agent['cpu_s']}s"
    )
    state = agent.get("state_file", "writable")
    return line if state == "writable" else f"{line}; state file {state}: no heal stops anything"


def render_watch(
    rows: Sequence[dict[str, Any]],
    agent: dict[str, Any] | None,
    now: float,
    width: int,
    colour: bool,
) -> str:
    """One screen of `status --watch`: a title, the table fitted to `width`, the agent."""
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    title = _cut(f"docker-supervisor status, {stamp} (Ctrl-C ends)", width)
    table = format_table(table_cells(rows, now), width, colour)
    return "\n".join([title, "", *table, "", _cut(agent_line(agent), width)])
