"""board.py: READY waits for every service; the saved rows stand until replaced; the status
command's rows come from the same gate as the agent's."""

from supervisor.cli.status import _status_row
from supervisor.config.model import HealPolicy, Match, Policy
from supervisor.docker.containers import ContainerInfo, Observation
from supervisor.docker.states import Status
from supervisor.publish.board import Board


class Notes:
    def __init__(self):
        self.sent = []

    def ready(self, line):
        self.sent.append(("READY", line))

    def status(self, line):
        self.sent.append(("STATUS", line))


def row(status="running", reason=None):
    return {"status": status, "reason": reason, "container": "c"}


def test_ready_only_once_every_service_was_looked_at():
    notes, saves = Notes(), []
    board = Board(notes, lambda then=None: saves.append(1))
    board.expect("a", {"held_until": 5.0})
    board.expect("b")
    assert board.rows() == {"a": {"held_until": 5.0}}  # saved memory stands meanwhile
    board.publish("a", row())
    assert notes.sent == [] and not board.ready
    board.publish("b", row("error", "unhealthy"))
    assert notes.sent == [("READY", "2 services: 1 running, 1 error")]
    board.publish("b", row())
    assert notes.sent[-1] == ("STATUS", "2 services: 2 running")
    assert len(saves) == 3


def test_a_removed_service_does_not_hold_ready_back():
    notes = Notes()
    board = Board(notes, lambda then=None: None)
    board.expect("a")
    board.expect("b")
    board.publish("a", row())
    board.drop("b")
    assert notes.sent == [("READY", "1 services: 1 running")]


def test_status_does_not_offer_to_heal_a_clean_exit():
    policy = Policy("job", Match(name="job"), heal=HealPolicy(on=frozenset({"exited"})))
    container = ContainerInfo("abc", "job", state={"Status": "exited", "ExitCode": 0})
    clean = Observation(Status.STOPPED, "exited", container)
    assert _status_row(policy, clean, {}, 100.0, None)["next_action"] == "watch"
    failed = Observation(Status.ERROR, "exited", container)
    assert _status_row(policy, failed, {}, 100.0, None)["next_action"] == (
        "heal (attempt 1, after 0s)"
    )


def test_status_shows_what_the_saved_memory_says():
    policy = Policy("web", Match(name="web"))
    container = ContainerInfo("abc", "web", state={"Status": "running", "Running": True})
    bad = Observation(Status.ERROR, "unhealthy", container)
    gave_up = {"gave_up": True, "attempt": 5, "restarts_at": [90.0]}
    # A give-up made under another policy (no digest here) does not stand.
    assert _status_row(policy, bad, gave_up, 100.0, None)["reason"] == "unhealthy"
    from supervisor.core.tracker import policy_digest

    same = {**gave_up, "policy_digest": policy_digest(policy)}
    shown = _status_row(policy, bad, same, 100.0, None)
    assert (shown["status"], shown["reason"], shown["next_action"]) == (
        "error",
        "gave_up",
        "none: gave up (reset to retry)",
    )
    held = _status_row(policy, bad, {"held_until": 130.0}, 100.0, None)
    assert (held["reason"], held["next_action"]) == ("held", "none: held for 30s")


def test_a_service_waits_for_what_it_needs_and_its_status_says_what():
    from supervisor.core.gate import WHY_DEPENDENCY_DOWN, may_heal
    from supervisor.core.rows import make_facts
    from supervisor.core.tracker import RestartTracker

    policy = Policy("web", Match(name="web"))
    container = ContainerInfo("abc", "web", state={"Status": "running", "Running": True})
    bad = Observation(Status.ERROR, "unhealthy", container)
    tracker = RestartTracker(policy.heal, policy.check)
    facts = make_facts(policy, bad, tracker, 100.0, None, "app (exited)")
    assert may_heal(facts).why == WHY_DEPENDENCY_DOWN
    # The agent's row carries what it waits for; `status` shows it from the saved row.
    saved = {"waiting_for": "app (exited)"}
    shown = _status_row(policy, bad, saved, 100.0, 42)
    assert (shown["status"], shown["reason"], shown["next_action"]) == (
        "error",
        "dependency_down",
        "wait: for app (exited)",
    )
    # Held wins (the operator's word); healthy, nothing to wait for.
    held = _status_row(policy, bad, {**saved, "held_until": 130.0}, 100.0, 42)
    assert held["reason"] == "held"
    good = Observation(Status.RUNNING, None, container)
    assert make_facts(policy, good, tracker, 100.0, None, "app (exited)").waiting_for is None
    # With no agent running, no one looked at what it needs.
    assert _status_row(policy, bad, saved, 100.0, None)["reason"] == "unhealthy"


def test_what_waits_is_told_by_the_rows_of_what_it_needs():
    board = Board(Notes(), lambda then=None: None)
    changed = []
    board.on_change = changed.append
    for name in ("a", "b", "c", "d"):
        board.expect(name)
    board.publish("a", {**row(), "container_id": "A", "healing": True})
    board.publish("b", {**row("error", "held"), "container_id": "B"})
    board.publish("c", {**row("error", "gave_up"), "container_id": "C"})
    board.publish("d", {**row("stopped", "manual_stop"), "container_id": "D"})
    assert [board.waited_for(c) for c in "ABCDE"] == [
        "being healed",
        "held",
        "gave up",
        None,  # stopped by hand is the engine's to tell (its row may lag its start)
        None,
    ]
    assert changed == ["A", "B", "C", "D"]
    board.publish("a", {**row(), "container_id": "A", "healing": True})  # the same row
    assert changed == ["A", "B", "C", "D"]


def test_a_command_before_the_first_look_is_kept_in_the_saved_row():
    saves = []
    board = Board(Notes(), lambda then=None: saves.append(1))
    board.expect("web", {"attempt": 2})
    board.remember("web", held_until=130.0)
    assert board.rows() == {"web": {"attempt": 2, "held_until": 130.0}}
    assert saves == [1]
    board.remember("gone", held_until=1.0)  # no such service: nothing kept
    assert "gone" not in board.rows()
