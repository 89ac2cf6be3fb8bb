"""Regressions found by a review of the request parser (issue 2), each fixed since.

Driven with bytes alone. Each docstring: input, expected, and what used to be observed.
"""

from __future__ import annotations

import pytest

from peregrine.http.errors import ProtocolError
from peregrine.http.parser import RequestParser

H = b"Host: example.com\r\n"
CHUNKED = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"


def feed_all(parser: RequestParser, pieces: list[bytes]) -> None:
    for piece in pieces:
        parser.feed(piece)


@pytest.mark.parametrize("start", [b"0\r\nX-Trailer: ", b"0\r\nX-Trailer"], ids=["value", "name"])
def test_unfinished_trailer_field_is_bounded(start: bytes) -> None:
    """A chunked body's trailer section, one field dribbled in 64 KiB pieces (max_header_size 32 KiB).

    Expected: 431 once the field passes the limit. Observed: accepted without end (25 MB took 12 s
    of CPU and 50 MB of memory here: a slow-send DoS within the body timeout).
    """
    parser = RequestParser()
    with pytest.raises(ProtocolError) as info:
        feed_all(parser, [CHUNKED + start] + [b"a" * 65536] * 8)
    assert info.value.status == 431


@pytest.mark.parametrize(
    "pieces",
    [
        [b"GET /", b"\r\n"],
        [b"GET /\r", b"\n"],
        [b"GET / HTTP/1.1\r\n" + H + b"\r\nGET /\r\n"],
    ],
    ids=["split-in-target", "split-in-crlf", "after-a-request"],
)
def test_http09_line_is_refused_however_it_arrives(pieces: list[bytes]) -> None:
    """An HTTP/0.9-style line (no version) split across packets, or pipelined after a request.

    Expected (issue: "a request may arrive split anywhere"; "HTTP/0.9-style line -> 400", "never a
    hang"): ProtocolError 400 once the line is in. Observed: nothing; the 0.9 client waits for the
    header timeout and then gets 408.
    """
    parser = RequestParser()
    with pytest.raises(ProtocolError) as info:
        feed_all(parser, pieces)
    assert info.value.status == 400


def test_malformed_method_after_a_request_is_400() -> None:
    """``G@T`` (not a token) pipelined after a good request, in one feed.

    Expected: 400, as when it comes alone. Observed: 501 Not Implemented.
    """
    parser = RequestParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"GET / HTTP/1.1\r\n" + H + b"\r\nG@T / HTTP/1.1\r\n" + H + b"\r\n")
    assert info.value.status == 400


def test_connect_body_does_not_become_the_next_request() -> None:
    """``CONNECT /x`` (origin-form: invalid for CONNECT) with ``Content-Length`` and a body that is
    itself a request.

    Expected: ProtocolError 400, or the body read as the CONNECT's body. Observed: ``body == b""``
    and ``upgrade_data`` holds the smuggled request.
    """
    smuggled = b"GET /admin HTTP/1.1\r\n" + H + b"\r\n"
    parser = RequestParser()
    try:
        parser.feed(
            b"CONNECT /x HTTP/1.1\r\n"
            + H
            + b"Content-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled
        )
    except ProtocolError as exc:
        assert exc.status == 400
        return
    assert [r.body for r in parser.requests] == [smuggled]
    assert not parser.upgrade_data
