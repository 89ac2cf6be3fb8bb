"""What the connections of a worker share (``aio/state.py``), in process on the hand-moved clock."""

from __future__ import annotations

from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.http.dates import date_line

from ..apps import Engine
from .fakes import ClockLoop

WALL = 784111777.25  # Sun, 06 Nov 1994 08:49:37.25 GMT


def test_date_line_is_refreshed_every_loop_second(loop: ClockLoop) -> None:
    """The Date every response carries is the wall clock's second, taken once a second."""
    started = loop.time()
    state = ServerState(Config(), Engine(), loop)
    state.wall_clock = lambda: WALL + loop.time() - started
    state.start_clock()
    assert state.date_line == date_line(WALL) == b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    loop.advance(0.999)
    assert state.date_line == date_line(WALL)  # the wall clock is in the next second, not the line
    loop.advance(0.001)
    assert state.date_line == date_line(WALL + 1)
    loop.advance(10)
    assert state.date_line == date_line(WALL + 11)
    state.stop_clock()
    loop.advance(5)
    assert state.date_line == date_line(WALL + 11) and loop.next_timer() is None
