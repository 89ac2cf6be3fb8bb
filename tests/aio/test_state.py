"""What the connections of a worker share (``aio/state.py``), in process on the hand-moved clock."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from peregrine.aio.state import ServerState, loop_reads_monotonic_clock
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


# which loops read the clock time.perf_counter reads (ServerState.loop_clock)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="perf_counter and the loops' clock: Linux"
)


@linux_only
def test_asyncios_own_loop_reads_the_monotonic_clock() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop_reads_monotonic_clock(loop)
        assert ServerState(Config(), object(), loop).loop_clock is time.perf_counter
        # the same clock: one read of each, in turn, in order
        first = loop.time()
        between = time.perf_counter()
        assert first <= between <= loop.time()
    finally:
        loop.close()


@linux_only
def test_uvloop_reads_the_monotonic_clock_at_most_a_tick_behind() -> None:
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        assert loop_reads_monotonic_clock(loop)
        assert ServerState(Config(), object(), loop).loop_clock is time.perf_counter
        # libuv's time is the same clock, cut to milliseconds (or its coarse variant): behind
        # perf_counter, never ahead, by a tick or so
        for _ in range(100):
            precise = time.perf_counter()
            assert precise - 0.02 <= loop.time() <= time.perf_counter()
    finally:
        loop.close()


def test_a_loop_with_its_own_time_does_not(loop: ClockLoop) -> None:
    assert not loop_reads_monotonic_clock(loop)
    assert ServerState(Config(), object(), loop).loop_clock is None
