"""SharedCounter: one count across forked processes (peregrine.util.shared)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

from peregrine.util.shared import SharedCounter, get_counter

from ..helpers import ROOT


def test_counts_from_start() -> None:
    counter = SharedCounter(5)
    assert [counter.next() for _ in range(3)] == [5, 6, 7]
    assert counter.value == 8
    assert counter.add(-3) == 5
    counter.reset()
    assert counter.value == 0


def test_named_counters_are_kept() -> None:
    first = SharedCounter.named("tests.process.shared")
    assert SharedCounter.named("tests.process.shared") is first
    assert get_counter("tests.process.shared") is first
    assert get_counter("tests.process.none") is None


def test_forked_processes_never_get_the_same_value() -> None:
    counter = SharedCounter()
    processes, per_process = 4, 500
    read_fd, write_fd = os.pipe()
    pids = []
    for _ in range(processes):
        with warnings.catch_warnings():
            # 3.12+ warns when a process with threads forks: under xdist this one has
            # execnet's receiver thread (started with _thread, so not in threading.enumerate).
            # The child takes no lock that thread could hold: SharedCounter's thread lock is
            # made anew at fork (util/shared.py), and the child only counts, writes and exits.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(read_fd)
                values = [counter.next() for _ in range(per_process)]
                os.write(write_fd, (" ".join(map(str, values)) + "\n").encode())
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 1 << 16):
        data += chunk
    os.close(read_fd)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    values = [int(v) for v in data.split()]
    assert sorted(values) == list(range(processes * per_process))
    assert counter.value == processes * per_process


def test_threads_of_one_process_never_get_the_same_value() -> None:
    # the record lock belongs to the process: the threads of one process need the thread lock too
    import threading

    counter = SharedCounter()
    results: list[list[int]] = [[] for _ in range(4)]

    def count(into: list[int]) -> None:
        into.extend(counter.next() for _ in range(2000))

    threads = [threading.Thread(target=count, args=(into,)) for into in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = sorted(v for into in results for v in into)
    assert values == list(range(8000))


COUNTER_KILLED_MID_INCREMENT = '''
import os, signal, struct, threading
from peregrine.util import shared
from peregrine.util.shared import SharedCounter

counter = SharedCounter()
pid = os.fork()
if pid == 0:
    class DiesWhileWriting:
        """The OOM killer (or a SIGKILL) strikes a worker in the middle of next()."""
        size = struct.calcsize("q")
        def unpack_from(self, buffer, offset):
            return struct.unpack_from("q", buffer, offset)
        def pack_into(self, *args):
            os.kill(os.getpid(), signal.SIGKILL)
    shared._INT = DiesWhileWriting()
    counter.next()
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.WIFSIGNALED(status)
result = []
thread = threading.Thread(target=lambda: result.append(counter.next()), daemon=True)
thread.start()
thread.join(3)
print("next() returned" if result else "next() hangs", flush=True)
os._exit(0)
'''


def test_counter_survives_a_worker_killed_while_holding_its_lock() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", COUNTER_KILLED_MID_INCREMENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "next() returned" in proc.stdout, proc.stdout + proc.stderr
