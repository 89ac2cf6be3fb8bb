"""The hot path of an ASGI request, driven in-process like ``hotpath.py`` (callgrind-friendly).

Feeds N keep-alive GET requests to an HttpConnection serving an ASGI app (the seed body) and
lets the event loop run the application's task after each one, until its response is written,
so the count includes what serving ASGI costs on top of the native API: the scope, the task,
the messages. ``APP`` picks the application:

- ``raw`` (default): two prebuilt ``send()`` messages, the least an ASGI app can do;
- ``starlette``: ``bench/apps/starlette_app.py``, the Starlette endpoint of the benchmark;
- ``fastapi``: ``bench/apps/fastapi_app.py``, the FastAPI endpoint of the benchmark.

    SCRIPT=bench/hotpath_asgi.py bash bench/hotpath.sh
    REQUEST=browser SCRIPT=bench/hotpath_asgi.py bash bench/hotpath.sh   # a dozen header fields
    APP=fastapi SCRIPT=bench/hotpath_asgi.py bash bench/hotpath.sh
    APP=fastapi .venv/bin/python bench/profile_asgi.py   # whose code the time goes to
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from hotpath import BODY, BROWSER, CountingTransport, count_metrics_if_asked, new_loop
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.asgi import AsgiHandler
from peregrine.config import Config

#: the benchmark's seed request for the framework apps' route (``/``); ``REQUEST=browser``:
#: what a browser sends, a dozen header fields (the raw app answers any path)
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"
if os.environ.get("REQUEST") == "browser":
    REQUEST = BROWSER

START = {
    "type": "http.response.start",
    "status": 200,
    # With its length, as bench/apps/asgi_app.py: else uvicorn would send it chunked.
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))],
}
BODY_MESSAGE = {"type": "http.response.body", "body": BODY}


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(START)
    await send(BODY_MESSAGE)


def load_app(name: str) -> Any:
    """The ASGI application ``APP`` names (the framework ones from bench/apps/)."""
    if name == "raw":
        return raw
    sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
    module = __import__(f"{name}_app")
    return module.app


class ResponseCountingTransport(CountingTransport):
    """Counts responses (writes that begin with a status line), however a server splits them."""

    def __init__(self) -> None:
        super().__init__()
        self.responses = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        if data[:5] == b"HTTP/":
            self.responses += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1
        if data[0][:5] == b"HTTP/":
            self.responses += 1


def drive(
    loop: asyncio.AbstractEventLoop, feed: Any, transport: ResponseCountingTransport, count: int
) -> asyncio.Future[None]:
    """Feed one request at a time, as from a socket, from a loop callback as uvloop calls
    ``data_received`` (no task is current); the loop runs until each response is out (a
    framework may await a few times). One callback per loop turn, whatever the server does in
    it, so the driver's own cost is the same for every way of running the application."""
    done = loop.create_future()
    fed = 0

    def step() -> None:
        nonlocal fed
        if transport.responses == fed:
            if fed == count:
                done.set_result(None)
                return
            fed += 1
            feed(REQUEST)
        loop.call_soon(step)

    loop.call_soon(step)
    return done


def serve(app: Any, count: int) -> float:
    """Serve ``count`` requests with ``app``; returns the CPU seconds it took."""
    loop = new_loop()
    config = Config(lifespan="off")
    state = count_metrics_if_asked(ServerState(config, AsgiHandler(app, config), loop))
    connection = HttpConnection(state)
    transport = ResponseCountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    start = time.process_time()
    loop.run_until_complete(drive(loop, connection.data_received, transport, count))
    elapsed = time.process_time() - start
    assert transport.responses == count, transport.responses
    loop.close()
    return elapsed


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    elapsed = serve(load_app(os.environ.get("APP", "raw")), count)
    print(f"{count} requests, {elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath.sh)")


if __name__ == "__main__":
    main()
