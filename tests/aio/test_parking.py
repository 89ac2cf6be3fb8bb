"""The sweep that drops the parsers of quiet connections: on a 1/8 s grid, only while any
connection holds a parser, each connection parked once found quiet."""

from __future__ import annotations

from peregrine.aio.parking import PARK_AFTER, SWEEP_EVERY, ParserParking
from peregrine.aio.timers import TimerQueue

from .fakes import START, ClockLoop


class Connection:
    """A parkable connection, quiet since ``last_request`` (loop time)."""

    def __init__(self, last_request: float) -> None:
        self.last_request = last_request
        self.parked_at: list[float] = []
        self.asked: list[float] = []

    def park_if_quiet(self, quiet_since: float) -> bool:
        self.asked.append(quiet_since)
        if self.last_request <= quiet_since:
            self.parked_at.append(quiet_since + PARK_AFTER)
            return True
        return False


def parking(loop: ClockLoop) -> ParserParking:
    return ParserParking(TimerQueue(loop), loop)


def test_sweeps_fall_on_the_grid_and_park_each_quiet_connection_once(loop: ClockLoop) -> None:
    sweeper = parking(loop)
    loop.advance(0.01)
    early, late = Connection(loop.now), Connection(loop.now + 0.2)
    sweeper.hold(early)
    sweeper.hold(late)
    loop.advance(1.0)
    # a sweep at every 1/8 s of the loop's clock from the first grid point after the hold
    assert early.asked[0] == START + SWEEP_EVERY - PARK_AFTER
    assert all(round(asked * 8, 9) % 1 == 0 for asked in early.asked + late.asked)
    # parked at the first sweep at least PARK_AFTER after the last request, then never asked
    assert early.parked_at == [START + 0.625] and early.asked[-1] == START + 0.125
    assert late.parked_at == [START + 0.75] and late.asked[-1] == START + 0.25
    assert len(early.asked) == 5 and len(late.asked) == 6
    assert not sweeper.holding and sweeper.timer_number == 0  # nothing held: no sweep pending


def test_a_connection_held_again_is_swept_again(loop: ClockLoop) -> None:
    sweeper = parking(loop)
    connection = Connection(loop.now)
    sweeper.hold(connection)
    loop.advance(1.0)
    assert connection.parked_at == [START + 0.5]
    connection.last_request = loop.now  # its next request, after an idle spell
    sweeper.hold(connection)
    loop.advance(1.0)
    assert connection.parked_at == [START + 0.5, START + 1.5]


def test_forgetting_the_last_connection_cancels_the_sweep(loop: ClockLoop) -> None:
    sweeper = parking(loop)
    first, second = Connection(loop.now), Connection(loop.now)
    sweeper.hold(first)
    sweeper.hold(second)
    sweeper.forget(first)
    assert sweeper.timer_number != 0  # the second is still swept
    sweeper.forget(second)
    sweeper.forget(second)  # twice is harmless
    assert sweeper.timer_number == 0 and loop.next_timer() is None
    loop.advance(1.0)
    assert first.asked == second.asked == []


def test_holding_twice_is_one_entry(loop: ClockLoop) -> None:
    sweeper = parking(loop)
    connection = Connection(loop.now)
    sweeper.hold(connection)
    sweeper.hold(connection)
    assert len(sweeper.holding) == 1 and len(sweeper.timers) == 1
