"""Many one-shot timers served by one event-loop timer.

Every HTTP/1 connection keeps one read timer for its whole life, idle keep-alive ones
included, and with uvloop a ``TimerHandle`` and its libuv timer take ~600 bytes: a quarter of
what an idle connection costs. A :class:`TimerQueue` keeps the timers of all the connections of
a worker in one heap, with one loop timer set at the earliest; a timer is then ~250 bytes.

Timers fire at their own time, as with ``loop.call_at`` (the loop timer is always at the
earliest one), in order of time, then of creation. Cancelling is O(1): the entry stays in the
heap, marked, until its time comes or cancelled entries make up half the heap, which is then
rebuilt without them (so closed connections are not kept alive by their timers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from heapq import heapify, heappop, heappush

__all__ = ["Timer", "TimerQueue"]

#: Fewest cancelled entries before the heap is rebuilt (a rebuild of a tiny heap buys nothing).
_COMPACT_MIN = 64


class Timer:
    """One scheduled call; :meth:`cancel` as on an ``asyncio.TimerHandle``."""

    __slots__ = ("callback", "_queue")

    def __init__(self, callback: Callable[[], object], queue: TimerQueue) -> None:
        self.callback: Callable[[], object] | None = callback
        self._queue = queue

    def cancel(self) -> None:
        """Do not call it (no-op once it ran or was cancelled)."""
        if self.callback is not None:
            self.callback = None
            self._queue._cancelled_one()

    def cancelled(self) -> bool:
        """True once cancelled, or once it ran."""
        return self.callback is None


class TimerQueue:
    """The timers of one worker on one loop timer (see the module docstring)."""

    __slots__ = ("loop", "_heap", "_handle", "_handle_at", "_count", "_cancelled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # (when, creation number, timer): the number keeps equal times in creation order
        # and spares comparing timers
        self._heap: list[tuple[float, int, Timer]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0
        self._count = 0
        self._cancelled = 0

    def __len__(self) -> int:
        """Timers waiting (cancelled ones not yet dropped included)."""
        return len(self._heap)

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback()`` at loop time ``when``."""
        timer = Timer(callback, self)
        self._count += 1
        heappush(self._heap, (when, self._count, timer))
        if self._handle is None or when < self._handle_at:
            self._arm(when)
        return timer

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(when, self._run)
        self._handle_at = when

    def _run(self) -> None:
        self._call_due()
        heap = self._heap
        # (a callback may have set the loop timer for a later entry than one still waiting)
        if heap and (self._handle is None or self._handle_at > heap[0][0]):
            self._arm(heap[0][0])

    def _call_due(self) -> None:
        # Forgets the loop timer that ran, here rather than in _run: after this assignment the
        # type checker (and so the compiled build) takes self._handle for None, while the
        # callbacks below may set a new one, which _run must see.
        self._handle = None
        heap = self._heap
        # what the loop timer was set for is due, even if the loop ran it a hair early
        due = max(self.loop.time(), self._handle_at)
        while heap and heap[0][0] <= due:
            timer = heappop(heap)[2]
            callback = timer.callback
            if callback is None:
                self._cancelled -= 1
                continue
            timer.callback = None
            try:
                callback()
            except Exception as exc:  # as the loop does for a failing callback: report, go on
                self.loop.call_exception_handler(
                    {"message": "Exception in timer callback", "exception": exc}
                )

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        heap = self._heap
        if self._cancelled == len(heap):  # none left to run: no loop timer either
            heap.clear()
            self._cancelled = 0
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
        elif self._cancelled >= _COMPACT_MIN and self._cancelled * 2 > len(heap):
            heap[:] = [entry for entry in heap if entry[2].callback is not None]
            heapify(heap)
            self._cancelled = 0
