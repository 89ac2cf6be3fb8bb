"""A Response from an application interface's status and fields (ASGI bytes, WSGI str)."""

from __future__ import annotations

from typing import Any

import pytest

from peregrine.http.framing import framed_response


@pytest.mark.parametrize(
    ("fields", "headers", "length"),
    [
        ([], [], None),
        ([("Content-Length", "10")], [], 10),
        ([(b"content-length", b"0")], [], 0),
        ([("CONTENT-LENGTH", " 7 ")], [], 7),
        ([("content-LENGTH", "7"), ("Content-Length", "7")], [], 7),  # repeats that agree
        ([("Transfer-Encoding", "chunked")], [], None),
        ([(b"transfer-encoding", b"gzip, chunked")], [], None),
        ([("TrAnSfEr-EnCoDiNg", "chunked")], [], None),
        (
            [(b"x-a", b"1"), ("X-B", "2")],
            [(b"x-a", b"1"), (b"X-B", b"2")],
            None,
        ),
    ],
)
def test_fields_and_length(
    fields: list[tuple[Any, Any]], headers: list[tuple[bytes, bytes]], length: int | None
) -> None:
    response, declared = framed_response(None, 200, fields)
    assert response.headers == headers
    assert declared == length


@pytest.mark.parametrize(
    "fields",
    [
        [("Content-Length", "abc")],
        [("Content-Length", "1"), ("content-length", "2")],
        [("Content-Length", "+5")],
        [("Content-Length", "٣")],
        [("X", "a\r\nb")],
        [("Bad Name", "x")],
    ],
)
def test_invalid_fields(fields: list[tuple[Any, Any]]) -> None:
    with pytest.raises(ValueError):
        framed_response(None, 200, fields)


@pytest.mark.parametrize("status", [99, 600, 0, -1])
def test_invalid_status(status: int) -> None:
    with pytest.raises(ValueError):
        framed_response(None, status, [])


def test_field_type_is_enforced_when_given() -> None:
    with pytest.raises(TypeError):
        framed_response(None, 200, [(b"x", b"y")], str)
    with pytest.raises(TypeError):
        framed_response(None, 200, [("x", "y")], bytes)
    response, _ = framed_response(None, 200, [(b"x", b"y")], bytes)
    assert response.headers == [(b"x", b"y")]
