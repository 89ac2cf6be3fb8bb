"""The worker side: counting on the hot path, publishing to shared memory now and then.

A response is counted by adding 1 to one slot of a plain list, the slot of its method class,
status class and duration bucket (:mod:`.layout`), and by adding its duration and body sizes to
three sums. The HTTP/1 connection does this inline for the responses it sends whole, and the
HTTP/2 one in the pure build (``bench/hotpath.sh`` with ``HOTPATH_METRICS=1`` counts the cost);
the other paths call :meth:`MetricsRecorder.response`. Both use the tables below. This module is compiled in the
compiled build (``_build.COMPILED_MODULES``): the recorder's fields are then plain C fields, which
the compiled connection reads and adds to without a dictionary or descriptor lookup.

Durations run from the handler's call to the response's hand-over to the transport, on
``time.perf_counter``, which the connections read at both ends on every path, a synchronous
handler's included (two reads, ~700 instructions of the per-response cost under callgrind);
with metrics and the access log off they read no clock.

Nothing shared is touched on the hot path: :meth:`MetricsRecorder.publish` copies the counts
into the worker's shared block every :data:`PUBLISH_INTERVAL` seconds and when the worker stops
(a worker killed with SIGKILL loses at most that interval).
"""

from __future__ import annotations

import array
import asyncio
from bisect import bisect_left
from typing import Any

from . import layout
from .shared import SharedMetrics

#: seconds between two copies of a worker's counts into shared memory
PUBLISH_INTERVAL = 0.25

_installed: tuple[SharedMetrics, int] | None = None


def _first_slots(method: str) -> list[int]:
    return [layout.class_index(method, status) for status in range(600)]


#: ``RESPONSE_SLOTS[method][status]``: the slot of a response no slower than ``FIRST_BOUND``
#: (add the bucket's index for a slower one), for statuses 0-599 (a response has 100-599). A
#: method not in it counts as "other": ``OTHER_SLOTS[status]`` (a plain dict and a ``KeyError``
#: are cheaper on the hot path than a ``.get`` or a dict subclass with ``__missing__``).
RESPONSE_SLOTS = {method: _first_slots(method) for method in layout.METHODS}
OTHER_SLOTS = RESPONSE_SLOTS["other"]
#: the bucket bounds: a duration belongs in the first bucket whose bound is at least it
#: (``bisect_left``; Prometheus's ``le``), so one exactly on a bound counts in that bound's bucket
BOUNDS = layout.BUCKETS
FIRST_BOUND = BOUNDS[0]


def install(shared: SharedMetrics, block: int | None) -> None:
    """In a newly forked worker: count into ``block`` of ``shared`` (None: count nothing)."""
    global _installed
    _installed = (shared, block) if block is not None else None


def installed() -> MetricsRecorder | None:
    """A recorder for this worker process when the supervisor gave it a block, else None."""
    if _installed is None:
        return None
    shared, block = _installed
    return MetricsRecorder(shared.writer(block))


class MetricsRecorder:
    """Counts one worker's requests; ``target`` is its block of shared memory."""

    def __init__(self, target: memoryview) -> None:
        #: the counters of :mod:`.layout`; the three sums below are kept apart until published
        #: (an attribute add costs less than a list-item add on the hot path)
        self.counts: list[int] = [0] * layout.SIZE
        #: request durations, summed (seconds; published as whole microseconds)
        self.seconds = 0.0
        #: request and response body bytes
        self.received = 0
        self.sent = 0
        self.target = target
        self._timer: asyncio.TimerHandle | None = None

    def response(self, request: Any, response: Any, start: float, now: float) -> None:
        """One response sent: its method and status, how long it took (``now - start``, on one
        clock), its body sizes.

        For the paths other than the HTTP/1 connection's bytes bodies, which count inline.
        ``request`` and ``response`` are a :class:`~peregrine.http.request.Request` and a
        :class:`~peregrine.http.response.Response` (typed ``Any``: the compiled build would
        check their classes on every call, and tests hand in stand-ins).
        """
        status: int = response.status
        slots = RESPONSE_SLOTS.get(request.method, OTHER_SLOTS)
        # a chained comparison rather than min()/max(): two builtin calls cost ~800 instructions
        slot = slots[status] if 0 <= status < 600 else slots[599]
        elapsed = now - start
        if elapsed > FIRST_BOUND:
            slot += bisect_left(BOUNDS, elapsed)
        self.counts[slot] += 1
        self.seconds += elapsed
        body = request.body
        if body:
            self.received += len(body)
        file = response.file
        if file is not None and response._stream_file_or_upgrade:
            self.sent += file[2]
        else:
            self.sent += len(response.body)

    def refused(self, status: int) -> None:
        """The server answered ``status`` itself: a limit (400, 408, 413...) or a handler error."""
        index = layout.REFUSAL_INDEX.get(status)
        self.counts[index if index is not None else layout.HANDLER_ERRORS] += 1

    def publish(self, connections: Any = ()) -> None:
        """Copy the counts (and the open-connection gauges) into shared memory."""
        http = websocket = 0
        for conn in connections:
            # by class name: importing the protocol classes here would be circular. HTTP
            # connections include those lingering after an error response (linger.Lingerer).
            if "WebSocket" in type(conn).__name__:
                websocket += 1
            else:
                http += 1
        counts = self.counts
        counts[layout.OPEN_HTTP] = http
        counts[layout.OPEN_WEBSOCKET] = websocket
        counts[layout.DURATION_SUM_US] = round(self.seconds * 1_000_000)
        counts[layout.REQUEST_BODY_BYTES] = self.received
        counts[layout.RESPONSE_BODY_BYTES] = self.sent
        self.target[:] = array.array("q", counts)

    def start(self, loop: asyncio.AbstractEventLoop, connections: Any) -> None:
        """Publish every :data:`PUBLISH_INTERVAL` seconds until :meth:`stop`."""

        def tick() -> None:
            self.publish(connections)
            self._timer = loop.call_later(PUBLISH_INTERVAL, tick)

        tick()

    def stop(self, connections: Any = ()) -> None:
        """Stop the periodic copy and publish one last time."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.publish(connections)
