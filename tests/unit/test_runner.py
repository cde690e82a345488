"""The heal runner's slots: at most `concurrency` cycles, each slot owned by one cycle."""

from __future__ import annotations

from supervisor.act.runner import HealRunner
from supervisor.core.messages import SlotGranted


class Posted:
    def __init__(self) -> None:
        self.messages: list[tuple[str, object]] = []

    def post(self, worker, message) -> None:
        self.messages.append((worker.service, message))


class Worker:
    def __init__(self, service: str) -> None:
        self.service = service


def test_a_grant_heard_after_its_cycle_ended_frees_no_later_cycles_slot():
    posted = Posted()
    runner = HealRunner(1, posted, submit=lambda fn: None)
    a, b = Worker("a"), Worker("b")
    assert runner.want_slot(a, 1) is None
    assert runner.want_slot(b, 1) == 1  # queued behind a
    runner.release(a, 1)  # a's cycle ends: b's cycle 1 is granted the slot...
    assert posted.messages == [("b", SlotGranted(1))]
    runner.withdraw(b, 1)  # ...but is cancelled (a reload) before b hears of it
    assert runner.want_slot(b, 2) is None  # b's next cycle takes the free slot
    runner.release(b, 1)  # b hears of the old grant, for a cycle that is over
    assert runner.active == 1
    assert runner.want_slot(a, 2) == 1  # one cycle at a time still: a waits
    runner.release(b, 2)
    assert posted.messages[-1] == ("a", SlotGranted(2))
    assert runner.active == 1


def test_a_withdrawn_cycle_leaves_the_queue_and_the_next_is_granted_in_order():
    posted = Posted()
    runner = HealRunner(1, posted, submit=lambda fn: None)
    a, b, c = Worker("a"), Worker("b"), Worker("c")
    runner.want_slot(a, 1)
    runner.want_slot(b, 4)
    runner.want_slot(c, 7)
    runner.withdraw(b, 4)
    runner.release(a, 1)
    assert posted.messages == [("c", SlotGranted(7))]
    assert runner.active == 1


def test_a_lowered_limit_lets_running_cycles_finish_and_a_raised_one_grants_at_once():
    posted = Posted()
    runner = HealRunner(4, posted, submit=lambda fn: None)
    workers = [Worker(name) for name in "abcdef"]
    for w in workers[:3]:
        assert runner.want_slot(w, 1) is None
    runner.set_limit(2)  # the host got pressed: the three running go on
    assert runner.want_slot(workers[3], 1) == 3  # queued
    runner.release(workers[0], 1)
    assert posted.messages == []  # two still run: the limit is two
    assert runner.want_slot(workers[4], 1) == 2
    runner.set_limit(4)  # calm again: both queued are granted at once
    assert posted.messages == [("d", SlotGranted(1)), ("e", SlotGranted(1))]
    assert runner.active == 4
