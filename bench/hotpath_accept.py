"""What one new connection costs, accepted for real: N connections, each carrying one request.

bench/hotpath.py feeds requests to a connection that already exists; bench/insitu.py ``--close``
measures a whole server under wrk, where the loop's timers and the rate move the count. Here, on
uvloop in one process, N clients connect over loopback in batches of BATCH (default 10), each
sends the seed request with ``Connection: close``, reads the response and closes; the server side
is the worker's own: the ``Acceptor`` (process/acceptor.py) handing each socket to an
``HttpConnection`` (aio/connection.py), as the worker builds them. Counted under callgrind by
bench/hotpath.sh (two runs of different N, the difference per connection), so the figure is per
connection: accepting, setting up, one request and response, the close, and the clients' own
socket calls (the same in any build of the server, so a change's effect is exact):

    SCRIPT=bench/hotpath_accept.py PYTHONPATH=bench SHORT=200 LONG=1000 bash bench/hotpath.sh
"""

from __future__ import annotations

import asyncio
import os
import socket

from hotpath import Handler, new_loop
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.process.acceptor import Acceptor

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nConnection: close\r\n\r\n"


async def one_client(loop: asyncio.AbstractEventLoop, address: tuple[str, int]) -> int:
    """Connect, send the request, read until the server closes; the bytes received."""
    client = socket.socket()
    client.setblocking(False)
    try:
        await loop.sock_connect(client, address)
        await loop.sock_sendall(client, REQUEST)
        received = 0
        while True:
            data = await loop.sock_recv(client, 65536)
            if not data:
                return received
            received += len(data)
    finally:
        client.close()


async def run(count: int, batch: int) -> None:
    loop = asyncio.get_running_loop()
    state = ServerState(Config(), Handler(), loop)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    address = listener.getsockname()
    acceptor = Acceptor(
        loop,
        listener,
        lambda peer: HttpConnection(state, peer),
        None,
        5.0,
        lambda: len(state.connections),
    )
    acceptor.start(1024)
    try:
        for start in range(0, count, batch):
            sizes = await asyncio.gather(
                *(one_client(loop, address) for _ in range(min(batch, count - start)))
            )
            assert all(size > 6150 for size in sizes), sizes
        while state.connections:  # the last ones' connection_lost
            await asyncio.sleep(0)
    finally:
        acceptor.stop()
    assert state.requests == count, state.requests


def main() -> None:
    loop = new_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(
        run(int(os.environ.get("N", "1000")), int(os.environ.get("BATCH", "10")))
    )
    loop.close()


if __name__ == "__main__":
    main()
