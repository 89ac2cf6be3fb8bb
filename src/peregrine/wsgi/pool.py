"""The two hand-offs between the event loop and the application threads.

- :class:`ThreadPool`: a fixed set of threads taking jobs from one deque, an idle thread woken
  only when no awake thread is free to take the job (see the class). No
  ``concurrent.futures.Future`` per job: the job reports back itself, through the inbox.
- :class:`LoopInbox`: calls an application thread wants made on the loop. The first call
  posted while the loop is not already due to run the inbox schedules one
  ``call_soon_threadsafe`` (one wake-up of the loop); calls posted before the loop gets to
  it join that batch. Under load, many responses ride on one wake-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("peregrine.error")


class ThreadPool:
    """``size`` threads running ``work(job)`` for each submitted job, started on first use.

    Jobs wait in a deque; an idle thread parks on a lock of its own (the parked ones form a
    stack: the thread that ran last, its caches warm, is woken first). A thread is woken only
    when no thread that is awake and outside ``work()`` (a *free* thread, which looks at the
    jobs before it parks) is there to take the job. So a job submitted while a thread is
    between jobs costs no wake-up, and a woken thread never wakes another just to find the
    deque empty (``queue.SimpleQueue`` does: each ``get`` that waited hands its lock on to the
    next waiting thread, which wakes, finds nothing and waits again).

    No job waits behind one that blocks: a thread that takes a job and leaves others queued
    with no free thread wakes one first (the rule keeps "jobs queued and a thread parked"
    from holding while no thread is free).
    """

    def __init__(self, size: int, work: Callable[[Any], None], name: str = "wsgi") -> None:
        self.size = size
        self._work = work
        self._name = name
        self._jobs: deque[Any] = deque()
        #: guards _jobs, _parked and _free (taken for a few operations, never across work())
        self._mutex: Any = threading.Lock()
        #: the locks the idle threads wait on, each held (the thread waits to acquire it again)
        self._parked: list[Any] = []
        #: threads awake and outside work(): each looks at the jobs before it parks
        self._free = 0
        self._threads: list[threading.Thread] = []
        #: how many times a parked thread was woken (for tests and measurements)
        self.wakeups = 0

    @property
    def parked(self) -> int:
        """How many threads are parked, waiting for a job."""
        return len(self._parked)

    def submit(self, job: Any) -> None:
        """Queue ``job`` for the next free thread (never blocks)."""
        if not self._threads:
            self._start()
        self._put(job)

    def _put(self, job: Any) -> None:
        mutex = self._mutex
        mutex.acquire()
        self._jobs.append(job)
        if self._free == 0 and self._parked:
            self._wake()
        mutex.release()

    def _wake(self) -> None:
        # with the mutex held; the woken thread counts as free from now on, so that the jobs
        # submitted before it runs wake no one else
        self._free += 1
        self.wakeups += 1
        self._parked.pop().release()

    def _start(self) -> None:
        self._free += self.size  # they look at the jobs before they first park
        for i in range(self.size):
            # daemon: a thread stuck in the application must not keep the worker alive past
            # its graceful timeout (shutdown waits for them, boundedly, in close())
            thread = threading.Thread(target=self._run, name=f"{self._name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        jobs = self._jobs
        work = self._work
        mutex = self._mutex
        gate: Any = threading.Lock()
        gate.acquire()
        mutex.acquire()
        while True:
            if not jobs:
                self._free -= 1
                self._parked.append(gate)
                mutex.release()
                gate.acquire()  # until _wake() releases it (and counts this thread free)
                mutex.acquire()
                continue
            job = jobs.popleft()
            self._free -= 1
            if jobs and self._free == 0 and self._parked:
                self._wake()  # someone must be free to take the rest if this job blocks
            mutex.release()
            if job is None:
                return
            try:
                work(job)
            except BaseException:  # work() reports its own errors; this is the last guard
                log.exception("WSGI worker thread: unexpected error")
            job = None  # drop the reference while idle
            mutex.acquire()
            self._free += 1

    def shutdown(self, timeout: float) -> bool:
        """Let the threads finish their jobs and stop, waiting up to ``timeout`` seconds.

        Returns False when some thread was still running the application at the deadline.
        """
        for _ in self._threads:
            self._put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = []
        return not alive


class LoopInbox:
    """Callables from application threads, run on the loop in batches (module docstring)."""

    __slots__ = ("loop", "_items", "_scheduled")

    def __init__(self, loop: Any) -> None:
        #: the event loop the calls run on
        self.loop = loop
        self._items: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._scheduled = False

    def post(self, function: Callable[[Any], None], argument: Any) -> None:
        """Run ``function(argument)`` on the loop soon (thread-safe, never blocks)."""
        self._items.append((function, argument))
        # Read after the append: if the loop's _run has not yet cleared the flag, it will see
        # this item when it drains; if it has, we schedule another run. A spare run is harmless.
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._run)
            except RuntimeError:  # the loop is closed: the worker is gone
                pass

    def _run(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            function, argument = items.popleft()
            try:
                function(argument)
            except Exception:
                log.exception("WSGI: error handing a response to the connection")
