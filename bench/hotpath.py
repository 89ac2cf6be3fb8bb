"""Drive one Peregrine connection in-process, without sockets, to count the hot path's cost.

Feeds N keep-alive GET requests (the seed benchmark's: 6150-byte body) to an HttpConnection whose
transport only counts writes, so what is measured is Peregrine's own Python work per request:
parsing, the handler, building and "writing" the response, timers. Run it under callgrind for
instruction counts that do not depend on how busy the machine is (``bench/hotpath.sh``), or
plainly for a rough time per request.
"""

from __future__ import annotations

import asyncio
import os
import time

from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config

BODY = b"x" * 6150
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"
# REQUEST=browser (bench/hotpath.sh): what a browser sends, a dozen header fields
BROWSER = (
    b"GET /plaintext HTTP/1.1\r\n"
    b"Host: 127.0.0.1:3000\r\n"
    b"Connection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"\r\n'
    b"sec-ch-ua-mobile: ?0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    b"*/*;q=0.8\r\n"
    b"Sec-Fetch-Site: none\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-GB,en;q=0.9\r\n"
    b"\r\n"
)
if os.environ.get("REQUEST") == "browser":
    REQUEST = BROWSER


class Handler:
    def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(BODY)


class CountingTransport:
    """Just enough of a transport for a connection that never has to wait."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    writelines = write

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where installed (what the server runs), else asyncio's."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def count_metrics_if_asked(state: ServerState) -> ServerState:
    """With HOTPATH_METRICS=1, count ``state``'s responses as a worker does with --metrics-port
    (a recorder on a block of shared memory; its quarter-second copy into that block is left
    out, as it is not per request)."""
    if os.environ.get("HOTPATH_METRICS") == "1":
        from peregrine.metrics.recorder import MetricsRecorder
        from peregrine.metrics.shared import SharedMetrics

        state.metrics = MetricsRecorder(SharedMetrics(1).writer(0))
        state.timed = True
    return state


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    loop = new_loop()
    # HOTPATH_HEALTH=1: a health path is configured (the requests are not for it);
    # HOTPATH_METRICS=1: metrics are on (see count_metrics_if_asked; also in the other scripts)
    health_path = "/healthz" if os.environ.get("HOTPATH_HEALTH") == "1" else None
    state = count_metrics_if_asked(ServerState(Config(health_path=health_path), Handler(), loop))
    feed_requests(state, REQUEST, count)


def feed_requests(state: ServerState, request: bytes, count: int) -> None:
    """Feed ``request`` ``count`` times to one connection, each answered inline in one write."""
    connection = HttpConnection(state)
    transport = CountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    feed = connection.data_received
    start = time.process_time()
    for _ in range(count):
        feed(request)
    elapsed = time.process_time() - start
    assert transport.writes == count, transport.writes
    print(f"{count} requests, {elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath.sh)")


if __name__ == "__main__":
    main()
