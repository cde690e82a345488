"""healing.py: the backoff formula, thresholds, grace, the budget window and the reset."""

import pytest

from supervisor.config.model import BackoffPolicy, CheckPolicy, HealPolicy
from supervisor.core import tracker as healing
from supervisor.core.tracker import RestartTracker, compute_backoff_delay_s
from supervisor.docker.states import Status

BAD = (Status.ERROR, "unhealthy")
GOOD = (Status.RUNNING, None)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def tracker(check=None, **heal) -> RestartTracker:
    heal.setdefault("backoff", BackoffPolicy(initial_s=10, factor=2, max_s=60, jitter=0))
    return RestartTracker(HealPolicy(**heal), check or CheckPolicy(), rng=lambda: 0.5)


def test_backoff_sequence_without_jitter():
    backoff = BackoffPolicy(initial_s=10, factor=2, max_s=60, jitter=0)
    delays = [compute_backoff_delay_s(n, backoff) for n in range(1, 8)]
    assert delays == [0.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]


@pytest.mark.parametrize(("u", "delay"), [(0.0, 18.0), (0.5, 20.0), (0.75, 21.0)])
def test_jitter_spreads_plus_minus(u, delay):
    backoff = BackoffPolicy(initial_s=10, factor=2, max_s=60, jitter=0.1)
    assert compute_backoff_delay_s(3, backoff, rng=lambda: u) == pytest.approx(delay)


def test_first_bad_check_heals_at_once_then_backs_off():
    clock, t = FakeClock(), tracker(max_restarts=10)
    decisions = []
    for _ in range(4):
        d = t.observe(*BAD, clock.now)
        decisions.append((d.action, d.attempt, d.delay_s))
        t.record_attempt(clock.advance(1))
        clock.advance(5)
    assert decisions == [
        (healing.HEAL, 1, 0.0),
        (healing.HEAL, 2, 10.0),
        (healing.HEAL, 3, 20.0),
        (healing.HEAL, 4, 40.0),
    ]


def test_failures_threshold_counts_consecutive_bad_checks():
    t = tracker(check=CheckPolicy(interval_s=10, failures=3))
    whys = [t.observe(*BAD, 10 * i).why for i in range(2)]
    assert whys == [healing.WHY_BELOW_THRESHOLD] * 2
    t.observe(*GOOD, 20)  # one good check breaks the streak
    whys = [t.observe(*BAD, 30 + 10 * i).why for i in range(3)]
    assert whys == [healing.WHY_BELOW_THRESHOLD, healing.WHY_BELOW_THRESHOLD, healing.WHY_BAD]


def test_a_burst_of_event_checks_counts_once_per_half_interval():
    t = tracker(check=CheckPolicy(interval_s=10, failures=2))
    assert t.observe(*BAD, 100.0).why == healing.WHY_BELOW_THRESHOLD
    assert t.observe(*BAD, 100.1).why == healing.WHY_ALREADY_COUNTED
    assert t.observe(*BAD, 104.9).why == healing.WHY_ALREADY_COUNTED
    assert t.observe(*BAD, 105.0).action == healing.HEAL


def test_grace_after_start():
    t = tracker(check=CheckPolicy(grace_s=30))
    assert t.observe(*BAD, now=129.9, started_at=100).why == healing.WHY_GRACE
    assert t.observe(*BAD, now=130.0, started_at=100).action == healing.HEAL


def test_starting_and_non_healable_reasons_do_nothing():
    t = tracker(check=CheckPolicy(interval_s=1, failures=2))
    t.observe(*BAD, 0)
    assert t.observe(Status.STARTING, "health_starting", 1).why == healing.WHY_STARTING
    assert t.observe(Status.STOPPED, "exited", 2).why == healing.WHY_NOT_HEALABLE
    # the streak was broken by a state the policy does not heal
    assert t.observe(*BAD, 3).why == healing.WHY_BELOW_THRESHOLD


def test_crash_loop_gives_up_after_max_restarts_in_window():
    clock, t = FakeClock(), tracker(max_restarts=3, window_s=600)
    actions = []
    for _ in range(5):
        d = t.observe(*BAD, clock.now)
        actions.append(d.action)
        if d.action == healing.HEAL:
            t.record_attempt(clock.advance(1))
        clock.advance(10)
    assert actions == [healing.HEAL] * 3 + [healing.GIVE_UP, healing.NOTHING]
    assert t.gave_up
    assert t.observe(*BAD, clock.now).why == healing.WHY_GAVE_UP


def test_restarts_outside_the_window_do_not_count():
    clock, t = FakeClock(), tracker(max_restarts=2, window_s=100)
    for _ in range(2):
        assert t.observe(*BAD, clock.now).action == healing.HEAL
        t.record_attempt(clock.now)
        clock.advance(60)
    # restarts at 1000 and 1060; at 1120 the first is 120 s old: out of the window
    assert t.restarts_in_window(clock.now) == 1
    assert t.observe(*BAD, clock.now).action == healing.HEAL


def test_reset_after_continuous_health():
    clock, t = FakeClock(), tracker(reset_after_s=60, max_restarts=10)
    t.observe(*BAD, clock.now)
    t.record_attempt(clock.now)
    t.record_recovered(clock.advance(5))
    assert t.observe(*GOOD, clock.advance(30)).action == healing.NOTHING
    assert t.observe(*GOOD, clock.advance(29.9)).action == healing.NOTHING
    assert t.observe(*GOOD, clock.advance(0.1)).action == healing.RESET
    assert t.attempt == 0
    assert t.observe(*BAD, clock.advance(1)).delay_s == 0.0


def test_turning_bad_before_reset_keeps_backing_off():
    clock, t = FakeClock(), tracker(reset_after_s=60, max_restarts=10)
    t.observe(*BAD, clock.now)
    t.record_attempt(clock.now)
    t.record_recovered(clock.advance(5))
    t.observe(*GOOD, clock.advance(30))
    d = t.observe(*BAD, clock.advance(1))
    assert (d.attempt, d.delay_s) == (2, 10.0)


def test_healthy_by_itself_for_reset_after_clears_give_up():
    clock, t = FakeClock(), tracker(max_restarts=1, reset_after_s=60)
    t.observe(*BAD, clock.now)
    t.record_attempt(clock.now)
    assert t.observe(*BAD, clock.advance(1)).action == healing.GIVE_UP
    assert t.observe(*GOOD, clock.advance(1)).action == healing.NOTHING
    assert t.gave_up
    assert t.observe(*GOOD, clock.advance(59.9)).action == healing.NOTHING
    d = t.observe(*GOOD, clock.advance(0.1))
    assert (d.action, d.why) == (healing.RESET, healing.WHY_HEALTHY)
    assert not t.gave_up and t.attempt == 0


def test_a_flapping_service_gives_up_once():
    """Healthy for less than reset_after between flaps: one give-up, never a second."""
    clock, t = FakeClock(), tracker(max_restarts=2, window_s=600, reset_after_s=60)
    actions = []
    for _ in range(20):
        d = t.observe(*BAD, clock.advance(10))
        actions.append(d.action)
        if d.action == healing.HEAL:
            t.record_attempt(clock.now)
        t.observe(*GOOD, clock.advance(30))
    assert actions.count(healing.HEAL) == 2
    assert actions.count(healing.GIVE_UP) == 1
    assert actions[3:] == [healing.NOTHING] * 17


def test_deciding_changes_nothing_until_committed():
    t = tracker(check=CheckPolicy(interval_s=10, failures=2))
    before = t.memory
    first = t.decide(*BAD, 100.0)
    assert t.memory == before and first.why == healing.WHY_BELOW_THRESHOLD
    assert t.decide(*BAD, 100.0) == first  # the same question, the same answer
    t.commit(first)
    assert t.memory.bad_checks == 1
    heal = t.decide(*BAD, 105.0)
    assert (heal.action, heal.attempt, t.attempt) == (healing.HEAL, 1, 0)


def test_failed_attempts_count_toward_the_budget():
    """record_attempt is called at every stop, recovered or not: three failed stops in the
    window spend a budget of three."""
    clock, t = FakeClock(), tracker(max_restarts=3, window_s=600)
    for _ in range(3):
        assert t.observe(*BAD, clock.advance(100)).action == healing.HEAL
        t.record_attempt(clock.now)  # the stop failed: no recovery follows
    assert t.restarts_in_window(clock.now) == 3
    assert t.observe(*BAD, clock.advance(100)).action == healing.GIVE_UP


def test_restore_under_a_changed_policy_drops_give_up_but_keeps_history():
    t = tracker()
    saved = {"attempt": 4, "restarts_at": [5.0, 6.0], "gave_up": True}
    t.restore(saved, same_policy=False)
    assert t.to_snapshot() == {"attempt": 0, "restarts_at": [5.0, 6.0], "gave_up": False}
    t.restore(saved, same_policy=True)
    assert t.to_snapshot() == {"attempt": 4, "restarts_at": [5.0, 6.0], "gave_up": True}


def test_a_stop_sent_after_its_row_was_saved_counts_from_when_it_was_sent():
    """Saved as decided (5.0 then 20.0), the last stop sent at 29.0 by its intent: that one
    counts from 29.0; a stop already counted is left; one the row never had is added."""
    t = tracker(max_restarts=3, window_s=60)
    t.restore({"attempt": 2, "restarts_at": [5.0, 20.0]})
    t.stop_sent_at(29.0)
    assert t.memory.restarts_at == (5.0, 29.0)
    t.stop_sent_at(29.0)
    assert t.memory.restarts_at == (5.0, 29.0)
    fresh = tracker()
    fresh.stop_sent_at(12.0)
    assert fresh.memory.restarts_at == (12.0,)
    assert t.restarts_in_window(88.5) == 1  # 29.0 still counts; 20.0 would not have


def test_snapshot_round_trip_and_bad_snapshots():
    t = tracker()
    t.observe(*BAD, 5)
    t.record_attempt(5)
    other = tracker()
    other.restore(t.to_snapshot())
    assert other.to_snapshot() == {"attempt": 1, "restarts_at": [5.0], "gave_up": False}
    other.restore({"attempt": "x", "restarts_at": None})
    assert other.to_snapshot() == {"attempt": 0, "restarts_at": [], "gave_up": False}


def test_exited_heals_a_failure_not_a_clean_exit():
    t = tracker(on=frozenset({"exited"}))
    assert t.observe(Status.STOPPED, "exited", 0).why == healing.WHY_NOT_HEALABLE
    assert t.observe(Status.ERROR, "exited", 1).action == healing.HEAL
