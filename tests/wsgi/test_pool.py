"""The thread pool and the batched hand-back to the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from peregrine.wsgi.pool import LoopInbox, ThreadPool


def test_pool_runs_jobs_on_its_threads_and_stops() -> None:
    done: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work(job: int) -> None:
        with lock:
            done.append((job, threading.current_thread().name))

    pool = ThreadPool(3, work, name="test-pool")
    for job in range(50):
        pool.submit(job)
    assert pool.shutdown(5)
    assert sorted(job for job, _ in done) == list(range(50))
    assert {name for _, name in done} <= {"test-pool-0", "test-pool-1", "test-pool-2"}


def test_pool_survives_a_failing_job() -> None:
    done: list[int] = []

    def work(job: int) -> None:
        if job == 0:
            raise RuntimeError("job failed")
        done.append(job)

    pool = ThreadPool(1, work)
    pool.submit(0)
    pool.submit(1)
    assert pool.shutdown(5)
    assert done == [1]


def test_shutdown_is_bounded_by_its_timeout() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def stuck(job: object) -> None:
        started.set()
        release.wait(30)  # bounded only so that a broken shutdown cannot hang the suite
        finished.set()

    pool = ThreadPool(1, stuck)
    pool.submit("stuck")
    assert started.wait(10)
    # shutdown returns, saying a thread is still busy, while the job is still running: it did
    # not wait for the job (which ends only when released below)
    assert pool.shutdown(0.3) is False
    assert not finished.is_set()
    release.set()
    assert finished.wait(10)


def test_inbox_batches_calls_into_one_loop_wake_up() -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)
    ran: list[int] = []
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(*args: object) -> object:
        nonlocal wakeups
        wakeups += 1
        return original(*args)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    try:

        def post_many() -> None:
            for i in range(100):
                inbox.post(ran.append, i)

        thread = threading.Thread(target=post_many)
        thread.start()
        thread.join()
        loop.run_until_complete(asyncio.sleep(0.01))
        assert ran == list(range(100))  # all of them, in order
        assert wakeups == 1  # posted while the loop was not running: one batch
        inbox.post(ran.append, 100)
        loop.run_until_complete(asyncio.sleep(0.01))
        assert ran[-1] == 100 and wakeups == 2
    finally:
        loop.close()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds (bounded: fails the test after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


def test_a_job_for_an_idle_pool_wakes_exactly_one_thread() -> None:
    done = threading.Semaphore(0)
    pool = ThreadPool(4, lambda job: done.release())
    try:
        pool.submit("first")  # starts the threads
        assert done.acquire(timeout=10)
        wait_until(lambda: pool.parked == 4)
        for i in range(20):
            before = pool.wakeups
            pool.submit(i)
            assert done.acquire(timeout=10)
            wait_until(lambda: pool.parked == 4)
            # one wake-up: the woken thread found the deque empty after its job and did not
            # wake another (a SimpleQueue's waiting get hands its lock on to the next waiter)
            assert pool.wakeups - before == 1
    finally:
        assert pool.shutdown(5)


def test_jobs_queued_behind_a_blocking_job_run_on_other_threads() -> None:
    blocking, release = threading.Event(), threading.Event()
    quick_done = threading.Semaphore(0)

    def work(job: str) -> None:
        if job == "block":
            blocking.set()
            release.wait(30)  # bounded only so that a broken pool cannot hang the suite
        else:
            quick_done.release()

    pool = ThreadPool(3, work)
    try:
        pool.submit("block")
        assert blocking.wait(10)
        wait_until(lambda: pool.parked == 2)
        for _ in range(5):
            pool.submit("quick")
        # all five answered while the first job still blocks its thread
        for _ in range(5):
            assert quick_done.acquire(timeout=10)
        assert not release.is_set()
    finally:
        release.set()
        assert pool.shutdown(5)


def test_a_job_taken_with_others_queued_wakes_a_spare_thread_first() -> None:
    # The first job blocks until the second has run: possible only if taking the first (with
    # the second queued and no thread free) woke another thread before work() began.
    second_ran = threading.Event()
    first_finished = threading.Event()

    def work(job: str) -> None:
        if job == "first":
            assert second_ran.wait(10)
            first_finished.set()
        else:
            second_ran.set()

    pool = ThreadPool(2, work)
    try:
        pool.submit("warm-up")
        wait_until(lambda: pool.parked == 2)
        pool._mutex.acquire()  # hold the threads back until both jobs are queued
        pool._jobs.append("first")
        pool._jobs.append("second")
        pool._wake()
        pool._mutex.release()
        assert first_finished.wait(10)
    finally:
        assert pool.shutdown(5)
