"""view.py without Docker: folding events into State, drift detection, and who stopped what.

The source is a fake of our own ContainerSource interface (list, inspect, events)."""

import pytest

from supervisor.docker.containers import ContainerInfo
from supervisor.docker.view import (
    ContainerView,
    apply_event,
    fingerprint_row,
    fingerprint_state,
    health_from_list_status,
)
from supervisor.errors import ContainerGone

AT = "2026-11-26T04:00:00Z"
RUNNING = {
    "Status": "running",
    "Running": True,
    "Paused": False,
    "Restarting": False,
    "ExitCode": 0,
    "OOMKilled": False,
    "Health": {"Status": "healthy"},
}


def test_start_resets_health_to_starting():
    stopped = {**RUNNING, "Status": "exited", "Running": False, "ExitCode": 143}
    state = apply_event(stopped, "start", {}, AT)
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("running", True, 0)
    assert state["Health"]["Status"] == "starting"
    assert state["StartedAt"] == AT


def test_start_without_health_check_adds_none():
    state = apply_event({"Status": "exited"}, "start", {}, AT)
    assert "Health" not in state


@pytest.mark.parametrize(
    ("action", "attrs", "oom", "expected"),
    [
        ("die", {"exitCode": "3"}, False, {"Status": "exited", "ExitCode": 3, "OOMKilled": False}),
        (
            "die",
            {"exitCode": "137"},
            True,
            {"Status": "exited", "ExitCode": 137, "OOMKilled": True},
        ),
        ("die", {"exitCode": "x"}, False, {"ExitCode": -1}),
        ("health_status: unhealthy", {}, False, {"Health": {"Status": "unhealthy"}}),
        ("pause", {}, False, {"Status": "paused", "Paused": True}),
        ("kill", {"signal": "15"}, False, {"Status": "running"}),
    ],
)
def test_apply_event(action, attrs, oom, expected):
    state = apply_event(RUNNING, action, attrs, AT, oom=oom)
    assert {k: state[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("text", "health"),
    [
        ("Up 5 minutes (healthy)", "healthy"),
        ("Up 2 seconds (health: starting)", "starting"),
        ("Up 1 hour (unhealthy)", "unhealthy"),
        ("Up 3 minutes", None),
        ("Exited (0) 2 minutes ago", None),
    ],
)
def test_health_from_list_status(text, health):
    assert health_from_list_status(text) == health


def test_fingerprints_agree_on_the_same_state():
    row = {"Id": "a", "State": "running", "Status": "Up 5 minutes (healthy)"}
    assert fingerprint_row(row) == fingerprint_state(RUNNING) == ("running", "healthy")
    assert fingerprint_row({"State": "exited", "Status": "Exited (1)"}) == ("exited", None)


class FakeSource:
    """Containers as a dict of inspect results; counts the calls the view makes."""

    def __init__(self):
        self.containers: dict[str, ContainerInfo] = {}
        self.inspects = 0
        self.lists = 0

    def add(self, cid, name, state, labels=None):
        self.containers[cid] = ContainerInfo(cid, name, labels or {}, frozenset(), state)

    def list_rows(self):
        self.lists += 1
        rows = []
        for c in self.containers.values():
            health = (c.state.get("Health") or {}).get("Status")
            status = f"Up 1 minute ({health})" if health else "Up 1 minute"
            rows.append(
                {
                    "Id": c.id,
                    "Names": [f"/{c.name}"],
                    "Labels": dict(c.labels),
                    "State": c.state["Status"],
                    "Status": status,
                }
            )
        return rows

    def inspect_container(self, cid):
        self.inspects += 1
        if cid not in self.containers:
            raise ContainerGone(cid)
        return self.containers[cid]

    def open_events(self, actions):
        return iter(())


def event(cid, action, at=None, **attrs):
    """An engine event; stamped `at` (epoch seconds) by the engine, or unstamped (the view
    then takes the time it arrives)."""
    found = {"Type": "container", "id": cid, "Action": action, "Actor": {"ID": cid}}
    found["Actor"]["Attributes"] = attrs
    if at is not None:
        found["timeNano"] = int(at * 1e9)
    return found


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup():
    source, clock, seen = FakeSource(), Clock(), []
    view = ContainerView(source, on_event=seen.append, clock=clock, steady=clock)
    source.add("a", "web", dict(RUNNING))
    source.add("b", "db", dict(RUNNING))
    assert view.resync() == 2
    return view, source, clock, seen


def test_resync_inspects_only_what_changed(setup):
    view, source, _, _ = setup
    assert view.resync() == 0
    source.add("a", "web", {**RUNNING, "Health": {"Status": "unhealthy"}})
    source.add("c", "cache", dict(RUNNING))
    del source.containers["b"]
    assert view.resync() == 2
    assert sorted(c.name for c in view.containers()) == ["cache", "web"]
    assert view.get("a").state["Health"]["Status"] == "unhealthy"


def test_resync_reports_what_it_corrected(setup):
    view, source, _, seen = setup
    source.add("a", "web", {**RUNNING, "Health": {"Status": "unhealthy"}})
    view.resync()
    assert [(e.container_id, e.action) for e in seen] == [("a", "resync")]


def test_resync_corrects_what_the_last_event_left_wrong(setup):
    """The die of a stop was lost (kill and stop came through): the next listing corrects
    the container, even when its stop was the last event the view applied."""
    view, source, _, seen = setup
    view.apply(event("a", "kill", signal="15"))
    view.apply(event("a", "stop"))
    assert view.get("a").state["Running"]  # no die: the view cannot know yet
    source.add("a", "web", {"Status": "exited", "Running": False, "ExitCode": 143})
    assert view.resync() == 1
    assert view.get("a").state["Status"] == "exited"
    assert seen[-1].action == "resync"


def test_one_container_the_engine_will_not_describe_blinds_nothing_else(setup, caplog):
    """Its inspect refused (403 from a proxy or a plugin) or never answered while the engine
    answers: it is shown unknown (never healed as such), said once, retried at each listing;
    the rest is seen as always. An engine that does not answer at all still fails the sync."""
    from supervisor.errors import EngineError, EngineUnreachable

    view, source, _, _ = setup
    refused = {"a": EngineError("403 Forbidden"), "c": EngineUnreachable("read timed out")}
    inspect = source.inspect_container

    def picky(cid):
        if cid in refused:
            source.inspects += 1
            raise refused[cid]
        return inspect(cid)

    source.inspect_container = picky
    source.add("a", "web", {**RUNNING, "Health": {"Status": "unhealthy"}})
    source.add("b", "db", {"Status": "exited", "Running": False, "ExitCode": 1})
    source.add("c", "hung", dict(RUNNING), labels={"app": "hung"})
    with caplog.at_level("WARNING", logger="supervisor.view"):
        view.resync()
        view.resync()
    assert view.get("a").state == {"Status": "unknown"} and view.get("a").name == "web"
    assert view.get("c").state == {"Status": "unknown"} and view.get("c").labels == {"app": "hung"}
    assert view.get("b").state["Status"] == "exited"  # the rest: as always
    said = [r for r in caplog.records if getattr(r, "event", "") == "view.inspect_failed"]
    assert sorted(r.container for r in said) == ["hung", "web"]  # once each
    del refused["a"]
    view.resync()
    assert view.get("a").state["Health"]["Status"] == "unhealthy"  # retried, and read

    source.list_rows = lambda: (_ for _ in ()).throw(EngineUnreachable("refused"))
    with pytest.raises(EngineUnreachable):
        view.resync()


def test_a_stop_by_hand_is_remembered_until_the_next_start(setup):
    view, _, _, seen = setup
    for e in (
        event("a", "kill", signal="15"),
        event("a", "die", exitCode="143"),
        event("a", "stop"),
    ):
        view.apply(e)
    assert view.is_manual_stop("a")
    assert [e.by_agent for e in seen] == [False, False, False]
    view.apply(event("a", "start"))
    assert not view.is_manual_stop("a")


def test_docker_kill_counts_as_by_hand_but_a_reload_signal_does_not(setup):
    view, *_ = setup
    view.apply(event("a", "kill", signal="1"))
    view.apply(event("a", "die", exitCode="1"))
    assert not view.is_manual_stop("a")
    view.apply(event("b", "kill", signal="9"))
    view.apply(event("b", "die", exitCode="137"))
    assert view.is_manual_stop("b")


def test_a_crash_is_not_a_stop_by_hand(setup):
    view, *_ = setup
    view.apply(event("a", "die", exitCode="1"))
    assert not view.is_manual_stop("a")
    assert view.get("a").state["ExitCode"] == 1


def test_the_agents_own_stop_is_not_by_hand(setup):
    view, _, clock, seen = setup
    with view.acting_on(("a",)):
        view.apply(event("a", "kill", signal="15"))
        view.apply(event("a", "die", exitCode="143"))
    clock.now += 4.9  # late events inside the grace are still the agent's
    view.apply(event("a", "stop"))
    assert [e.by_agent for e in seen] == [True, True, True]
    assert not view.is_manual_stop("a")
    clock.now += 0.2
    view.apply(event("a", "stop"))
    assert seen[-1].by_agent is False


def test_own_events_are_judged_by_the_engines_timestamps(setup):
    """A stop the engine stamped during the agent's stop is the agent's however late it
    arrives; one stamped after the agent's own start began is an operator's, even inside
    the stop's grace."""
    view, _, clock, seen = setup
    began = clock.now
    with view.acting_on(("a",)):
        clock.now += 1
    clock.now += 30  # the view lagged: the events arrive long after
    view.apply(event("a", "stop", at=began + 0.5))
    assert seen[-1].by_agent is True and not view.is_manual_stop("a")
    with view.acting_on(("a",)):  # a heal's stop: its grace runs 5 s past its end
        view.apply(event("a", "stop", at=clock.now))
    clock.now += 1
    with view.acting_on(("a",), stopping=False):  # then its start
        view.apply(event("a", "start", at=clock.now))
    clock.now += 1  # inside the stop's grace, but after the start: an operator's stop
    view.apply(event("a", "stop", at=clock.now))
    assert [e.by_agent for e in seen[-3:]] == [True, True, False]
    assert view.is_manual_stop("a")


def test_a_stop_stamped_before_the_agents_own_began_is_an_operators(setup):
    """An operator stops the container an instant before the agent's heal sends its stop
    (which finds it down already); the operator's stop event arrives while the agent's
    stop runs, or in its grace: stamped before the agent's began, it is theirs."""
    view, _, clock, seen = setup
    by_hand_at = clock.now
    clock.now += 0.5
    with view.acting_on(("a",)):
        view.apply(event("a", "stop", at=by_hand_at))
        clock.now += 0.1
    assert seen[-1].by_agent is False and view.is_manual_stop("a")
    # After an idle spell the next block is judged from its own start, not the first's.
    view.apply(event("a", "start", at=clock.now))
    clock.now += 60
    again_at = clock.now
    clock.now += 0.5
    with view.acting_on(("a",)):
        clock.now += 0.1
    view.apply(event("a", "stop", at=again_at))  # late, inside the grace, yet before it
    assert seen[-1].by_agent is False and view.is_manual_stop("a")


def test_a_late_event_of_an_earlier_own_stop_stays_the_agents_after_a_new_one(setup):
    """A dependent's restart (stop, start) and, 0.8 s later, the container's own heal stops
    it again; the first stop's event arrives only after that: it is still the agent's."""
    view, _, clock, seen = setup
    first = clock.now
    with view.acting_on(("a",)):
        clock.now += 0.01
    with view.acting_on(("a",), stopping=False):
        clock.now += 0.01
    clock.now += 0.8
    with view.acting_on(("a",)):
        view.apply(event("a", "stop", at=first + 0.005))  # the restart's, late
        view.apply(event("a", "stop", at=clock.now))  # the heal's
        clock.now += 0.1
    assert [e.by_agent for e in seen[-2:]] == [True, True]
    assert not view.is_manual_stop("a")


def test_compose_project_actions_cover_every_container_of_the_project():
    source, seen = FakeSource(), []
    view = ContainerView(source, on_event=seen.append, clock=Clock())
    source.add("x", "demo-web-1", dict(RUNNING), {"com.docker.compose.project": "demo"})
    source.add("y", "other-web-1", dict(RUNNING), {"com.docker.compose.project": "other"})
    view.resync()
    with view.acting_on(project="demo"):
        view.apply(event("x", "stop"))
        view.apply(event("y", "stop"))
    assert [e.by_agent for e in seen] == [True, False]


def test_engine_shutdown_stops_are_forgotten_when_the_stream_breaks(setup):
    view, _, clock, _ = setup
    view.apply(event("a", "stop"))
    clock.now += 100
    view.apply(event("b", "stop"))
    view._set_synced(False, "stream ended")
    assert view.is_manual_stop("a")  # long before the outage: an operator's
    assert not view.is_manual_stop("b")  # just before it: the engine's shutdown


def test_destroy_forgets_and_create_inspects(setup):
    view, source, _, seen = setup
    view.apply(event("b", "destroy"))
    assert view.get("b") is None and seen[-1].container is None
    source.add("n", "new", dict(RUNNING))
    before = source.inspects
    view.apply(event("n", "create"))
    assert source.inspects == before + 1
    assert view.get("n").name == "new"


def test_rename(setup):
    view, *_ = setup
    view.apply(event("a", "rename", name="/web-old", oldName="/web"))
    assert view.get("a").name == "web-old"


def test_health_report_for_a_stopped_container_reinspects(setup):
    view, source, *_ = setup
    view.apply(event("a", "die", exitCode="255"))
    before = source.inspects
    view.apply(event("a", "health_status: healthy"))  # restored by the engine, no start event
    assert source.inspects == before + 1
    assert view.get("a").state["Running"] is True


def test_overlapping_compose_cycles_keep_each_others_marks():
    """Two compose-scope cycles in one project: the first ending must not turn the second
    one's stops into stops by hand."""
    source, seen, clock = FakeSource(), [], Clock()
    view = ContainerView(source, on_event=seen.append, clock=clock)
    source.add("x", "demo-web-1", dict(RUNNING), {"com.docker.compose.project": "demo"})
    view.resync()
    first = view.acting_on(project="demo")
    second = view.acting_on(project="demo")
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    clock.now += 60  # long past the first one's grace
    view.apply(event("x", "stop"))
    second.__exit__(None, None, None)
    assert [e.by_agent for e in seen] == [True]
    assert not view.is_manual_stop("x")


def test_a_service_heal_owns_its_services_events_and_no_siblings():
    """While a scope-compose heal stops web, an operator's stop of db in the same project
    is still a stop by hand."""
    source, seen, clock = FakeSource(), [], Clock()
    view = ContainerView(source, on_event=seen.append, clock=clock)
    for cid, service in (("w", "web"), ("d", "db")):
        labels = {"com.docker.compose.project": "demo", "com.docker.compose.service": service}
        source.add(cid, f"demo-{service}-1", dict(RUNNING), labels)
    view.resync()
    with view.acting_on(project="demo", services=("web",)):
        view.apply(event("w", "stop"))
        view.apply(event("d", "stop"))
    assert [(e.container_id, e.by_agent) for e in seen] == [("w", True), ("d", False)]
    assert view.is_manual_stop("d") and not view.is_manual_stop("w")


def test_a_stop_by_hand_an_earlier_agent_saw_holds_from_the_first_listing():
    source = FakeSource()
    source.add("a", "web", {**RUNNING, "Status": "exited", "Running": False, "ExitCode": 143})
    source.add("b", "db", dict(RUNNING))
    view = ContainerView(source, clock=Clock(), manual_stops=["a", "b", "gone"])
    view.resync()
    assert view.is_manual_stop("a")  # still down: still the operator's
    assert not view.is_manual_stop("b")  # started since: supervised again
    assert not view.is_manual_stop("gone")  # no such container any more


def test_an_event_the_agent_cannot_read_is_skipped_and_the_stream_stays_open(caplog):
    """Not an object, an Actor that is not one, a time that is no number: each is skipped
    and said once per kind of fault; the stream is not reopened, the view stays synced, and
    the good event after them is applied."""
    import threading

    source, syncs, seen = FakeSource(), [], []
    source.add("a", "web", dict(RUNNING))
    done, release, opened = threading.Event(), threading.Event(), []
    garbage = [
        ["not", "an", "object"],
        "health_status: unhealthy",
        {"Type": "container", "id": "a", "Action": "die", "Actor": "a"},
        {"Type": "container", "id": "a", "Action": "die", "time": "soon"},
        {"Type": "container", "id": "a", "Action": "die", "time": "later"},
    ]

    def stream():
        yield from garbage
        yield event("a", "pause", at=1000.0)
        done.set()
        release.wait(30)  # the stream stays open, saying nothing more

    def open_events(actions):
        opened.append(actions)
        return stream()

    source.open_events = open_events
    view = ContainerView(
        source, on_event=seen.append, on_sync=lambda ok, error: syncs.append(ok), clock=Clock()
    )
    with caplog.at_level("DEBUG", logger="supervisor.view"):
        view.start()
        try:
            assert done.wait(5)
            deadline = 50
            while not seen and deadline:
                threading.Event().wait(0.1)
                deadline -= 1
        finally:
            release.set()
            view.stop()
    assert [e.action for e in seen] == ["pause"]
    assert view.get("a").state["Status"] == "paused"
    assert len(opened) == 1 and syncs == [True]
    said = [r for r in caplog.records if getattr(r, "event", None) == "view.event_malformed"]
    assert len(said) == 5
    # Once per kind of fault: the two bad times are the same fault, the second at debug.
    assert [r.levelname for r in said].count("WARNING") == 4
