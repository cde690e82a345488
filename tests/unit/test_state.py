"""state.py: atomic save, load, an unreadable file moved aside, version 1 read, commands."""

import json
import threading

import pytest

from supervisor.state import (
    STATE_FILE,
    Command,
    Saved,
    StateWriter,
    load_state,
    parse_command,
    save_state,
)

WEB = {"attempt": 2, "restarts_at": [1.0, 2.0], "gave_up": False}
INTENT = {"key": "abc", "service": "web", "kind": "container", "container_id": "abc", "at": 5.0}


def test_round_trip(tmp_path):
    save_state(tmp_path, {"web": WEB}, intents=[INTENT])
    assert load_state(tmp_path) == Saved({"web": WEB}, [INTENT])
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary left behind


def test_missing_file_is_empty(tmp_path):
    assert load_state(tmp_path / "nowhere") == Saved()


def test_corrupt_file_is_moved_aside(tmp_path, capsys):
    (tmp_path / STATE_FILE).write_text('{"version": 2, "services": {"web": ')
    assert load_state(tmp_path) == Saved()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 1 and names[0].startswith(f"{STATE_FILE}.corrupt-")


def test_corrupt_file_left_in_place_for_readers(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"version": 99, "services": {}}))
    assert load_state(tmp_path, move_aside=False) == Saved()
    assert (tmp_path / STATE_FILE).exists()


def test_a_version_1_interrupted_cycle_is_an_intent(tmp_path):
    old = {"web": {**WEB, "down_cycle": {"container_id": "abc", "at": 5.0}}}
    (tmp_path / STATE_FILE).write_text(json.dumps({"version": 1, "services": old}))
    assert load_state(tmp_path) == Saved({"web": WEB}, [INTENT])


def test_write_through_returns_once_a_later_snapshot_is_on_disk(tmp_path):
    """Each write-through sees its own change on disk, whatever the writer coalesced."""
    value = {"n": 0}
    lock = threading.Lock()
    writer = StateWriter(tmp_path, lambda: ({"web": dict(value)}, {}, []))

    def bump(times):
        for _ in range(times):
            with lock:
                value["n"] += 1
                mine = value["n"]
            assert writer.write_through()
            assert load_state(tmp_path).services["web"]["n"] >= mine

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert load_state(tmp_path).services["web"]["n"] == 100


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([1, 2], "expected an object, got list"),
        ({"command": "explode", "service": "web"}, "'command' must be one of"),
        ({"command": "pause", "service": 3}, "'service' must be a service name"),
        ({"command": "pause", "service": "web", "until": "soon"}, "'until' must be"),
        ({"command": "pause", "service": "web", "until": True}, "'until' must be"),
    ],
)
def test_a_malformed_command_is_refused_with_its_reason(data, error):
    with pytest.raises(ValueError, match=error):
        parse_command(data)


def test_commands_parse():
    assert parse_command({"command": "pause", "service": "web", "until": 5}) == Command(
        "pause", "web", 5.0
    )
    assert parse_command({"command": "reset", "service": "web"}) == Command("reset", "web")
