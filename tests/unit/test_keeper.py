"""keeper.py and journal.py: which due intents still name a container of their service,
which are the agent's to start, and when a failed start is tried again (pure)."""

from dataclasses import replace

import pytest

from supervisor.act.journal import COMPOSE, CONTAINER, DEPENDENT, PROJECT, Intent, Journal
from supervisor.act.keeper import (
    DONE,
    START,
    belongs,
    judge,
    retry_delay_s,
    stopped_by_agent,
    taken_down,
)
from supervisor.config.model import BackoffPolicy, Match, Policy
from supervisor.docker.containers import ContainerInfo
from supervisor.errors import EngineError

WEB = Policy("web", Match(compose_service="web"))
WEB_LABELS = {"com.docker.compose.service": "web", "com.docker.compose.project": "demo"}
web = ContainerInfo("w1", "demo-web-1", labels=WEB_LABELS)
worker = ContainerInfo(
    "k1",
    "demo-worker-1",
    labels={
        "com.docker.compose.service": "worker",
        "com.docker.compose.project": "demo",
        "com.docker.compose.depends_on": "web:service_healthy:false",
    },
)
stranger = ContainerInfo("s1", "database", labels={"role": "db"})


def intent(kind: str, container_id: str) -> Intent:
    return Intent(container_id, "web", kind, container_id, 5.0)


def test_an_own_intent_starts_only_a_container_the_policy_still_matches():
    assert belongs(intent(CONTAINER, "w1"), web, WEB, [web])
    assert not belongs(intent(CONTAINER, "s1"), stranger, WEB, [web, stranger])


def test_a_dependent_intent_starts_only_what_still_depends_on_the_service():
    assert belongs(intent(DEPENDENT, "k1"), worker, WEB, [web, worker])
    assert not belongs(intent(DEPENDENT, "s1"), stranger, WEB, [web, stranger])
    # The service's own container is not known (down, or being recreated): nothing to check
    # against, so what the agent stopped is started again.
    assert belongs(intent(DEPENDENT, "s1"), stranger, WEB, [stranger])


def test_a_compose_intent_is_the_services_own_by_construction():
    assert belongs(Intent("compose:web", "web", COMPOSE, None, 5.0), stranger, WEB, [])


def test_a_neighbour_intent_starts_only_what_is_still_in_the_project():
    stack = Policy("web", Match(compose_service="web"))
    assert belongs(intent(PROJECT, "k1"), worker, stack, [web, worker])
    assert not belongs(intent(PROJECT, "s1"), stranger, stack, [web, stranger])


DOWN_AT_4 = {"Running": False, "FinishedAt": "1970-01-01T00:00:04Z"}
DOWN_AT_6 = {"Running": False, "FinishedAt": "1970-01-01T00:00:06Z"}


def test_a_neighbour_is_started_only_if_the_agents_stop_took_it_down():
    """Intent at 5: what finished at 4 was down before (an init that exited): not the
    agent's to start, even while its service may be healed; what finished at 6, is."""
    assert judge(intent(PROJECT, "k1"), DOWN_AT_4, False, True) == DONE
    assert judge(intent(PROJECT, "k1"), DOWN_AT_6, False, False) == START
    assert judge(intent(CONTAINER, "w1"), DOWN_AT_4, False, True) == START
    assert judge(intent(CONTAINER, "w1"), DOWN_AT_4, False, False) == DONE


def test_a_start_still_owed_keeps_the_time_of_the_first_stop():
    """Attempt 2 re-records what attempt 1 stopped and could not start: the container, down
    since attempt 1's stop, was taken down by the agent, not before it."""
    journal = Journal()
    [first] = journal.record(intent(COMPOSE, "w1"))
    [second] = journal.record(replace(first, at=9.0))
    assert (second.at, second.owed_since) == (9.0, 5.0)
    assert judge(second, DOWN_AT_6, False, False) == START
    journal.clear(second.key)
    [fresh] = journal.record(replace(first, at=9.0))
    assert fresh.owed_since == 9.0


def test_a_failed_start_waits_its_backoff_and_a_new_stop_forgets_it():
    journal = Journal()
    [owed] = journal.record(intent(CONTAINER, "w1"))
    journal.release(owed.key)
    assert journal.due(now=6.0) == [owed]
    journal.defer(owed.key, 1, until=16.0)
    assert journal.due(now=15.9) == [] and journal.due(now=16.0) == [owed]
    assert journal.due() == [owed]  # eager: the engine is back
    assert journal.failures(owed.key) == 1
    journal.record(owed)  # a new attempt's stop: owned again, no failure counted yet
    assert journal.failures(owed.key) == 0 and journal.due(now=0.0) == []


def test_retries_double_from_the_initial_backoff_up_to_its_max():
    backoff = BackoffPolicy(initial_s=10, factor=2, max_s=60, jitter=0.5)
    no_jitter = lambda: 0.5  # noqa: E731 - u = 0: no spread
    assert [retry_delay_s(backoff, n, no_jitter) for n in range(1, 6)] == [10, 20, 40, 60, 60]
    assert retry_delay_s(backoff, 1, lambda: 0.0) == 5.0  # -jitter


def test_a_stop_that_returned_explains_only_a_finish_before_it_returned():
    """Intent at 5, its stop returned at 6. Down at 5.5: the agent's stop. Down at 7: after
    the stop had returned (it failed, then someone else stopped it, or it crashed): not the
    agent's, so a held service's container is left as it is."""
    owed = replace(intent(CONTAINER, "w1"), until=6.0)
    at = {t: {"Running": False, "FinishedAt": f"1970-01-01T00:00:0{t}Z"} for t in ("4", "7")}
    mid = {"Running": False, "FinishedAt": "1970-01-01T00:00:05.500000Z"}
    assert stopped_by_agent(mid, owed)
    assert not stopped_by_agent(at["7"], owed) and not stopped_by_agent(at["4"], owed)
    assert judge(owed, mid, False, False) == START
    assert judge(owed, at["7"], False, False) == DONE
    # Not knowing when the stop returned (the agent died first), a later finish is the stop's.
    assert stopped_by_agent(at["7"], intent(CONTAINER, "w1"))


def test_a_compose_intent_creates_a_service_taken_down_since_only_for_a_policy_healing_missing():
    owed = Intent("compose:web", "web", COMPOSE, "w1", 5.0)
    # `docker compose down` after the heal's stop: no container of the service now.
    assert judge(owed, None, False, True, heals_missing=False) == DONE
    assert judge(owed, None, False, True, heals_missing=True) == START
    assert judge(owed, None, False, False, heals_missing=True) == DONE  # held meanwhile
    assert judge(owed, DOWN_AT_6, False, True, heals_missing=False) == START  # still there


def test_an_intent_that_did_not_reach_the_disk_is_not_recorded():
    """No stop without its intent on disk: record raises, and the journal is as it was (a
    start still owed from before stays owed, as it was)."""
    from supervisor.errors import StateUnwritable

    disk_ok = [True]
    journal = Journal(write_through=lambda: disk_ok[0])
    owed = Intent("w1", "web", CONTAINER, "w1", 5.0)
    journal.record(owed)
    journal.release("w1")
    disk_ok[0] = False
    with pytest.raises(StateUnwritable):
        journal.record(replace(owed, at=9.0), Intent("k1", "web", PROJECT, "k1", 9.0))
    assert [i["key"] for i in journal.snapshot()] == ["w1"]
    assert journal.get("w1") == owed and journal.get("k1") is None
    assert [i.key for i in journal.due(None)] == ["w1"]  # still due: released, as it was


class _Described:
    """An engine that describes the containers it was given (and none other) and a view
    that saw `by_hand` stopped by an operator."""

    def __init__(self, states: dict[str, dict], by_hand: frozenset[str] = frozenset()):
        self.states = states
        self.view = self
        self.by_hand = by_hand

    def inspect_container(self, cid: str) -> ContainerInfo:
        if cid not in self.states:
            raise EngineError(f"403 Forbidden: {cid}")
        return ContainerInfo(cid, f"demo-{cid}-1", labels=WEB_LABELS, state=self.states[cid])

    def is_manual_stop(self, cid: str) -> bool:
        return cid in self.by_hand


def test_a_project_heal_starts_only_the_neighbours_its_stop_took_down():
    """Intents at 5, the stop returned at 7: what finished at 6 is the stop's; at 4 it was
    down before (a one-shot done), at 8 an operator's or a crash's after it; a running one
    needs nothing; one stopped by hand, or that the engine will not describe, is left."""
    journal, owed = Journal(), ("during", "before", "after", "running", "manual", "silent")
    journal.record(*(intent(PROJECT, cid) for cid in owed))
    journal.stopped(owed, 7.0)
    during = {"Running": False, "FinishedAt": "1970-01-01T00:00:06Z"}
    engine = _Described(
        {
            "during": during,
            "before": DOWN_AT_4,
            "after": {"Running": False, "FinishedAt": "1970-01-01T00:00:08Z"},
            "running": {"Running": True},
            "manual": during,
        },
        by_hand=frozenset({"manual"}),
    )
    keys = ("during", "before", "after", "running", "manual", "silent", "not-owed")
    assert [c.id for c in taken_down(journal, keys, engine)] == ["during"]


class _Service:
    """A worker as the keeper sees it: its policy, and whether it may act (or a bug)."""

    def __init__(self, name: str, broken: bool = False):
        self.policy = Policy(name, Match(compose_service=name))
        self.broken = broken

    def may_act_now(self) -> bool:
        if self.broken:
            raise RuntimeError("a bug")
        return True


def test_one_intent_that_raises_is_tried_again_later_and_the_round_goes_on(caplog):
    """api's intent raises (a bug in its worker); web's, after it, is started in the same
    round, and api's waits its first backoff (the default 10 s; jitter at its middle) as a
    failed start's does."""
    from supervisor.act.keeper import finish_due_intents

    api_labels = {**WEB_LABELS, "com.docker.compose.service": "api"}
    journal = Journal()
    owed = [Intent.for_container("api", "a1", 5.0), Intent.for_container("web", "w1", 5.0)]
    journal.record(*owed, owned=False)
    journal.stopped(("a1", "w1"), 7.0)
    down = {"Running": False, "FinishedAt": "1970-01-01T00:00:06Z"}
    engine = _Described({"a1": down, "w1": down})
    engine.inspect_container = lambda cid: ContainerInfo(
        cid, cid, labels=api_labels if cid == "a1" else WEB_LABELS, state=down
    )
    started = []
    engine.start = lambda container: started.append(container.id)
    engine.containers = lambda: []
    workers = {"api": _Service("api", broken=True), "web": _Service("web")}
    with caplog.at_level("DEBUG", logger="supervisor.agent"):
        finish_due_intents(journal, engine, engine, workers.get, 100.0, rng=lambda: 0.5)
    assert started == ["w1"]
    assert journal.get("w1") is None
    assert journal.failures("a1") == 1 and [i.key for i in journal.due(109.9)] == []
    assert [i.key for i in journal.due(110.0)] == ["a1"]
    [failed] = [r for r in caplog.records if getattr(r, "event", None) == "heal.resume_failed"]
    assert failed.error == "RuntimeError: a bug" and failed.service == "api"


def test_keeper_rounds_never_overlap_and_one_asked_meanwhile_runs_after(caplog):
    """A round asked for while one runs (the periodic one during the one after a sync) is
    not run beside it: the running one runs it as it ends, eager if either asked so. A
    round that raises is said once per cause, and later rounds still run."""
    import threading

    from supervisor.act.keeper import Rounds

    inside, release, log_of = threading.Event(), threading.Event(), []
    running = []

    def run(eager: bool) -> None:
        running.append(1)
        log_of.append((eager, len(running)))
        if len(log_of) == 1:
            inside.set()
            release.wait(5)
        running.pop()
        if len(log_of) in (3, 4):
            raise RuntimeError("a bug")

    rounds = Rounds(run)
    first = threading.Thread(target=rounds.ask)
    first.start()
    assert inside.wait(5)
    rounds.ask()  # returns at once: the first one runs it
    rounds.ask(eager=True)
    assert log_of == [(False, 1)]
    release.set()
    first.join(5)
    assert log_of == [(False, 1), (True, 1)]  # one more round, eager, never two at once
    with caplog.at_level("DEBUG", logger="supervisor.agent"):
        rounds.ask()
        rounds.ask()
        rounds.ask()
    assert log_of[2:] == [(False, 1), (False, 1), (False, 1)]
    said = [r.levelname for r in caplog.records if getattr(r, "event", None) == "keeper.error"]
    assert said == ["ERROR", "DEBUG"]


def test_an_intent_the_disk_kept_after_its_start_does_not_own_a_later_exit():
    """A project heal's neighbour stopped at 5, started again at 6 (the save that would have
    ended the intent failed: a full disk, then the agent restarted), crashed at 9: the
    intent read back, with no `until`, is not the agent's to start, a start having come
    after its stop."""
    owed = intent(PROJECT, "k1")  # at 5; until None: never told the stop returned
    crashed = {
        "Running": False,
        "StartedAt": "1970-01-01T00:00:06Z",
        "FinishedAt": "1970-01-01T00:00:09Z",
    }
    assert not stopped_by_agent(crashed, owed)
    assert judge(owed, crashed, taken_over=False, may_act=True) == DONE
    # Never started since its stop: still the agent's to start.
    down = {"Running": False, "StartedAt": "1970-01-01T00:00:01Z", **DOWN_AT_6}
    assert stopped_by_agent(down, owed)
    # First stopped at 2 (its start failed), started by an operator at 4, stopped again by
    # the agent's next attempt at 5: that stop took it down, and it is owed.
    again = replace(owed, since=2.0)
    down_again = {"Running": False, "StartedAt": "1970-01-01T00:00:04Z", **DOWN_AT_6}
    assert stopped_by_agent(down_again, again)


def test_a_crash_between_two_owed_stops_is_not_the_agents():
    """A heal's stop sent at 2 failed (it returned at 2.5, the container still running);
    the container crashed at 3; the next attempt's stop at 5 found it down. Neither stop
    took it down: a held service's container stays down. One that went down while the
    first stop ran was the agent's. The windows outlive a restart of the agent."""
    journal = Journal()
    first = Intent.for_compose("web", "w1", 2.0)
    journal.record(first)
    journal.stopped((first.key,), 2.5)
    journal.record(Intent.for_compose("web", "w1", 5.0))
    journal.stopped((first.key,), 5.2)
    owed = journal.get(first.key)
    assert owed.stop_windows() == ((2.0, 2.5), (5.0, 5.2)) and owed.owed_since == 2.0
    crashed = {"Running": False, "FinishedAt": "1970-01-01T00:00:03Z"}
    assert not stopped_by_agent(crashed, owed)
    assert judge(owed, crashed, taken_over=False, may_act=False) == DONE  # held: left down
    during_first = {"Running": False, "FinishedAt": "1970-01-01T00:00:02.300000Z"}
    assert stopped_by_agent(during_first, owed)
    again = Journal()
    again.restore(journal.snapshot())
    assert again.get(first.key).stop_windows() == ((2.0, 2.5), (5.0, 5.2))


def test_an_intent_saved_by_an_older_agent_keeps_its_whole_window():
    """A state file from before intents kept each stop's window: `since` (the first stop
    still owed) and the last stop alone. What went down from `since` on is the agent's, as
    that agent judged it; what went down before is not."""
    journal = Journal()
    journal.restore(
        [
            {
                "key": "compose:web",
                "service": "web",
                "kind": COMPOSE,
                "container_id": "w1",
                "at": 5.0,
                "since": 2.0,
                "until": 5.2,
            }
        ]
    )
    owed = journal.get("compose:web")
    assert owed.stop_windows() == ((2.0, None), (5.0, 5.2))
    assert stopped_by_agent({"Running": False, "FinishedAt": "1970-01-01T00:00:03Z"}, owed)
    assert not stopped_by_agent({"Running": False, "FinishedAt": "1970-01-01T00:00:01Z"}, owed)


def test_the_stamps_the_stop_found_decide_whatever_the_wall_clock_did():
    """The stop was sent at 5.0 (wall); web's run had started at 2.0 and it last finished at
    1.0. The clock then steps back: the engine's later stamps read earlier than 5.0, the
    older ones as they were. The run the stop ended does not fulfil the intent though it
    reads as started 'after' a stop stamped back in time; the finish from before the stop is
    not the agent's though it falls inside an open stop window; and a start it had not seen
    fulfils the intent only when stamped after the stop (the agent cannot tell otherwise)."""
    found = {
        "Running": True,
        "StartedAt": "1970-01-01T00:00:02Z",
        "FinishedAt": "1970-01-01T00:00:01Z",
    }
    owed = Intent.for_container("web", "w1", 5.0, found=found)
    back = replace(owed, at=1.5)  # as if stamped after a step back of 3.5 s
    assert (owed.run, owed.finished) == (2.0, 1.0)
    assert not back.later_run(2.0) and back.later_run(3.0)
    assert owed.later_run(6.0) and not owed.later_run(3.0)
    old_finish = {
        "Running": False,
        "StartedAt": found["StartedAt"],
        "FinishedAt": found["FinishedAt"],
    }
    assert not stopped_by_agent(old_finish, replace(owed, at=0.5))
    its_finish = dict(old_finish, FinishedAt="1970-01-01T00:00:05.500000Z")
    assert stopped_by_agent(its_finish, owed)
    journal = Journal()
    journal.record(back)
    assert not journal.seen_running("w1", 2.0)  # the run the stop ended, seen late
    assert journal.get("w1") is not None
    assert journal.seen_running("w1", 3.0)


def test_a_new_attempt_keeps_what_the_first_owed_stop_found():
    """The first stop found web running since 2.0; its start failed; the next attempt's stop
    finds it down since that stop (finished 5.2): the intent still says 2.0 and 1.0, so the
    finish at 5.2 stays the agent's."""
    journal = Journal()
    found = {
        "Running": True,
        "StartedAt": "1970-01-01T00:00:02Z",
        "FinishedAt": "1970-01-01T00:00:01Z",
    }
    journal.record(Intent.for_container("web", "w1", 5.0, found=found))
    journal.stopped(["w1"], 5.3)
    down = {
        "Running": False,
        "StartedAt": found["StartedAt"],
        "FinishedAt": "1970-01-01T00:00:05.200000Z",
    }
    journal.record(Intent.for_container("web", "w1", 9.0, found=down))
    owed = journal.get("w1")
    assert (owed.run, owed.finished) == (2.0, 1.0)
    assert stopped_by_agent(down, owed)
