"""The supervisor's shared memory: one block of counters per running worker process.

The supervisor maps it before forking, so every worker inherits the same pages. At each fork it
hands the new worker a free block (zeroed); the worker alone writes into it (see
:mod:`.recorder`), the supervisor only reads. When the worker exits, its counters are added to
``retired`` and the block is free again; gauges (open connections) die with the worker.
Aligned 8-byte writes and reads are whole on the platforms Peregrine runs on, so a reader never
sees half a number; at worst it sees one copy's counters a little older than another's.
"""

from __future__ import annotations

import mmap

from . import layout

_WORD = 8


class SharedMetrics:
    """``blocks`` blocks of :data:`layout.SIZE` signed 64-bit integers in one shared mapping."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self.memory = mmap.mmap(-1, max(1, blocks * layout.SIZE * _WORD))
        self.view = memoryview(self.memory).cast("q")
        self.free = list(range(blocks))
        #: counters of workers that have exited, summed
        self.retired = [0] * layout.COUNTERS_END

    def claim(self) -> int | None:
        """A zeroed block for a new worker; None when all are taken (it then counts nothing)."""
        if not self.free:
            return None
        block = self.free.pop(0)
        start = block * layout.SIZE
        self.view[start : start + layout.SIZE] = memoryview(bytes(layout.SIZE * _WORD)).cast("q")
        return block

    def release(self, block: int) -> None:
        """The worker of ``block`` has exited: keep its counters, free the block."""
        values = self.read(block)
        for i in range(layout.COUNTERS_END):
            self.retired[i] += values[i]
        self.free.append(block)

    def read(self, block: int) -> list[int]:
        """The current values of one block."""
        start = block * layout.SIZE
        return self.view[start : start + layout.SIZE].tolist()

    def totals(self) -> list[int]:
        """Every worker's counters summed (exited ones included), and the live workers' gauges."""
        total = self.retired + [0] * (layout.SIZE - layout.COUNTERS_END)
        taken = set(range(self.blocks)) - set(self.free)
        for block in taken:
            for i, value in enumerate(self.read(block)):
                total[i] += value
        return total

    def writer(self, block: int) -> memoryview:
        """The slice of integers a worker writes (in the worker, after the fork)."""
        start = block * layout.SIZE
        return self.view[start : start + layout.SIZE]
