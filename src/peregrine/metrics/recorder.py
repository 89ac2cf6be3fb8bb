"""The worker side: counting on the hot path, publishing to shared memory now and then.

A response is counted by :meth:`MetricsRecorder.count`: one slot (:mod:`.layout`) for its method
class, status class and duration bucket, and its duration and body sizes added to three sums.
Every path calls it: the HTTP/1 connection directly for the responses it sends whole, the others
through :meth:`MetricsRecorder.response`. This module is compiled in the compiled build
(``_build.COMPILED_MODULES``): the recorder is then a native class, its counters C fields and
the call from the compiled connection a direct C call, so a response costs a few dozen
instructions besides its two clock reads (``bench/hotpath.sh`` with ``HOTPATH_METRICS=1``).
Interpreted (the pure build) that call alone costs ~2.6k instructions, so there the callers
append ``count``'s arguments to :attr:`MetricsRecorder.pending` instead, and :meth:`publish`
counts them in one batch before it copies the counts (the page stays exact).

Durations run from the handler's call to the response's hand-over to the transport, on
``time.perf_counter`` (``ServerState.clock``), which the connections read at both ends on every
path, a synchronous handler's included (HTTP/2, on the loop's own clock, starts at the read that
brought the request in); with metrics and the access log off they read no clock.

Nothing shared is touched on the hot path: :meth:`MetricsRecorder.publish` copies the counts
into the worker's shared block every :data:`PUBLISH_INTERVAL` seconds and when the worker stops
(a worker killed with SIGKILL loses at most that interval).
"""

from __future__ import annotations

import array
import asyncio
from typing import TYPE_CHECKING, Any, Final

from .._build import runs_compiled
from . import layout
from .shared import SharedMetrics

if TYPE_CHECKING:
    # a 64-bit machine int in the compiled build (no tag checks, overflow checks or reference
    # counts on its adds and compares); only ever an annotation, so nothing to import at run
    # time (mypy_extensions is build-time only; mypyc would compile an ``else`` here as
    # unreachable and raise on it)
    from mypy_extensions import i64

#: seconds between two copies of a worker's counts into shared memory
PUBLISH_INTERVAL = 0.25

_installed: tuple[SharedMetrics, int] | None = None

#: literals (the compiled build inlines them), checked against the layout below
_GET_SLOT: Final = 0  # GET with a status below 200
_CLASS_STRIDE: Final = 14  # slots between two status classes
# the bucket bounds, which count() and _count_later compare with as literals: a duration belongs
# in the first bucket whose bound is at least it (Prometheus's ``le``), so one exactly on a
# bound counts in that bound's bucket
assert layout.BUCKETS[:9] == (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
assert layout.BUCKETS[9:] == (1.0, 2.5, 5.0, 10.0)
assert (_GET_SLOT, _CLASS_STRIDE) == (layout.class_index("GET", 100), layout.SLOTS_PER_CLASS)


def _method_slot(method: str) -> int:
    """The first slot of ``method``'s class (as sent), with a status below 200."""
    return layout.class_index(method, 100)


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


#: whether this module runs interpreted (the pure build; see _build.runs_compiled)
_INTERPRETED: Final = not runs_compiled(install)


class MetricsRecorder:
    """Counts one worker's requests; ``target`` is its block of shared memory."""

    # the fields count() adds to and compares, as machine ints in the compiled build (see i64)
    received: i64
    sent: i64
    run_class: i64
    run_0: i64
    run_1: i64
    run_2: i64
    run_3: i64
    run_4: i64
    run_5: i64
    run_6: i64
    run_7: i64
    run_8: i64
    run_9: i64
    run_10: i64
    run_11: i64
    run_12: i64
    run_13: i64

    def __init__(self, target: memoryview) -> None:
        #: the counters of :mod:`.layout`; the sums below and the current run are kept apart
        #: until published (a native field add costs less than a list-item add on the hot path)
        self.counts: list[int] = [0] * layout.SIZE
        #: request durations, summed (seconds; published as whole microseconds)
        self.seconds = 0.0
        #: request and response body bytes
        self.received = 0
        self.sent = 0
        #: the first slot of the class (method and status class) of the last response counted,
        #: and how many responses of that class fell in each duration bucket since they were last
        #: added into ``counts``: steady traffic lands in one or a few classes, and a native int
        #: add is ~200 instructions cheaper than a list item's (whose int above 256 is a new
        #: object each time), whichever bucket a response's duration falls in
        self.run_class = 0
        self.run_0 = self.run_1 = self.run_2 = self.run_3 = self.run_4 = self.run_5 = 0
        self.run_6 = self.run_7 = self.run_8 = self.run_9 = self.run_10 = self.run_11 = 0
        self.run_12 = self.run_13 = 0
        #: responses not counted yet, five items each (``count``'s arguments), in the interpreted
        #: build only (None when compiled): there a call of ``count`` costs ~2.6k instructions,
        #: an ``extend`` of a flat list (no object kept per response but its duration and size)
        #: a few hundred, and :meth:`publish` counts them in one batch (:meth:`_count_pending`);
        #: compiled, the call is a direct C call, cheaper than either
        self.pending: list[Any] | None = [] if _INTERPRETED else None
        self.target = target
        self._timer: asyncio.TimerHandle | None = None

    def count(self, method: str, status: i64, elapsed: float, received: i64, sent: i64) -> None:
        """One response: its method (as sent), status, duration in seconds and body sizes."""
        # the class by compares and adds of literals, no dict lookup or object built
        base: i64 = _GET_SLOT if method == "GET" else _method_slot(method)
        if status >= 200:  # else 1xx (or below), the method's first class
            if status < 300:
                base += _CLASS_STRIDE
            elif status < 400:
                base += 2 * _CLASS_STRIDE
            elif status < 500:
                base += 3 * _CLASS_STRIDE
            else:  # 5xx (or above)
                base += 4 * _CLASS_STRIDE
        if base != self.run_class:
            self._add_runs()
            self.run_class = base
        if elapsed <= 0.001:  # the first bucket (Prometheus's ``le``: a bound is in its bucket)
            self.run_0 += 1
        else:
            self._count_later(elapsed)
        self.seconds += elapsed
        if received:  # most requests have no body: no add (nor, interpreted, a new int object)
            self.received += received
        self.sent += sent

    def _count_later(self, elapsed: float) -> None:
        """Count a duration over the first bound in its bucket's run, found by comparing
        literals: the compiled build compares C doubles (indexing the ``Final`` tuple of bounds
        would box all its floats into a new tuple on every read)."""
        if elapsed <= 0.05:
            if elapsed <= 0.0025:
                self.run_1 += 1
            elif elapsed <= 0.005:
                self.run_2 += 1
            elif elapsed <= 0.01:
                self.run_3 += 1
            elif elapsed <= 0.025:
                self.run_4 += 1
            else:
                self.run_5 += 1
        elif elapsed <= 0.5:
            if elapsed <= 0.1:
                self.run_6 += 1
            elif elapsed <= 0.25:
                self.run_7 += 1
            else:
                self.run_8 += 1
        elif elapsed <= 1.0:
            self.run_9 += 1
        elif elapsed <= 2.5:
            self.run_10 += 1
        elif elapsed <= 5.0:
            self.run_11 += 1
        elif elapsed <= 10.0:
            self.run_12 += 1
        else:
            self.run_13 += 1

    def _add_runs(self) -> None:
        """Add the current class's runs into ``counts`` and start them again from 0."""
        runs = [
            self.run_0,
            self.run_1,
            self.run_2,
            self.run_3,
            self.run_4,
            self.run_5,
            self.run_6,
            self.run_7,
            self.run_8,
            self.run_9,
            self.run_10,
            self.run_11,
            self.run_12,
            self.run_13,
        ]
        counts = self.counts
        base = self.run_class
        for bucket, run in enumerate(runs):
            if run:
                counts[base + bucket] += run
        self.run_0 = self.run_1 = self.run_2 = self.run_3 = self.run_4 = self.run_5 = 0
        self.run_6 = self.run_7 = self.run_8 = self.run_9 = self.run_10 = self.run_11 = 0
        self.run_12 = self.run_13 = 0

    def response(self, request: Any, response: Any, start: float, now: float) -> None:
        """One response sent: its method and status, how long it took (``now - start``, on one
        clock), its body sizes (a streamed body's are not counted).

        ``request`` and ``response`` are a :class:`~peregrine.http.request.Request` and a
        :class:`~peregrine.http.response.Response` (typed ``Any``: the compiled build would
        check their classes on every call, and tests hand in stand-ins).
        """
        file = response.file
        if file is not None and response._stream_file_or_upgrade:
            sent: int = file[2]
        else:
            sent = len(response.body)
        pending = self.pending
        if pending is None:
            self.count(request.method, response.status, now - start, len(request.body), sent)
        else:
            pending.extend((request.method, response.status, now - start, len(request.body), sent))

    def _count_pending(self) -> None:
        """Count the responses waiting in ``pending`` (the interpreted build's). A batch of one
        method and status whose durations all fall in the first bucket, as steady traffic makes,
        is counted by builtins over its columns (~150 instructions a response instead of a call
        of ``count``); any other batch one response at a time by ``count``."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        methods = pending[::5]
        statuses = pending[1::5]
        durations = pending[2::5]
        size = len(methods)
        method = methods[0]
        status = statuses[0]
        if max(durations) <= 0.001 and methods.count(method) == size == statuses.count(status):
            # count() picks that class's runs and counts the first; the others land in the
            # same run (the first bucket), their durations and sizes in the sums
            self.count(method, status, 0.0, 0, 0)
            self.run_0 += size - 1
            self.seconds += sum(durations)
            self.received += sum(pending[3::5])
            self.sent += sum(pending[4::5])
        else:
            for i in range(0, len(pending), 5):
                self.count(*pending[i : i + 5])

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
        self._count_pending()
        self._add_runs()
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
