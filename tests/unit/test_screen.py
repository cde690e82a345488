"""screen.py: the status table's cells, fitted to a width, coloured (pure)."""

from supervisor.cli.screen import column_widths, format_table, render_watch, table_cells

ROW = {
    "service": "web",
    "container": "supervisor-demo-web-1",
    "status": "running",
    "reason": None,
    "restarts_in_window": 1,
    "backoff_attempt": 1,
    "next_action": "heal (attempt 2, after 10s)",
    "last_heal": {"at": 100.0, "attempt": 1, "result": "recovered"},
}


def test_cells_say_the_last_heal_and_its_age():
    header, web = table_cells([ROW], now=130.0)
    assert header[0] == "SERVICE"
    assert web == (
        "web",
        "supervisor-demo-web-1",
        "running",
        "-",
        "1",
        "1",
        "heal (attempt 2, after 10s)",
        "recovered (attempt 1, 30s ago)",
    )


def test_a_table_too_wide_gives_way_in_its_flexible_columns_only():
    lines = table_cells([ROW], now=130.0)
    assert sum(column_widths(lines)) + 14 == 127  # unfitted, two spaces between columns
    widths = column_widths(lines, 80)
    # SERVICE, STATUS, REASON, RESTARTS, BACKOFF keep their widths; the rest share 31.
    assert widths == [7, 10, 7, 6, 8, 7, 10, 11]
    table = format_table(lines, 80)
    assert [len(line) for line in table] == [78, 79]  # LAST HEAL is 9 of 11, "recovered…" 10
    cells = ["web    ", "superviso…", "running", "-     ", "1       ", "1      ", "heal (att…"]
    assert table[1] == "  ".join([*cells, "recovered…"])


def test_colour_marks_the_status_and_the_header_only_when_asked():
    plain = format_table(table_cells([ROW], 130.0), 80)
    coloured = format_table(table_cells([ROW], 130.0), 80, colour=True)
    assert "\x1b[" not in "".join(plain)
    assert "\x1b[32mrunning\x1b[0m" in coloured[1]
    assert coloured[0].startswith("\x1b[1mSERVICE")


def test_a_watch_screen_fits_80_columns_and_narrows_no_further_than_it_can():
    lines = render_watch([ROW], None, 130.0, 80, colour=False).splitlines()
    assert lines[0].startswith("docker-supervisor status, ")
    assert lines[-1] == "agent: not running"
    assert max(len(line) for line in lines) == 79  # the row above
    # At 60, every flexible column is at its least: 35 fixed + 24 + 14 spaces.
    narrow = render_watch([ROW], None, 130.0, 60, colour=False).splitlines()
    assert max(len(line) for line in narrow) == 73
