"""The agent's clock: steps noticed once, slews not; what a follower moves by."""

from supervisor.runtime.clock import Clock, Follower


class Hands:
    """A wall clock and a steady one that the test turns."""

    def __init__(self) -> None:
        self.steady, self.offset = 100.0, 1_800_000_000.0

    def wall(self) -> float:
        return self.steady + self.offset

    def tick(self, seconds: float) -> None:
        self.steady += seconds


def test_a_step_is_counted_once_and_a_slew_is_followed_as_it_goes(caplog):
    hands = Hands()
    clock = Clock(hands.wall, lambda: hands.steady)
    follower = Follower(clock)
    for _ in range(10):  # 0.3 s of slew in all, 0.03 s at a time: no step
        hands.tick(1.0)
        hands.offset += 0.03
        clock.now()
    assert (clock.steps, follower.moved()) == (0, 0.0)
    hands.offset -= 3600.0
    assert clock.now() == hands.wall()
    clock.now()
    assert clock.steps == 1
    assert follower.pending() == -3600.0
    assert follower.moved() == -3600.0
    assert follower.moved() == 0.0  # followed once
    [said] = [r for r in caplog.records if getattr(r, "event", "") == "clock.stepped"]
    assert said.step_s == -3600.0


def test_a_stamp_before_a_forward_step_is_as_old_as_it_was():
    """Stamped at 1000 and 1050 (wall); at 1100 the clock steps forward by 600 s: the first
    two read 600 s later (their age is as it was), one stamped after the step as it is.
    A step back moves nothing: a stamp before it cannot be told from one after it."""
    hands = Hands()
    hands.offset = 1000.0 - hands.steady
    clock = Clock(hands.wall, lambda: hands.steady)
    hands.tick(100.0)  # the wall reads 1100
    hands.offset += 600.0
    assert clock.now() == 1700.0
    assert [clock.in_frame(s) for s in (1000.0, 1050.0, 1100.0)] == [1600.0, 1650.0, 1700.0]
    assert clock.in_frame(1700.5) == 1700.5
    hands.offset -= 300.0
    assert clock.now() == 1400.0
    assert clock.in_frame(1350.0) == 1350.0
    assert clock.in_frame(1000.0) == 1600.0


def test_an_engine_stamp_falls_on_the_steady_clock_in_the_frame_it_was_read_in():
    """Steady 100 reads wall 1000. At steady 150 (wall 1050) the clock steps forward 600 s,
    at steady 170 (wall 1670) back 300 s; it is steady 180 now. Each stamp lands where it
    was read: 1040 (before the first step) at 140, 1660 at 160 (not at 460, which has not
    come yet), 1380 (after the step back) at 180. 1300 was never read: by the clock now."""
    hands = Hands()
    hands.steady, hands.offset = 100.0, 900.0
    clock = Clock(hands.wall, lambda: hands.steady)
    hands.tick(50.0)
    hands.offset += 600.0
    clock.now()
    hands.tick(20.0)
    hands.offset -= 300.0
    clock.now()
    hands.tick(10.0)
    assert [clock.steady_of(s) for s in (1040.0, 1660.0, 1380.0)] == [140.0, 160.0, 180.0]
    assert clock.steady_of(1300.0) == 100.0
