"""With ``stream_bodies`` the parser reports the same messages as in buffered mode.

Each stream is fed whole, split in two at every byte, and one byte at a time, to a buffered and a
streaming parser: the requests completed (head and body) and the refusal status must agree, and
every message the buffered parser completed must be closed by a ``None`` event.
"""

from __future__ import annotations

from typing import Any

import pytest

from peregrine.http.errors import ProtocolError
from peregrine.http.parser import RequestParser

from .test_parser import H, bytewise

POST_10 = b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"
POST_11 = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"

# (id, bytes)
STREAMS = [
    ("closing-request-then-head-with-trailing-tab", POST_10 + b"1\n\t\r\n\r\n"),
    ("request-then-refused-head-with-trailing-tab", POST_11 + b"G@T / HTTP/1.1\r\nX: a\t\r\n\r\n"),
    (
        "request-then-chunked-head-with-trailing-tab",
        POST_11
        + b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\t\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
    ),
    (
        "chunked-then-refused-head",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
        b"GET / HTTP/9.9\r\n\r\n",
    ),
]


def buffered(pieces: list[bytes]) -> tuple[list[tuple[Any, ...]], int | None]:
    parser = RequestParser()
    status = None
    try:
        for piece in pieces:
            parser.feed(piece)
    except ProtocolError as exc:
        status = exc.status
    return [(r.method, r.raw_path, r.raw_headers, r.body) for r in parser.requests], status


def streamed(pieces: list[bytes]) -> tuple[list[tuple[Any, ...]], int | None]:
    parser = RequestParser(stream_bodies=True)
    status = None
    try:
        for piece in pieces:
            parser.feed(piece)
    except ProtocolError as exc:
        status = exc.status
    messages = []
    head: Any = None
    body = b""
    for event in parser.events:
        if event is None:
            assert head is not None, "message end without a head"
            messages.append((head.method, head.raw_path, head.raw_headers, body))
            head = None
        elif isinstance(event, bytes):
            assert head is not None, "body piece without a head"
            body += event
        else:
            assert head is None, "a head before the previous message ended"
            head, body = event, b""
    return messages, status


def splits(data: bytes) -> list[list[bytes]]:
    return [[data]] + [[data[:i], data[i:]] for i in range(1, len(data))] + [bytewise(data)]


@pytest.mark.parametrize("data", [s[1] for s in STREAMS], ids=[s[0] for s in STREAMS])
def test_streaming_reports_what_buffering_completes(data: bytes) -> None:
    expected = buffered([data])
    for pieces in splits(data):
        assert buffered(pieces) == expected, pieces
        assert streamed(pieces) == expected, pieces
