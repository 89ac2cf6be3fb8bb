"""State shared by all the worker processes of a server: a counter in shared memory.

Workers are separate processes, so a plain Python ``int`` in a handler counts per worker. A
:class:`SharedCounter` lives in an anonymous shared memory page (``mmap``) guarded by a
process-shared lock, both made *before* the workers fork: every worker then maps the same page,
and an increment under the lock is atomic across all of them.

Make counters at module level (import time): the supervisor imports the handler's module before
forking, so the memory is created once and inherited. A counter made in ``Handler.__init__`` runs
in each worker and would be private to it.

``SharedCounter.named(name)`` keeps counters in a registry inside Peregrine itself. A rolling
restart (SIGHUP) re-imports the application's modules in new workers; the registry survives that,
so ``named`` hands the re-imported module the counter it had before and the count goes on.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import struct
import threading
from typing import Optional

log = logging.getLogger("peregrine")

_INT = struct.Struct("q")  # one signed 64-bit integer, native order
_registry: dict[str, "SharedCounter"] = {}
_registry_lock = threading.Lock()

#: set by the supervisor in each worker process; counters made after it are not shared
_forked_worker = False


def mark_worker_process() -> None:
    """Record that this process is a forked worker (called by the supervisor in the child)."""
    global _forked_worker
    _forked_worker = True


class SharedCounter:
    """An integer shared by every worker process; ``next()`` returns each value exactly once."""

    def __init__(self, start: int = 0) -> None:
        if _forked_worker:
            log.warning(
                "SharedCounter made inside a worker process: it is not shared with the other "
                "workers; make it at module level, before the workers start"
            )
        self._memory = mmap.mmap(-1, _INT.size)  # anonymous + MAP_SHARED: survives fork shared
        # A fork-context lock is a POSIX semaphore in shared memory: inherited by fork, taken by
        # whichever process increments. It works whatever start method the application chose.
        try:
            self._lock = multiprocessing.get_context("fork").Lock()
        except ValueError:  # no fork on this platform (Windows): one process, any lock will do
            self._lock = multiprocessing.Lock()
        _INT.pack_into(self._memory, 0, start)

    @classmethod
    def named(cls, name: str, start: int = 0) -> "SharedCounter":
        """The counter registered under ``name``, made (at ``start``) on first use."""
        with _registry_lock:
            counter = _registry.get(name)
            if counter is None:
                counter = _registry[name] = cls(start)
            return counter

    def next(self) -> int:
        """Return the current value and add one, atomically across processes."""
        with self._lock:
            value: int = _INT.unpack_from(self._memory, 0)[0]
            _INT.pack_into(self._memory, 0, value + 1)
        return value

    def add(self, amount: int) -> int:
        """Add ``amount`` (may be negative) atomically; return the new value."""
        with self._lock:
            value: int = _INT.unpack_from(self._memory, 0)[0] + amount
            _INT.pack_into(self._memory, 0, value)
        return value

    @property
    def value(self) -> int:
        """The current value (a snapshot: other workers may change it right after)."""
        with self._lock:
            value: int = _INT.unpack_from(self._memory, 0)[0]
        return value

    def reset(self, value: int = 0) -> None:
        """Set the counter to ``value``."""
        with self._lock:
            _INT.pack_into(self._memory, 0, value)

    def __repr__(self) -> str:
        return f"SharedCounter({self.value})"


def get_counter(name: str) -> Optional[SharedCounter]:
    """The counter registered under ``name``, or None."""
    return _registry.get(name)
