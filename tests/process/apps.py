"""Handlers for the process-model tests (run as ``tests.process.apps:NAME``)."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import peregrine


class Pid:
    """Answers ``pid=N``; ``/slow?s=X`` first sleeps X seconds (async, so many run at once)."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        if req.path == "/slow":
            return self.slow(req, resp)
        if req.path == "/block":
            time.sleep(float(req.query.get("s", "1")))  # blocks this worker's whole event loop
        resp.set_body(f"pid={os.getpid()}")
        return None

    async def slow(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        await asyncio.sleep(float(req.query.get("s", "1")))
        resp.set_body(f"slept pid={os.getpid()}")


class Broken:
    """A handler whose construction fails: no worker can start."""

    def __init__(self) -> None:
        raise RuntimeError("this handler cannot be built")

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_body(b"unreachable")


class Closing:
    """Writes a marker file from ``close()`` so a test can see the hook ran in every worker."""

    def __init__(self) -> None:
        self.directory = os.environ["PEREGRINE_TEST_CLOSE_DIR"]

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_body(f"pid={os.getpid()}")

    def close(self) -> None:
        with open(os.path.join(self.directory, f"closed-{os.getpid()}"), "w") as f:
            f.write("closed")


class FailsWhenFlagged:
    """Cannot be built while the file named by ``PEREGRINE_TEST_CRASH_FLAG`` exists."""

    def __init__(self) -> None:
        if os.path.exists(os.environ["PEREGRINE_TEST_CRASH_FLAG"]):
            raise RuntimeError("crash flag is set")

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_body(f"pid={os.getpid()}")


class HeapWatch:
    """Answers ``walked`` while the cyclic collector still walks this handler (made at
    start-up) in its collections, ``frozen`` once the worker froze the start-up heap."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        walked = any(obj is self for obj in gc.get_objects())
        resp.set_body(b"walked" if walked else b"frozen")
