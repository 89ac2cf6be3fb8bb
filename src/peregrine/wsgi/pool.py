"""The two hand-offs between the event loop and the application threads.

- :class:`ThreadPool`: a fixed set of threads taking jobs from one ``queue.SimpleQueue`` (a C
  queue: ``put`` is one call that wakes one idle thread). No ``concurrent.futures.Future`` per
  job: the job reports back itself, through the inbox. The loop submits with
  :meth:`ThreadPool.submit_soon`: the jobs of one loop iteration are put together, at its end.
  On Linux the threads run under ``SCHED_BATCH`` (see :func:`defer_to_woken_threads`).
- :class:`LoopInbox`: calls an application thread wants made on the loop. The first call
  posted while the loop is not already due to run the inbox schedules one
  ``call_soon_threadsafe`` (one wake-up of the loop); calls posted before the loop gets to
  it join that batch. Under load, many responses ride on one wake-up.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger("peregrine.error")


def defer_to_woken_threads() -> bool:
    """Put the calling thread under Linux's ``SCHED_BATCH`` policy; False where it cannot be.

    Why: a thread under ``SCHED_BATCH`` that is woken does not preempt the thread running on
    its core; it runs when that one sleeps, or at the scheduler's next tick. When the loop and
    the application threads share a core (one worker per core, or a pinned worker), the loop
    wakes a thread with each batch of jobs and that thread, preempting the loop at once, only
    found the GIL taken and went back to sleep: two context switches for nothing per wake-up.
    Now it runs once the loop waits for I/O, which drops the GIL. Its share of the CPU is
    unchanged (the policy keeps the nice value), and on another core it starts at once as
    before. Threads the application starts from a pool thread inherit the policy.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a sandbox that refuses it
        return False
    return True


class ThreadPool:
    """``size`` threads running ``work(job)`` for each submitted job, started on first use.

    Each job runs in a ``contextvars.Context`` of its own: what it sets in context variables
    is not seen by the next job. A thread keeps its context for the next job while the context
    is still empty after a job (most jobs set nothing, or reset what they set), which saves
    making and freeing one per job; an empty context cannot be told from a new one (no API
    hands out the running context itself, ``copy_context()`` makes a copy).
    ``batch_policy``: run the threads under ``SCHED_BATCH`` (:func:`defer_to_woken_threads`).
    """

    def __init__(
        self,
        size: int,
        work: Callable[[Any], None],
        name: str = "wsgi",
        batch_policy: bool = True,
    ) -> None:
        self.size = size
        self._work = work
        self._name = name
        self._batch_policy = batch_policy
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        #: jobs given to :meth:`submit_soon` in this loop iteration, put when it ends
        self._batch: list[Any] = []

    def submit_soon(self, job: Any, loop: Any) -> None:
        """Queue ``job`` once the loop has run the callbacks now due (call it on ``loop``).

        Why: uvloop drops the GIL after each I/O callback, so a job put from one connection's
        read wakes a thread that takes the GIL before the loop reads the next connection, and
        the two ping-pong (measured: ~2 futex calls and ~1-2 context switches per request).
        Put together after the loop's callbacks, the jobs of one iteration cost about one
        wake-up between them. Each job still gets its own thread when one blocks: a thread that
        takes a job wakes the next idle one while jobs are left (``SimpleQueue.get``).
        """
        batch = self._batch
        batch.append(job)
        if len(batch) == 1:
            loop.call_soon(self._put_batch)

    def _put_batch(self) -> None:
        batch = self._batch
        self._batch = []
        if not self._threads:
            self._start()
        put = self._jobs.put
        for job in batch:
            put(job)

    def submit(self, job: Any) -> None:
        """Queue ``job`` for the next free thread (never blocks)."""
        if not self._threads:
            self._start()
        self._jobs.put(job)

    def _start(self) -> None:
        for i in range(self.size):
            # daemon: a thread stuck in the application must not keep the worker alive past
            # its graceful timeout (shutdown waits for them, boundedly, in close())
            thread = threading.Thread(target=self._run, name=f"{self._name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        if self._batch_policy:
            defer_to_woken_threads()
        jobs = self._jobs
        work = self._work
        context = _Context()
        while True:
            job = jobs.get()
            if job is None:
                return
            try:
                _CONTEXT_RUN(context, work, job)
            except BaseException:  # work() reports its own errors; this is the last guard
                log.exception("WSGI worker thread: unexpected error")
            job = None  # drop the reference while idle
            if len(context):  # the job left a context variable set: the next gets a new one
                context = _Context()

    def shutdown(self, timeout: float) -> bool:
        """Let the threads finish their jobs and stop, waiting up to ``timeout`` seconds.

        Returns False when some thread was still running the application at the deadline.
        """
        if self._batch:  # the loop's turn to put them has not come: they run before the stop
            self._put_batch()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = []
        return not alive


# Final: compiled, C statics read directly, where a module attribute is a lookup; and the
# method from the class, called with the context, makes no bound method per job
_Context: Final = contextvars.Context
_CONTEXT_RUN: Final = contextvars.Context.run


class LoopInbox:
    """Callables from application threads, run on the loop in batches (module docstring)."""

    __slots__ = ("loop", "_items", "_append", "_scheduled")

    def __init__(self, loop: Any) -> None:
        #: the event loop the calls run on
        self.loop = loop
        self._items: deque[tuple[Callable[[Any], None], Any]] = deque()
        #: the deque's append, bound once: compiled, a method called on a deque is looked up
        #: by name on each call (bound to the deque, not to self: no reference cycle)
        self._append = self._items.append
        self._scheduled = False

    def post(self, function: Callable[[Any], None], argument: Any) -> None:
        """Run ``function(argument)`` on the loop soon (thread-safe, never blocks)."""
        self._append((function, argument))
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
        popleft = items.popleft
        while items:
            function, argument = popleft()
            try:
                function(argument)
            except Exception:
                log.exception("WSGI: error handing a response to the connection")
