"""State shared by all the worker processes of a server: a counter in shared memory.

Workers are separate processes, so a plain Python ``int`` in a handler counts per worker. A
:class:`SharedCounter` lives in an anonymous shared memory page (``mmap``) guarded by a
process-shared lock, both made *before* the workers fork: every worker then maps the same page,
and an increment under the lock is atomic across all of them.

The lock is a POSIX record lock (``fcntl.lockf``) on one byte of an unlinked temporary file,
plus a thread lock for the threads of one process (record locks belong to a process, not to a
thread). The kernel releases a record lock when its process dies: a worker killed in the middle
of ``next()`` (SIGKILL, the OOM killer) cannot leave the others waiting forever, as a semaphore
would. Each counter locks its own byte of one file, so counters cost no file descriptor each.

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
import os
import struct
import tempfile
import threading
import weakref
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no fork, so one process; the thread lock alone is enough
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("peregrine")

_INT = struct.Struct("q")  # one signed 64-bit integer, native order
_registry: dict[str, SharedCounter] = {}
_registry_lock = threading.Lock()

#: set by the supervisor in each worker process; counters made after it are not shared
_forked_worker = False

# The file whose bytes are the counters' record locks (made with the first counter).
_lock_file: int | None = None
_next_byte = 0
_lock_file_lock = threading.Lock()
_locks: weakref.WeakSet[_ProcessLock] = weakref.WeakSet()


class _ProcessLock:
    """Excludes every thread of every process sharing it; released by the kernel on death."""

    def __init__(self) -> None:
        global _lock_file, _next_byte
        self._thread_lock = threading.Lock()
        with _lock_file_lock:
            if fcntl is None:
                self._file: int | None = None
            else:
                if _lock_file is None:
                    with tempfile.TemporaryFile() as file:
                        _lock_file = os.dup(file.fileno())  # the file is unlinked already
                self._file = _lock_file
            self._byte, _next_byte = _next_byte, _next_byte + 1
        _locks.add(self)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._file is not None:
            try:
                fcntl.lockf(self._file, fcntl.LOCK_EX, 1, self._byte)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._file is not None:
                fcntl.lockf(self._file, fcntl.LOCK_UN, 1, self._byte)
        finally:
            self._thread_lock.release()


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held a thread lock at fork: it does not exist here.
    # (Record locks are not inherited: the child starts holding none.)
    global _lock_file_lock
    _lock_file_lock = threading.Lock()
    for lock in list(_locks):
        lock._thread_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        self._lock = _ProcessLock()
        _INT.pack_into(self._memory, 0, start)

    @classmethod
    def named(cls, name: str, start: int = 0) -> SharedCounter:
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


def get_counter(name: str) -> SharedCounter | None:
    """The counter registered under ``name``, or None."""
    return _registry.get(name)
