"""The worker side: counting on the hot path, publishing to shared memory now and then.

Per response the connection calls :meth:`MetricsRecorder.response`: a few integer adds on a
plain list, and the duration's bucket found by ``bisect``. Nothing shared is touched there; the
list is copied into the worker's shared block by :meth:`publish` every :data:`PUBLISH_INTERVAL`
seconds and when the worker stops (a worker killed with SIGKILL loses at most that interval).
"""

from __future__ import annotations

import array
import asyncio
from bisect import bisect_left
from typing import Any

from ..http.request import Request
from ..http.response import Response
from . import layout
from .shared import SharedMetrics

#: seconds between two copies of a worker's counts into shared memory
PUBLISH_INTERVAL = 0.25

_installed: tuple[SharedMetrics, int] | None = None

# the layout, flattened into lookups for MetricsRecorder.response
_METHOD_BASE = {
    method: layout.request_index(method, 100) for method in layout.METHODS if method != "other"
}
_OTHER_BASE = layout.request_index("other", 100)
#: status // 100 -> offset of its class (anything below 100 or from 600 on is clamped)
_STATUS_OFFSET = tuple(min(max(i, 1), 5) - 1 for i in range(10))
_BUCKETS_AT = layout.DURATION_BUCKETS
_BOUNDS = layout.BUCKETS
_FIRST_BOUND = layout.BUCKETS[0]
_REQUEST_BODY_BYTES = layout.REQUEST_BODY_BYTES
_RESPONSE_BODY_BYTES = layout.RESPONSE_BODY_BYTES


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

    __slots__ = ("counts", "duration_sum", "target", "_timer")

    def __init__(self, target: memoryview) -> None:
        self.counts = [0] * layout.SIZE
        #: seconds, summed; published as whole microseconds
        self.duration_sum = 0.0
        self.target = target
        self._timer: asyncio.TimerHandle | None = None

    def response(self, request: Request, response: Response, start: float, now: float) -> None:
        """One response sent: its method and status, how long it took, its body sizes.

        Written for the hot path (measured with ``bench/hotpath.sh``, HOTPATH_METRICS=1): table
        lookups instead of arithmetic and builtins, module globals instead of attribute chains,
        no bisection for the fastest bucket, the duration summed as a float and converted only
        when published.
        """
        counts = self.counts
        counts[
            _METHOD_BASE.get(request.method, _OTHER_BASE) + _STATUS_OFFSET[response.status // 100]
        ] += 1
        elapsed = now - start
        if elapsed <= _FIRST_BOUND:
            counts[_BUCKETS_AT] += 1
        else:
            counts[_BUCKETS_AT + bisect_left(_BOUNDS, elapsed)] += 1
        self.duration_sum += elapsed
        body = request.body
        if body:
            counts[_REQUEST_BODY_BYTES] += len(body)
        if response._stream_file_or_upgrade and response.file is not None:
            counts[_RESPONSE_BODY_BYTES] += response.file[2]
        else:
            body = response.body
            if body:
                counts[_RESPONSE_BODY_BYTES] += len(body)

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
        counts[layout.DURATION_SUM_US] = round(self.duration_sum * 1_000_000)
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
