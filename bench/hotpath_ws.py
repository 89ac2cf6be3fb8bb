"""The per-message hot path of a WebSocket echo, driven in-process like ``hotpath.py``.

Feeds N masked client frames to a ``WebSocketConnection`` (no compression, as the benchmark's
``/ws``) whose handler echoes every message, BATCH frames per ``data_received`` call (the
benchmark's client keeps 4 messages in flight per connection, so a read often holds several),
and counts the writes of a transport that never has to wait. What is measured is Peregrine's own
Python work per message: parsing and unmasking the frame, validating text, calling the hook,
building and "writing" the reply.

    SCRIPT=bench/hotpath_ws.py PYTHONPATH=bench bash bench/hotpath.sh            # 32 B text
    KIND=binary SIZE=16384 SCRIPT=bench/hotpath_ws.py PYTHONPATH=bench bash bench/hotpath.sh

``hotpath.sh`` prints "instructions per request": here a request is one message echoed.
Environment: ``N`` messages (default 100000), ``SIZE`` payload bytes (32), ``KIND`` text or
binary (text), ``BATCH`` frames per read (4).
"""

from __future__ import annotations

import os
import time
from typing import Any

from hotpath import CountingTransport, new_loop
from peregrine.aio.state import ServerState
from peregrine.aio.websocket import WebSocketConnection
from peregrine.config import Config
from peregrine.ws.frames import serialize_frame

MASK = b"\x37\xfa\x21\x3d"


class Echo:
    """The benchmark's echo handler (bench/apps/peregrine_app.py)."""

    def handle_ws_message(self, ws: Any, message: str | bytes) -> None:
        ws.send(message)


class ByteCountingTransport(CountingTransport):
    """Counts writes and the bytes written (the echoes must all come back)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def writelines(self, data: Any) -> None:
        self.writes += 1
        self.bytes += sum(len(piece) for piece in data)


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    size = int(os.environ.get("SIZE", "32"))
    binary = os.environ.get("KIND", "text") == "binary"
    batch = int(os.environ.get("BATCH", "4"))
    loop = new_loop()
    # No keepalive pings: their timer would only add noise to the count.
    state = ServerState(Config(ws_ping_interval=0), Echo(), loop)
    connection = WebSocketConnection(state, None)  # type: ignore[arg-type]
    transport = ByteCountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    payload = (b"\x00\xff" if binary else b"ab") * (size // 2) + b"x" * (size % 2)
    frame = serialize_frame(0x2 if binary else 0x1, payload, mask=MASK)
    reply = len(serialize_frame(0x2, payload))
    reads, rest = divmod(count, batch)
    chunk = frame * batch
    feed = connection.data_received
    start = time.process_time()
    for _ in range(reads):
        feed(chunk)
    if rest:
        feed(frame * rest)
    elapsed = time.process_time() - start
    assert transport.bytes == count * reply, (transport.bytes, count * reply)
    print(
        f"{count} messages of {size} B in {transport.writes} writes, "
        f"{elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath.sh)"
    )


if __name__ == "__main__":
    main()
