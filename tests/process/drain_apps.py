"""Handlers for the drain and health tests (run as ``tests.process.drain_apps:NAME``)."""

from __future__ import annotations

import os
import time
from typing import Any

import peregrine
from peregrine import lifecycle


class Lifecycle:
    """Answers ``pid=N draining=BOOL``: which worker answered, and what it says of its drain."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_body(f"pid={os.getpid()} draining={lifecycle.draining()} method={req.method}")


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering ``asgi draining=BOOL``; its lifespan shutdown writes the time to
    the file named by ``PEREGRINE_TEST_SHUTDOWN_MARK`` (to check it ran after the drain)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                mark = os.environ.get("PEREGRINE_TEST_SHUTDOWN_MARK")
                if mark:
                    with open(mark, "w") as f:
                        f.write(repr(time.time()))
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = f"asgi draining={lifecycle.draining()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
