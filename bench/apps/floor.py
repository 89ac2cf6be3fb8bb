"""The floor: a bare uvloop asyncio.Protocol that answers a fixed response without parsing.

It shows what the machine and the event loop allow: no HTTP parsing, no routing,
no Date header, one transport.write() per received chunk. A real server cannot
beat it on the same loop; the target is to come close (>= 0.85x).

It answers every data_received() call with one response, so it is only correct
for clients that send one request per packet and wait for the answer (wrk does).

Usage: python floor.py PORT BODY_SIZE     (BODY_SIZE 6150 or 6; the body bytes come from common.py)
"""

import asyncio
import sys

import uvloop
from common import SEED_BODY, SMALL_BODY


def main() -> None:
    port = int(sys.argv[1])
    size = int(sys.argv[2]) if len(sys.argv) > 2 else len(SEED_BODY)
    body = {len(SEED_BODY): SEED_BODY, len(SMALL_BODY): SMALL_BODY}[size]
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body

    class Floor(asyncio.Protocol):
        __slots__ = ("transport",)

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(response)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Floor, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
