"""The cost of handing a job to a thread and its result back to the event loop, per design.

Keeps ``CONCURRENCY`` jobs in flight (like that many connections each waiting for its
response) until ``N`` jobs are done, and prints the CPU time per job (process time: all
threads, so it counts the GIL hand-overs and wake-ups, and is less disturbed than wall time
by other processes on a busy machine). Designs:

- ``executor``: ``loop.run_in_executor`` on a ``ThreadPoolExecutor`` (a concurrent Future and
  an asyncio Future per job, one ``call_soon_threadsafe`` per result);
- ``pool``: what ``peregrine.wsgi`` does: a ``SimpleQueue`` of jobs for fixed threads, results
  posted to a ``LoopInbox`` (one wake-up of the loop per batch).

Run: ``python bench/handoff.py`` (N, CONCURRENCY and THREADS from the environment).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Callable
from typing import Any

from peregrine.wsgi.pool import LoopInbox, ThreadPool

N = int(os.environ.get("N", "50000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "100"))
THREADS = int(os.environ.get("THREADS", "10"))


def job() -> bytes:
    return b"x" * 100  # the "application": trivial, so the hand-off is what is measured


async def with_executor() -> None:
    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor(THREADS)
    done = 0

    async def client() -> None:
        nonlocal done
        while done < N:
            await loop.run_in_executor(executor, job)
            done += 1

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    executor.shutdown()


async def with_pool() -> None:
    loop = asyncio.get_running_loop()
    inbox = LoopInbox(loop)
    finished = loop.create_future()
    done = 0
    started = 0

    def respond(_result: Any) -> None:  # on the loop: the connection sends, the next job starts
        nonlocal done
        done += 1
        if done >= N:
            if not finished.done():
                finished.set_result(None)
        else:
            submit()

    def work(_job: Any) -> None:  # in a pool thread
        inbox.post(respond, job())

    pool = ThreadPool(THREADS, work)

    def submit() -> None:
        nonlocal started
        if started < N:
            started += 1
            pool.submit(1)

    for _ in range(CONCURRENCY):
        submit()
    await finished
    pool.shutdown(5)


def measure(name: str, design: Callable[[], Any]) -> None:
    began = time.process_time()
    asyncio.run(design())
    per_job = (time.process_time() - began) / N * 1e6
    print(f"{name:10s} {per_job:6.1f} us CPU per job ({N} jobs, {CONCURRENCY} in flight)")


if __name__ == "__main__":
    for _ in range(2):
        measure("executor", with_executor)
        measure("pool", with_pool)
