"""Which event loops read the clock ``time.perf_counter`` reads (``ServerState.loop_clock``)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from peregrine.aio.state import ServerState, loop_reads_monotonic_clock
from peregrine.config import Config

from .fakes import ClockLoop

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


def test_a_loop_with_its_own_time_does_not() -> None:
    loop = ClockLoop()
    try:
        assert not loop_reads_monotonic_clock(loop)
        assert ServerState(Config(), object(), loop).loop_clock is None
    finally:
        loop.close()
