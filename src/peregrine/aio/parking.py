"""Dropping the parsers of keep-alive connections gone quiet, found by one sweep for all of them.

An idle keep-alive connection drops its parser (~1.5 KB with llhttp's) once it has been quiet
for :data:`PARK_AFTER` seconds, and makes a new one on its next byte (``aio/connection.py``).
Which connections went quiet is found by a sweep, every :data:`SWEEP_EVERY` seconds, over the
connections that hold a parser (:class:`ParserParking`), on the worker's timer queue.

Before, each connection's own read timer came back every 0.5 s to look: at 1,000 busy
connections ~1,800 looks a second, each a push and a pop on a heap of ~1,000 entries (~4.7k
instructions per pop), ~460 instructions per request (``bench/hotpath_conns.py``). The sweep
reads a few attributes per connection 8 times a second and makes no heap entry per connection;
a busy connection's read timer then only comes back at its keep-alive deadline (seconds). The
sweeps fall on a grid of :data:`SWEEP_EVERY`, so a connection is parked 0.5 to 0.625 s after its
last request, as the looks did. Parked connections are not in the sweep: an idle server with
thousands of keep-alive connections sweeps nothing, and with none holding a parser it sets no
timer at all.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from .timers import TimerQueue

__all__ = ["PARK_AFTER", "SWEEP_EVERY", "Parkable", "ParserParking"]

#: seconds a keep-alive connection is quiet before its parser is dropped
PARK_AFTER: Final = 0.5
#: seconds between sweeps; they fall on multiples of it on the loop's clock
SWEEP_EVERY: Final = 0.125


class Parkable(Protocol):
    """A connection whose parser the sweep may drop."""

    def park_if_quiet(self, quiet_since: float) -> bool:
        """Drop the parser if idle and quiet since ``quiet_since`` (loop time); True if done
        (the connection then leaves the sweep until it calls :meth:`ParserParking.hold`)."""


class ParserParking:
    """The connections of one worker that hold a parser, swept for quiet ones."""

    __slots__ = ("timers", "loop", "holding", "timer_number", "sweep_at")

    def __init__(self, timers: TimerQueue, loop: asyncio.AbstractEventLoop) -> None:
        self.timers = timers
        self.loop = loop
        #: the connections holding a parser (those made, or woken from an idle spell, since the
        #: last sweep that found them quiet)
        self.holding: set[Parkable] = set()
        #: this sweeper's entry on ``timers`` (0: no sweep pending), see aio/timers.py
        self.timer_number = 0
        #: when the pending (or last) sweep is due
        self.sweep_at = 0.0

    def hold(self, connection: Parkable) -> None:
        """``connection`` made a parser: sweep it until it is found quiet."""
        self.holding.add(connection)
        if not self.timer_number:
            self._arm(self.loop.time())

    def forget(self, connection: Parkable) -> None:
        """``connection`` closed or was handed over: do not sweep it (no-op if not held)."""
        holding = self.holding
        holding.discard(connection)
        if not holding and self.timer_number:
            self.timers.cancel(self)  # nothing left to sweep: no timer left behind either

    def on_timer(self) -> None:
        """Sweep: park every connection quiet for :data:`PARK_AFTER`, then come back."""
        holding = self.holding
        # the loop may run a timer a hair before its time (uvloop's clock is cut to whole
        # milliseconds): this sweep is the one for its grid point, not the one before
        now = max(self.loop.time(), self.sweep_at)
        quiet_since = now - PARK_AFTER
        parked = [connection for connection in holding if connection.park_if_quiet(quiet_since)]
        for connection in parked:
            holding.discard(connection)
        if holding:
            self._arm(now)

    def _arm(self, now: float) -> None:
        # the next grid point after now (exact: SWEEP_EVERY is a power of two)
        self.sweep_at = (int(now / SWEEP_EVERY) + 1) * SWEEP_EVERY
        self.timers.call_at(self.sweep_at, self)
