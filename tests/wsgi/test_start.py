"""``start_response``: status parsing, header checks, the second call and ``exc_info``."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from peregrine.http.request import Request
from peregrine.wsgi.start import StartResponse, body_bytes, parse_status

REQUEST = Request("GET", b"/", b"", "1.1", [(b"Host", b"h")])


def fresh() -> StartResponse:
    return StartResponse(REQUEST)


@pytest.mark.parametrize(
    ("status", "code"),
    [("200 OK", 200), ("404 Not Found", 404), ("299 Custom reason", 299), ("204", 204)],
)
def test_valid_status(status: str, code: int) -> None:
    assert parse_status(status) == code


@pytest.mark.parametrize(
    "status",
    ["200OK", "20 OK", "2000 OK", "abc OK", "200 OK\r\nX: y", "", "٢٠٠ OK", b"200 OK", 200],
)
def test_invalid_status(status: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_status(status)


def test_headers_are_set_and_framing_fields_taken_out() -> None:
    start = fresh()
    write = start(
        "201 Created",
        [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
        ],
    )
    assert write == start.write
    assert start.response is not None
    assert start.response.status == 201
    assert start.response.headers == [
        (b"Content-Type", b"text/plain"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert start.length == 5


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Bad", "a\r\nInjected: 1")],
        [("X-Bad", "a\nb")],
        [("X-Nul", "a\x00b")],
        [("Bad Name", "x")],
        [(b"X-Bytes", b"x")],
        [("X-Int", 5)],
        [("X-Three", "a", "b")],
        (("X-Tuple-Of-Headers", "a"),),
        [("Content-Length", "-1")],
        [("Content-Length", "1"), ("Content-Length", "2")],
        [("X-Text", "€ not latin-1")],
    ],
)
def test_invalid_headers_raise_inside_the_application(headers: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        fresh()("200 OK", headers)


def test_second_call_without_exc_info_is_an_error() -> None:
    start = fresh()
    start("200 OK", [])
    with pytest.raises(RuntimeError):
        start("500 Oops", [])


def test_exc_info_before_the_head_replaces_status_and_headers() -> None:
    start = fresh()
    start("200 OK", [("X-First", "1")])
    try:
        raise KeyError("boom")
    except KeyError:
        start("500 Internal Server Error", [("X-Second", "2")], sys.exc_info())
    assert start.response is not None and start.response.status == 500
    assert start.response.headers == [(b"X-Second", b"2")]


def test_exc_info_after_the_head_reraises_the_application_error() -> None:
    start = fresh()
    start("200 OK", [])
    start.head_sent = True
    try:
        raise KeyError("boom")
    except KeyError:
        info = sys.exc_info()
    with pytest.raises(KeyError, match="boom"):
        start("500 Internal Server Error", [], info)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [(b"abc", b"abc"), (bytearray(b"abc"), b"abc"), (memoryview(b"abc"), b"abc")],
)
def test_body_chunks_are_bytes(chunk: Any, expected: bytes) -> None:
    assert body_bytes(chunk) == expected and type(body_bytes(chunk)) is bytes


@pytest.mark.parametrize("chunk", ["text", 5, None])
def test_body_chunks_that_are_not_bytes_are_refused(chunk: Any) -> None:
    with pytest.raises(TypeError):
        body_bytes(chunk)
