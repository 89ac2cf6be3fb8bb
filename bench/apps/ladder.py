"""Rungs between the floor and Peregrine: where the time per request goes.

Two stripped-down servers on the same uvloop, each adding one layer of work to the floor
(`floor.py`). They are measurements, not servers: no limits, no timeouts, no error handling,
one request per read (like the floor, they are only correct for clients such as wrk that send
one request and wait for its answer).

    llhttp  the floor plus llhttp parsing every request (httptools, one Python callback per
            request: on_message_complete) and a canned response with a Date header. What
            parsing in C costs on top of the loop.
    api     llhttp plus Peregrine's own public API per request: a `Request` and a `Response`
            object, the benchmark's real handler (`peregrine_app.Handler`), `serialize_head`,
            one write. The URL comes from llhttp's on_url (a second callback). This is the
            least Python work any server offering Peregrine's handler API must do per request,
            so it bounds what a compiled connection core (parsing, connection state, timers
            in C) could reach while handlers stay Python.

Peregrine itself then adds the connection logic in Python: limits and protocol checks,
pipelining order, read timeouts, backpressure, keep-alive rules.

Usage: python ladder.py PORT RUNG BODY_SIZE     (RUNG llhttp or api; BODY_SIZE as for floor.py)
"""

import asyncio
import sys
import time

import httptools
import uvloop
from common import SEED_BODY, SMALL_BODY

from peregrine.http.dates import date_line
from peregrine.http.request import Request
from peregrine.http.response import Response, serialize_head

#: the Date line, refreshed once a second by serve() as Peregrine does it
DATES = {"line": date_line(time.time())}
SERVER_LINE = b"Server: peregrine\r\n"


class LlhttpRung(asyncio.Protocol):
    """The floor plus llhttp: a canned answer with ``body`` for every request parsed."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def connection_made(self, transport):
        self.write = transport.write
        self.feed = httptools.HttpRequestParser(self).feed_data

    def data_received(self, data):
        self.feed(data)

    def on_message_complete(self):
        self.write(
            b"".join(
                (
                    b"HTTP/1.1 200 OK\r\n",
                    DATES["line"],
                    SERVER_LINE,
                    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(self.body),
                    self.body,
                )
            )
        )


class ApiRung(LlhttpRung):
    """llhttp plus Peregrine's API: ``handle(request, response)`` answers every request."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def connection_made(self, transport):
        super().connection_made(transport)
        self.url = b""

    def on_url(self, url):
        self.url = url

    def on_message_complete(self):
        path, _, query = self.url.partition(b"?")
        request = Request("GET", path, query, "1.1", [], b"", None, True, "http")
        response = Response(None, request)
        self.handle(request, response)
        data = response.body
        self.write(
            serialize_head(
                response,
                len(data),
                keep_alive=True,
                http10=False,
                date_line=DATES["line"],
                server_line=SERVER_LINE,
            )
            + data
        )


def main() -> None:
    port, rung = int(sys.argv[1]), sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 else len(SEED_BODY)
    body = {len(SEED_BODY): SEED_BODY, len(SMALL_BODY): SMALL_BODY}[size]
    if rung == "llhttp":

        def protocol():
            return LlhttpRung(body)
    else:
        from peregrine_app import Handler  # imports peregrine.util and more: only for this rung

        handle = Handler().handle_request

        def protocol():
            return ApiRung(handle)

    async def serve():
        loop = asyncio.get_running_loop()

        def tick():
            DATES["line"] = date_line(time.time())
            loop.call_later(1, tick)

        tick()
        server = await loop.create_server(protocol, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
