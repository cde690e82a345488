"""state.py: atomic save, load, an unreadable file moved aside, version 1 read, commands."""

import json
import os
import stat
import threading

import pytest

from supervisor.errors import UnsafeFile
from supervisor.store.commands import LOCK_FILE, Command, lock_state_dir, parse_command
from supervisor.store.state import STATE_FILE, Saved, StateWriter, load_state, save_state
from tests.support import wait_for

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


def test_a_write_through_that_did_not_reach_the_disk_says_so(tmp_path, caplog):
    """A full or read-only state filesystem (here: a file where the directory was): write_through is
    False, the writer says so once and tries again by itself; once it can, it says that."""
    state = tmp_path / "state"
    state.mkdir()
    health = []
    writer = StateWriter(state, lambda: ({"web": {"n": 1}}, {}, []))
    writer.on_health = health.append
    assert writer.write_through() and not writer.failing
    (state / "state.json").unlink()
    state.rmdir()
    state.write_text("")  # no directory can be made there: every write fails
    with caplog.at_level("INFO", logger="supervisor.state"):
        assert writer.write_through() is False
        assert writer.write_through() is False
        assert writer.failing and health == [False]
        state.unlink()
        state.mkdir()  # freed: the writer's own retry (every RETRY_S) writes it
        wait_for(lambda: (state / "state.json").exists(), 10, "the retry")
    writer.close()
    assert health == [False, True] and not writer.failing
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("state.save_failed") == 1 and events.count("state.saved") == 1
    assert load_state(state).services["web"] == {"n": 1}


def test_what_waits_for_a_save_runs_once_the_file_holds_it(tmp_path):
    """A heal's outcome line is said only once `status` can read the outcome: the action
    given with a request sees its own change on disk, and a request made after close runs
    at once (nothing is lost)."""
    value = {"n": 0}
    writer = StateWriter(tmp_path, lambda: ({"web": dict(value)}, {}, []))
    seen_on_disk: list[int] = []
    done = threading.Event()

    def said():
        seen_on_disk.append(load_state(tmp_path).services["web"]["n"])
        done.set()

    value["n"] = 1
    writer.request()  # a plain request coalesces; the next one must not wait behind it
    value["n"] = 2
    writer.request(then=said)
    assert done.wait(5)
    assert seen_on_disk == [2]
    writer.close()
    writer.request(then=lambda: seen_on_disk.append(-1))
    assert seen_on_disk == [2, -1]


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


def test_a_state_directory_others_may_write_is_refused(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state_dir.chmod(0o777)
    with pytest.raises(UnsafeFile) as caught:
        lock_state_dir(state_dir)
    assert str(caught.value) == (
        f"{state_dir}: writable by group or others (mode 0777): chmod go-w it, "
        "or run with --insecure-policies"
    )
    lock_state_dir(state_dir, strict=False).close()


def test_a_new_state_directory_is_private(tmp_path):
    lock_state_dir(tmp_path / "new").close()
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700


def test_the_lock_is_never_a_link_to_another_file(tmp_path):
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / LOCK_FILE).symlink_to(precious)
    with pytest.raises(UnsafeFile) as caught:
        lock_state_dir(state_dir)
    assert str(caught.value) == f"{state_dir / LOCK_FILE}: a symbolic link; remove it"
    assert precious.read_text() == "keep me\n"  # not truncated


def test_a_state_file_that_is_a_link_is_not_read(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    save_state(elsewhere, {"web": WEB}, intents=[INTENT])
    assert load_state(elsewhere).intents == [INTENT]  # what the link would have given
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / STATE_FILE).symlink_to(elsewhere / STATE_FILE)
    assert load_state(state_dir) == Saved()
    assert not (state_dir / STATE_FILE).exists()  # the link moved aside, not followed
