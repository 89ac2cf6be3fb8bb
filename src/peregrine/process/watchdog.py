"""The hung-worker watchdog: the worker's half, and the supervisor's bookkeeping.

A handler that blocks (``time.sleep(3600)``, a deadlock, an endless loop) stops its worker's
event loop, and every connection on that worker with it. Like gunicorn's ``--timeout``:

* each worker's event loop sends the supervisor ``alive`` on its status pipe every
  :func:`heartbeat_interval` seconds (a timer on the loop: it only fires while the loop runs);
* the supervisor notes when it last heard from each worker (:class:`HangWatch`); a ready worker
  silent for ``worker_timeout`` seconds gets :data:`DUMP_SIGNAL`, on which ``faulthandler`` writes
  the stack of every thread of the worker into the same pipe (from C, so it works however the
  main thread is stuck); a moment later the supervisor logs that stack and SIGKILLs the worker,
  and the usual crash handling starts its replacement.

Single-process mode (``workers=1``) has nobody to watch the loop from outside: no watchdog.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
from collections.abc import Callable

#: the signal that makes a worker write its threads' stacks (faulthandler) before it is killed
DUMP_SIGNAL = signal.SIGUSR1
#: how long the supervisor waits for that stack before the SIGKILL
DUMP_WAIT = 0.5
#: most stack lines kept from one dump (faulthandler already stops at 100 frames per thread)
_STACK_LINES_MAX = 400


def heartbeat_interval(worker_timeout: float) -> float:
    """Seconds between two heartbeats: often enough that a few may be late without a kill."""
    return min(1.0, worker_timeout / 4)


def arm_stack_dump(fd: int) -> None:
    """In a worker: on :data:`DUMP_SIGNAL`, write every thread's stack to ``fd``."""
    faulthandler.register(DUMP_SIGNAL, file=fd, all_threads=True, chain=False)


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds for as long as ``loop`` runs its callbacks."""

    __slots__ = ("loop", "interval", "beat", "_timer")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float, beat: Callable[[], None]
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.beat = beat
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Beat now, and then every ``interval`` seconds."""
        self._timer = None
        self.beat()
        self._timer = self.loop.call_later(self.interval, self.start)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class HangWatch:
    """The supervisor's record of one worker's liveness (times are ``time.monotonic()``).

    Watching, until found silent for too long; then dumping (its stack is collected) until
    ``dump_until``; then killed.
    """

    __slots__ = ("heard_at", "dump_until", "killed", "stack")

    def __init__(self, now: float) -> None:
        #: when the worker last said anything on its pipe
        self.heard_at = now
        #: once found hung: when to SIGKILL it (its stack has had time to arrive); else 0
        self.dump_until = 0.0
        self.killed = False
        #: lines of the stack dump received since it was found hung
        self.stack: list[str] = []

    @property
    def watching(self) -> bool:
        return not self.dump_until and not self.killed

    @property
    def dumping(self) -> bool:
        return bool(self.dump_until) and not self.killed

    def next_moment(self, timeout: float) -> float:
        """When this record next needs a look (0 = never)."""
        if self.watching:
            return self.heard_at + timeout
        return self.dump_until if self.dumping else 0.0

    def found_hung(self, now: float) -> None:
        """Start collecting the stack dump the worker is being asked for."""
        self.dump_until = now + DUMP_WAIT

    def add_stack_line(self, line: str) -> None:
        if self.dumping and len(self.stack) < _STACK_LINES_MAX:
            self.stack.append(line)

    def stack_text(self) -> str:
        """The collected dump, indented, or a note saying there is none."""
        if not self.stack:
            return "    (no stack received: the process did not answer the dump signal)"
        return "\n".join("    " + line for line in self.stack)
