"""state.py: atomic save, load, and an unreadable file moved aside."""

import json

from supervisor.state import STATE_FILE, load_state, save_state


def test_round_trip(tmp_path):
    save_state(tmp_path, {"web": {"attempt": 2, "restarts_at": [1.0, 2.0], "gave_up": False}})
    assert load_state(tmp_path) == {
        "web": {"attempt": 2, "restarts_at": [1.0, 2.0], "gave_up": False}
    }
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary left behind


def test_missing_file_is_empty(tmp_path):
    assert load_state(tmp_path / "nowhere") == {}


def test_corrupt_file_is_moved_aside(tmp_path, capsys):
    (tmp_path / STATE_FILE).write_text('{"version": 1, "services": {"web": ')
    assert load_state(tmp_path) == {}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 1 and names[0].startswith(f"{STATE_FILE}.corrupt-")


def test_corrupt_file_left_in_place_for_readers(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"version": 99, "services": {}}))
    assert load_state(tmp_path, move_aside=False) == {}
    assert (tmp_path / STATE_FILE).exists()
