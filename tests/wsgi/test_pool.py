"""The thread pool and the batched hand-back to the loop."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading

import pytest

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


_VARIABLE: contextvars.ContextVar[str] = contextvars.ContextVar("variable")


def test_each_job_runs_in_a_context_of_its_own() -> None:
    """One thread, so every job follows the last on it: a variable a job leaves set is not
    seen by the next; one set and reset leaves the next job an empty context as well."""
    seen: list[tuple[str, str, int]] = []

    def work(job: tuple[str, str]) -> None:
        name, action = job
        seen.append((name, _VARIABLE.get("unset"), len(contextvars.copy_context())))
        if action == "set":
            _VARIABLE.set(name)
        elif action == "set-and-reset":
            _VARIABLE.reset(_VARIABLE.set(name))
        elif action == "raise":
            _VARIABLE.set(name)
            raise RuntimeError("a job failed with a variable set")

    _VARIABLE.set("the submitter's")  # not the jobs': they never see it
    pool = ThreadPool(1, work)
    jobs = ["read", "set", "read", "set-and-reset", "read", "raise", "read", "read"]
    for i, action in enumerate(jobs):
        pool.submit((f"job{i}", action))
    assert pool.shutdown(5)
    assert seen == [(f"job{i}", "unset", 0) for i in range(len(jobs))]


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
@pytest.mark.parametrize("batch_policy", [True, False])
def test_pool_threads_run_under_sched_batch_unless_told_not_to(batch_policy: bool) -> None:
    policies: list[int] = []
    pool = ThreadPool(
        2, lambda job: policies.append(os.sched_getscheduler(0)), batch_policy=batch_policy
    )
    for job in range(4):
        pool.submit(job)
    assert pool.shutdown(5)
    assert policies == [os.SCHED_BATCH if batch_policy else os.SCHED_OTHER] * 4
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the submitting thread's is its own


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
        for _ in range(5):
            pool.submit("quick")
        # all five answered while the first job still blocks its thread
        for _ in range(5):
            assert quick_done.acquire(timeout=10)
        assert not release.is_set()
    finally:
        release.set()
        assert pool.shutdown(5)


def test_jobs_submitted_on_the_loop_are_queued_once_its_due_callbacks_have_run() -> None:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    ran: list[int] = []
    started_early: list[bool] = []

    def work(job: int) -> None:
        ran.append(job)
        started.set()

    pool = ThreadPool(3, work)

    def callback() -> None:
        for job in range(3):
            pool.submit_soon(job, loop)
        # the GIL is free while this waits: a job put already would start on its thread now
        started_early.append(started.wait(0.2))

    try:
        loop.call_soon(callback)
        loop.run_until_complete(asyncio.sleep(0))  # the callback, then the batch is put
        assert started_early == [False]
        assert started.wait(10)
    finally:
        assert pool.shutdown(5)
        loop.close()
    assert sorted(ran) == [0, 1, 2]


def test_jobs_of_one_batch_that_block_each_get_a_thread() -> None:
    # the three jobs finish only if three threads run them at once: one batch put together
    # must still wake a thread per job while the others block
    loop = asyncio.new_event_loop()
    meeting = threading.Barrier(3, timeout=10)
    passed: list[int] = []

    def work(job: int) -> None:
        meeting.wait()
        passed.append(job)

    pool = ThreadPool(3, work)
    try:
        for job in range(3):
            pool.submit_soon(job, loop)
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        assert pool.shutdown(15)
        loop.close()
    assert sorted(passed) == [0, 1, 2]


def test_shutdown_runs_jobs_the_loop_has_not_put_yet() -> None:
    loop = asyncio.new_event_loop()
    ran: list[str] = []
    pool = ThreadPool(1, ran.append)
    try:
        pool.submit_soon("waiting for the loop", loop)  # the loop never runs here
        assert pool.shutdown(5)
    finally:
        loop.close()
    assert ran == ["waiting for the loop"]
