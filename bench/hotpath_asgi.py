"""The hot path of an ASGI request, driven in-process like ``hotpath.py`` (callgrind-friendly).

Feeds N keep-alive GET requests to an HttpConnection serving a raw ASGI app (the seed body) and
lets the event loop run the application's task after each one, so the count includes what
serving ASGI costs on top of the native API: the scope, the task, the messages.

    SCRIPT=bench/hotpath_asgi.py bash bench/hotpath.sh
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from hotpath import BODY, REQUEST, CountingTransport, new_loop
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.asgi import AsgiHandler
from peregrine.config import Config

START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}
BODY_MESSAGE = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(START)
    await send(BODY_MESSAGE)


async def drive(feed: Any, count: int) -> None:
    # One request per loop iteration, as from a socket: the app's task runs in the next one.
    for _ in range(count):
        feed(REQUEST)
        await asyncio.sleep(0)


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    loop = new_loop()
    config = Config(lifespan="off")
    connection = HttpConnection(ServerState(config, AsgiHandler(app, config), loop))
    transport = CountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    start = time.process_time()
    loop.run_until_complete(drive(connection.data_received, count))
    elapsed = time.process_time() - start
    assert transport.writes == count, transport.writes
    print(f"{count} requests, {elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath.sh)")


if __name__ == "__main__":
    main()
