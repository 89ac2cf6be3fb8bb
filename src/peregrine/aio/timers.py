"""Many one-shot timers served by one event-loop timer.

Every HTTP/1 connection keeps one read timer for its whole life, idle keep-alive ones
included, and with uvloop a ``TimerHandle`` and its libuv timer take ~600 bytes: a quarter of
what an idle connection costs. A :class:`TimerQueue` keeps the timers of all the connections of
a worker in one heap, with one loop timer set at the earliest.

A timer belongs to an owner (a :class:`TimerOwner`, e.g. a connection) that has at most one
pending at a time: the heap entry is ``(when, number, owner)``, the owner keeps the entry's number
in ``timer_number`` (0: none pending), and the queue calls ``owner.on_timer()``. No timer object
and no bound method per timer: ~120 bytes a timer (the entry tuple, its float and its number)
instead of ~230 with them, on every idle connection.

Timers fire at their own time, as with ``loop.call_at`` (the loop timer is always at the
earliest one), in order of time, then of creation. Timers that callbacks set while due ones run
only go on the heap; the loop timer is set once, after the run, for the earliest entry. (Set at
once, a busy connection's next look, later than the next connection's, took a loop timer that
was cancelled right after: two loop timers per look.) Cancelling is O(1): the entry stays in the
heap, dead (its number is no longer the owner's), until its time comes or dead entries make up
half the heap, which is then rebuilt without them (so closed connections are not kept alive by
their timers).
"""

from __future__ import annotations

import asyncio
from heapq import heapify, heappop, heappush
from typing import Protocol

__all__ = ["TimerOwner", "TimerQueue"]

#: Fewest cancelled entries before the heap is rebuilt (a rebuild of a tiny heap buys nothing).
_COMPACT_MIN = 64


class TimerOwner(Protocol):
    """What a :class:`TimerQueue` calls, and where it marks which of its entries is live."""

    #: the number of the owner's pending entry, 0 when none (written by the queue only)
    timer_number: int

    def on_timer(self) -> None:
        """The owner's timer is due (its ``timer_number`` is 0 again by then)."""


class TimerQueue:
    """The timers of one worker on one loop timer (see the module docstring)."""

    __slots__ = ("loop", "_heap", "_handle", "_handle_at", "_count", "_cancelled", "_running")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # (when, creation number, owner): the number keeps equal times in creation order,
        # spares comparing owners, and tells a live entry from a dead one
        self._heap: list[tuple[float, int, TimerOwner]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0
        self._count = 0
        self._cancelled = 0
        # True while due timers are called: the loop timer is then set once, after them
        self._running = False

    def __len__(self) -> int:
        """Timers waiting (cancelled ones not yet dropped included)."""
        return len(self._heap)

    def call_at(self, when: float, owner: TimerOwner) -> None:
        """Call ``owner.on_timer()`` at loop time ``when``, instead of its pending timer."""
        if owner.timer_number:
            self.cancel(owner)
        self._count += 1
        number = self._count
        owner.timer_number = number
        heappush(self._heap, (when, number, owner))
        if not self._running and (self._handle is None or when < self._handle_at):
            self._arm(when)

    def cancel(self, owner: TimerOwner) -> None:
        """Do not call ``owner`` for its pending timer (no-op when none is pending)."""
        if owner.timer_number:
            owner.timer_number = 0
            self._cancelled_one()

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(when, self._run)
        self._handle_at = when

    def _run(self) -> None:
        self._running = True
        try:
            self._call_due()
        finally:
            self._running = False
        heap = self._heap
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
            _, number, owner = heappop(heap)
            if owner.timer_number != number:
                self._cancelled -= 1
                continue
            owner.timer_number = 0
            try:
                owner.on_timer()
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
            heap[:] = [entry for entry in heap if entry[2].timer_number == entry[1]]
            heapify(heap)
            self._cancelled = 0
