"""Many pipelined requests in one read are all parsed, in buffered and streaming mode.

A 64 KiB read of small requests holds about a thousand of them; whatever path a request takes
through the parser (a re-parse, a chunked body framed by the parser itself), the work for one
read must not nest per request.
"""

from __future__ import annotations

import pytest

from peregrine.http.parser import RequestParser

from .test_parser import H

COUNT = 2000

# (id, one request, its body)
REQUESTS = [
    ("get", b"GET / HTTP/1.1\r\n" + H + b"\r\n", b""),
    ("content-length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc", b"abc"),
    (
        "chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"abc",
    ),
    (
        "chunked-with-trailing-tab",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"abc",
    ),
    (
        "chunk-extension-with-whitespace",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n3 ; a = 1\r\nabc\r\n0\r\n\r\n",
        b"abc",
    ),
]


@pytest.mark.parametrize(
    "request_bytes, body", [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS]
)
@pytest.mark.parametrize("stream_bodies", [False, True], ids=["buffered", "streaming"])
def test_every_request_of_one_read_is_parsed(
    request_bytes: bytes, body: bytes, stream_bodies: bool
) -> None:
    parser = RequestParser(stream_bodies=stream_bodies)
    parser.feed(request_bytes * COUNT)
    if stream_bodies:
        assert parser.events.count(None) == COUNT
        assert b"".join(e for e in parser.events if isinstance(e, bytes)) == body * COUNT
    else:
        assert [r.body for r in parser.requests] == [body] * COUNT
