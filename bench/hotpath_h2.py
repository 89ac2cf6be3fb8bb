"""Drive one HTTP/2 connection in-process, without sockets, to count its cost per request.

The HTTP/2 twin of ``hotpath.py``: the same handler (6150-byte body), requests sent the way
``h2load -m 10`` sends them (ten HEADERS frames per read, HPACK-indexed after the first), into
an ``Http2Connection`` whose transport only counts writes. What is measured is Peregrine's own
Python work per request: framing, HPACK, the stream state machine, the handler, the response
frames. ``SCRIPT=bench/hotpath_h2.py bench/hotpath.sh`` counts instructions with callgrind;
run plainly for a rough time per request. ``APP=asgi`` serves ``hotpath_asgi.py``'s raw ASGI app
instead of the native handler (the event loop then runs between reads, as from a socket).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import hpack  # the client's encoder: a test dependency (h2), as a real client would use

from peregrine.aio.h2connection import Http2Connection
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.http2 import frames as f

try:
    from hotpath import BODY, CountingTransport, Handler, count_metrics_if_asked, new_loop
except ImportError:  # run as bench/hotpath_h2.py from the repository root
    from bench.hotpath import BODY, CountingTransport, Handler, count_metrics_if_asked, new_loop

BATCH = 10  # concurrent streams per read, as h2load -m 10


def client_bytes(count: int) -> list[bytes]:
    """What an h2load-like client sends: the preface, then ``count`` GETs in batches."""
    encoder = hpack.Encoder()
    fields = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/plaintext"),
        (":authority", "127.0.0.1:3000"),
        ("user-agent", "h2load nghttp2/1.52.0"),
    ]
    reads = [f.PREFACE + f.settings_frame([(f.SETTINGS_INITIAL_WINDOW_SIZE, 2**30)])]
    reads[0] += f.window_update_frame(0, 2**30)
    first = encoder.encode(fields)
    repeated = encoder.encode(fields)  # all indexed now, as every later request of h2load's
    batch = b""
    for i in range(count):
        block = first if i == 0 else repeated
        flags = f.FLAG_END_HEADERS | f.FLAG_END_STREAM
        batch += f.frame_header(len(block), f.HEADERS, flags, 1 + 2 * i) + block
        if (i + 1) % BATCH == 0 or i + 1 == count:
            reads.append(batch)
            batch = b""
    return reads


async def drive(feed: Any, reads: list[bytes]) -> None:
    for data in reads:
        feed(data)
        await asyncio.sleep(0)  # the applications' tasks run, as between two reads of a socket


def main() -> None:
    count = int(os.environ.get("N", "20000"))
    reads = client_bytes(count)
    loop = new_loop()
    if os.environ.get("APP") == "asgi":
        from hotpath_asgi import raw as app
        from peregrine.asgi import AsgiHandler

        config = Config(lifespan="off")
        state = ServerState(config, AsgiHandler(app, config), loop)
    else:
        state = ServerState(Config(), Handler(), loop)
    connection = Http2Connection(count_metrics_if_asked(state))
    transport = CountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    start = time.process_time()
    loop.run_until_complete(drive(connection.data_received, reads))
    loop.run_until_complete(asyncio.sleep(0))
    elapsed = time.process_time() - start
    assert state.requests == count, state.requests
    assert len(BODY) == 6150
    print(f"{count} requests, {elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath.sh)")


if __name__ == "__main__":
    main()
