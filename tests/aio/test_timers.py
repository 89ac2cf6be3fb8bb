"""The shared timer queue: each timer at its own time, on one loop timer, cancellable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from peregrine.aio.timers import TimerQueue

from .fakes import START, ClockLoop

EPSILON = 0.001


def loop_timers(loop: ClockLoop) -> int:
    return sum(1 for t in loop._scheduled if not t.cancelled())  # type: ignore[attr-defined]


class Owner:
    """A timer's owner that runs a function when its timer is due."""

    def __init__(self, action: Callable[[], object]) -> None:
        self.timer_number = 0
        self.action = action

    def on_timer(self) -> None:
        assert self.timer_number == 0  # no longer pending once called
        self.action()


def call_at(queue: TimerQueue, when: float, action: Callable[[], object]) -> Owner:
    owner = Owner(action)
    queue.call_at(when, owner)
    return owner


def test_each_timer_fires_at_its_own_time_on_one_loop_timer(loop: ClockLoop) -> None:
    queue = TimerQueue(loop)
    fired: list[tuple[str, float]] = []
    for name, delay in (("c", 3), ("a", 1), ("b", 2)):
        call_at(queue, START + delay, lambda name=name: fired.append((name, loop.elapsed)))
    assert loop_timers(loop) == 1
    loop.advance(1 - EPSILON)
    assert fired == []
    loop.advance(EPSILON)
    assert fired == [("a", 1)]
    loop.advance(2)
    assert fired == [("a", 1), ("b", 2), ("c", 3)]
    assert len(queue) == 0 and loop_timers(loop) == 0


def test_equal_times_fire_in_creation_order(loop: ClockLoop) -> None:
    queue = TimerQueue(loop)
    fired: list[int] = []
    for i in range(5):
        call_at(queue, START + 1, lambda i=i: fired.append(i))
    loop.advance(1)
    assert fired == [0, 1, 2, 3, 4]


def test_a_cancelled_timer_does_not_fire(loop: ClockLoop) -> None:
    queue = TimerQueue(loop)
    fired: list[str] = []
    first = call_at(queue, START + 1, lambda: fired.append("first"))
    call_at(queue, START + 2, lambda: fired.append("second"))
    queue.cancel(first)
    queue.cancel(first)  # twice is harmless
    assert first.timer_number == 0
    loop.advance(3)
    assert fired == ["second"] and len(queue) == 0


def test_a_new_timer_replaces_the_owners_pending_one(loop: ClockLoop) -> None:
    queue = TimerQueue(loop)
    fired: list[float] = []
    owner = call_at(queue, START + 1, lambda: fired.append(loop.elapsed))
    queue.call_at(START + 2, owner)
    queue.call_at(START + 3, owner)
    loop.advance(5)
    assert fired == [3] and len(queue) == 0 and loop_timers(loop) == 0


@pytest.mark.parametrize("delay", [0.5, 1.5, 5])
def test_a_timer_set_from_a_callback_fires_at_its_time(loop: ClockLoop, delay: float) -> None:
    """Also when an earlier timer was waiting: the loop timer goes to the earliest."""
    queue = TimerQueue(loop)
    fired: list[tuple[str, float]] = []

    def first() -> None:
        fired.append(("first", loop.elapsed))
        call_at(queue, loop.time() + delay, lambda: fired.append(("again", loop.elapsed)))

    call_at(queue, START + 1, first)
    call_at(queue, START + 3, lambda: fired.append(("waiting", loop.elapsed)))
    loop.advance(10)
    assert sorted(fired, key=lambda f: f[1]) == fired
    assert ("again", 1 + delay) in fired and ("waiting", 3) in fired


def test_cancelled_timers_do_not_pile_up(loop: ClockLoop) -> None:
    """Connections that close cancel their timers: the heap is rebuilt without them."""
    queue = TimerQueue(loop)
    fired: list[str] = []
    call_at(queue, START + 100, lambda: fired.append("kept"))
    most = 0
    for _ in range(10_000):
        queue.cancel(call_at(queue, START + 50, lambda: fired.append("cancelled")))
        most = max(most, len(queue))
    assert most <= 2 * 64 + 1
    loop.advance(100)
    assert fired == ["kept"] and len(queue) == 0 and loop_timers(loop) == 0


def test_a_failing_callback_is_reported_and_the_others_still_fire(loop: ClockLoop) -> None:
    queue = TimerQueue(loop)
    fired: list[str] = []

    def fail() -> None:
        raise RuntimeError("boom")

    call_at(queue, START + 1, fail)
    call_at(queue, START + 1, lambda: fired.append("after"))
    loop.advance(1)
    assert fired == ["after"]
    (error,) = loop.errors
    assert isinstance(error["exception"], RuntimeError)
    loop.errors.clear()


def test_timers_set_while_due_ones_run_take_one_loop_timer(loop: ClockLoop) -> None:
    """A look that sets its owner's next timer later than another waiting one (a busy
    connection's parking look) makes no loop timer of its own: one is set after the run."""
    queue = TimerQueue(loop)
    made: list[float] = []
    call_at_of_loop = loop.call_at

    def counting_call_at(when: float, callback: Callable[[], object]) -> object:
        made.append(round(when - START, 6))
        return call_at_of_loop(when, callback)

    loop.call_at = counting_call_at  # type: ignore[method-assign,assignment]
    fired: list[tuple[str, float]] = []

    def look() -> None:
        fired.append(("look", loop.elapsed))
        if loop.elapsed < 1.5:
            queue.call_at(loop.time() + 0.5, owner)

    owner = call_at(queue, START + 1, look)
    call_at(queue, START + 1.2, lambda: fired.append(("other", loop.elapsed)))
    assert made == [1]
    loop.advance(3)
    assert fired == [("look", 1), ("other", 1.2), ("look", 1.5)]
    # one loop timer per run: at 1, then 1.2 (not 1.5 first), then 1.5
    assert made == [1, 1.2, 1.5]
    assert len(queue) == 0 and loop_timers(loop) == 0
