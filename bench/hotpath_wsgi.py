"""The WSGI adapter's hot path, in-process, without sockets: ``--threads 0`` or the thread pool.

Like ``hotpath.py`` (same counting transport, same request), but the connection serves the
raw WSGI app of ``apps/wsgi_app.py`` through :class:`peregrine.wsgi.WsgiHandler`, so what is
measured is the engine plus the adapter (environ, start_response, response).
``SCRIPT=bench/hotpath_wsgi.py PYTHONPATH=bench bash bench/hotpath.sh`` counts its instructions
per request.

``WSGI_THREADS=0`` (the default): the app runs on the loop thread, each request answered inside
``data_received``. ``WSGI_THREADS=N`` (N > 0): the thread pool of N threads; ``CONNECTIONS``
connections (default 1) each get one request per round, and the loop runs until every one is
answered, so callgrind counts both sides of the hand-off: the loop thread's (parse, submit,
the inbox, the write) and the application threads' (environ, the app, start_response), plus
the wake-ups between them (the kernel's share of a wake-up is not counted). With one
connection every request pays a whole round trip to a thread; with many, the answers of a
round share the loop's wake-ups as under load.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from hotpath import CountingTransport, count_metrics_if_asked, feed_requests, new_loop
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.wsgi import WsgiHandler

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
from wsgi_app import app  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"


class SignallingTransport(CountingTransport):
    """Counts writes, and resolves ``until`` once ``target`` writes have been made."""

    def __init__(self, tally: list[int], done: list[asyncio.Future[None] | None]) -> None:
        super().__init__()
        self.tally = tally
        self.done = done

    def write(self, data: bytes) -> None:
        self.writes += 1
        tally = self.tally
        tally[0] -= 1
        if tally[0] == 0:
            done = self.done[0]
            assert done is not None
            done.set_result(None)

    writelines = write


async def feed_rounds(state: ServerState, request: bytes, count: int, connections: int) -> None:
    """``count`` requests in rounds: one request to each of ``connections`` connections, then
    wait until all of them are answered (each in one write)."""
    loop = asyncio.get_running_loop()
    tally = [0]
    done: list[asyncio.Future[None] | None] = [None]
    transports = []
    feeds = []
    for _ in range(connections):
        connection = HttpConnection(state)
        transport = SignallingTransport(tally, done)
        connection.connection_made(transport)  # type: ignore[arg-type]
        transports.append(transport)
        feeds.append(connection.data_received)
    left = count
    while left > 0:
        batch = feeds[: min(left, connections)]
        tally[0] = len(batch)
        done[0] = loop.create_future()
        for feed in batch:
            feed(request)
        await done[0]
        left -= len(batch)
    assert sum(t.writes for t in transports) == count


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    threads = int(os.environ.get("WSGI_THREADS", "0"))
    loop = new_loop()
    config = Config(threads=threads, workers=1)
    handler = WsgiHandler(app, config)
    state = count_metrics_if_asked(ServerState(config, handler, loop))
    if threads == 0:
        feed_requests(state, REQUEST, count)
        return
    connections = int(os.environ.get("CONNECTIONS", "1"))
    loop.run_until_complete(feed_rounds(state, REQUEST, count, connections))
    handler.close()


if __name__ == "__main__":
    main()
