"""The hot path of many keep-alive connections at a given request rate, on a simulated clock.

bench/hotpath.py drives one connection, so it leaves out what grows with the number of
connections rather than the number of requests: the read timers' looks at busy connections
(aio/timers.py; a busy connection's timer comes back about every ``_PARK_AFTER`` seconds to see
whether it went quiet), the heap they share, and the loop timers behind it. In situ under
callgrind (bench/insitu.py) the server runs ~50 times slower, so those per-second costs come out
~50 times too large per request.

Here CONNECTIONS connections (HttpConnection with a counting transport, as in hotpath.py) are fed
the seed request in turn, at RATE requests per second of a simulated loop clock, and the loop
timers due by then run before each request, as a loop would run them. So the per-request count
includes each second's timer work at the share it has at that rate, exactly and repeatably:

    SCRIPT=bench/hotpath_conns.py PYTHONPATH=bench SHORT=30000 LONG=70000 bash bench/hotpath.sh
    CONNECTIONS=100 SCRIPT=...        (default 1000; RATE default 40000)

SHORT should cover the first simulated second (connection set-up and the first timer looks),
which the difference of the two runs then cancels.
"""

from __future__ import annotations

import asyncio
import heapq
import os
from collections.abc import Callable
from typing import Any

from hotpath import REQUEST, CountingTransport, Handler, count_metrics_if_asked
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config


class SimulatedTimer:
    """What ``loop.call_at`` returns: enough of an ``asyncio.TimerHandle``."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedLoop(asyncio.AbstractEventLoop):
    """A loop whose clock the driver sets, and whose timers the driver runs when due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, int, SimulatedTimer]] = []
        self.made = 0

    def time(self) -> float:
        return self.now

    def call_at(
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> Any:
        self.made += 1
        timer = SimulatedTimer(when, callback)
        heapq.heappush(self.timers, (when, self.made, timer))
        return timer

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        raise context["exception"]

    def run_due(self) -> None:
        timers = self.timers
        while timers and timers[0][0] <= self.now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                timer.callback()


def main() -> None:
    count = int(os.environ.get("N", "50000"))
    connections = int(os.environ.get("CONNECTIONS", "1000"))
    rate = float(os.environ.get("RATE", "40000"))
    loop = SimulatedLoop()
    state = count_metrics_if_asked(ServerState(Config(), Handler(), loop))
    conns = []
    transports = []
    for _ in range(connections):
        conn = HttpConnection(state)
        transport = CountingTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conns.append(conn.data_received)
        transports.append(transport)
    step = 1.0 / rate
    for n in range(count):
        loop.now = n * step
        loop.run_due()
        conns[n % connections](REQUEST)
    assert sum(t.writes for t in transports) == count
    print(f"{count} requests over {connections} connections, {loop.made} loop timers made")


if __name__ == "__main__":
    main()
