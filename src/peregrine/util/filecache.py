"""A bounded cache of open files for the static servers, in the spirit of nginx's ``open_file_cache``.

Each entry holds, for one file as a request named it, the open descriptor, its ``fstat`` and
whatever else was found out with it (which precompressed siblings are certainly missing, the
Content-Type, ...: the ``value``). An entry is trusted for at most ``valid`` seconds after it
was checked; after that the caller looks the file up afresh (with every safety check of a
first lookup) and :meth:`OpenFileCache.put` compares the new ``fstat`` with the cached one
(device, inode, size, modification time in ns): the same file keeps its entry, anything else
(an atomic replace, a rewrite, a deletion) replaces or drops it. So a file replaced on disk is
served stale for at most ``valid`` seconds, as with nginx.

The cache owns the descriptors it holds: they are closed when an entry is replaced, dropped or
evicted (least recently used first, beyond ``max_entries``), and by :meth:`OpenFileCache.close`.
Those using an entry's descriptor read it with ``pread`` (or ``os.sendfile`` with an offset) or
``dup`` it, never close it, and never move its file offset.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["CachedFile", "OpenFileCache", "same_file"]

V = TypeVar("V")


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two ``stat`` results describe the same, unchanged file."""
    return (
        a.st_ino == b.st_ino
        and a.st_dev == b.st_dev
        and a.st_size == b.st_size
        and a.st_mtime_ns == b.st_mtime_ns
    )


class CachedFile(Generic[V]):
    """One open file in the cache: ``fd`` (owned by the cache), its ``st`` and the caller's ``value``."""

    __slots__ = ("fd", "st", "value", "checked")

    def __init__(self, fd: int, st: os.stat_result, value: V, checked: float) -> None:
        self.fd = fd
        self.st = st
        self.value = value
        self.checked = checked  # clock reading when the file was last looked up on disk


class OpenFileCache(Generic[V]):
    """Open files by key, trusted ``valid`` seconds after each check, at most ``max_entries``.

    :param valid: seconds an entry is used without looking at the disk; must be > 0.
    :param max_entries: entries kept; the least recently used one is closed beyond it.
    :param clock: a monotonic clock in seconds (replaceable in tests).
    """

    def __init__(
        self,
        valid: float,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if valid <= 0:
            raise ValueError(f"valid must be positive: {valid!r}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1: {max_entries!r}")
        self.valid = valid
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, CachedFile[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> CachedFile[V] | None:
        """The entry for ``key`` if it was checked less than ``valid`` seconds ago, else None.

        An expired entry stays (with its descriptor) until :meth:`put` or :meth:`discard`
        decides about it, so an unchanged file keeps its descriptor across checks.
        """
        entry = self._entries.get(key)
        if entry is None or self.clock() - entry.checked >= self.valid:
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, fd: int, st: os.stat_result, value: V) -> CachedFile[V]:
        """Cache the freshly opened ``fd`` (the cache now owns it) under ``key``; return the entry.

        If the cached entry describes the same unchanged file, it is kept (``fd`` is closed)
        and only its check time and ``value`` are renewed.
        """
        now = self.clock()
        entries = self._entries
        old = entries.get(key)
        if old is not None:
            if same_file(old.st, st):
                os.close(fd)
                old.checked = now
                old.value = value
                entries.move_to_end(key)
                return old
            del entries[key]
            os.close(old.fd)
        entry = CachedFile(fd, st, value, now)
        entries[key] = entry
        while len(entries) > self.max_entries:
            _, evicted = entries.popitem(last=False)
            os.close(evicted.fd)
        return entry

    def discard(self, key: Hashable, entry: CachedFile[V] | None = None) -> None:
        """Drop (and close) the entry for ``key``, if any (only if it is ``entry``, when given)."""
        current = self._entries.get(key)
        if current is None or (entry is not None and current is not entry):
            return
        del self._entries[key]
        os.close(current.fd)

    def close(self) -> None:
        """Close every descriptor and empty the cache (it can be used again afterwards)."""
        entries = self._entries
        while entries:
            _, entry = entries.popitem()
            os.close(entry.fd)
