"""A Response from an application interface's status and fields (ASGI bytes, WSGI str)."""

from __future__ import annotations

from typing import Any

import pytest

from peregrine.http.framing import HeadCache, framed_response


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


def _head(response: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return response.status, response.headers, response._block


def test_head_cache_answers_an_equal_head_as_framed_response_does() -> None:
    cache = HeadCache(str, int)
    fields = [("Content-Type", "text/plain"), ("Content-Length", "5"), ("X-A", "1")]
    first, first_length = cache.framed(None, 200, fields)
    again, again_length = cache.framed(None, 200, list(fields))
    direct, direct_length = framed_response(None, 200, fields, str)
    assert len(cache) == 1
    assert _head(again) == _head(first) == _head(direct)
    assert again_length == first_length == direct_length == 5
    assert again is not first  # a Response of its own per request


def test_head_cache_keys_by_status_as_given() -> None:
    cache = HeadCache(str, lambda status: int(status[:3]))
    ok, _ = cache.framed(None, "200 OK", [("X-A", "1")])
    created, _ = cache.framed(None, "201 Created", [("X-A", "1")])
    assert (ok.status, created.status) == (200, 201)
    assert len(cache) == 2


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ([("X-A", "1")], True),
        ([("Connection", "close")], False),  # noted apart by the response: checked each time
        ([("Date", "Mon, 07 Dec 2026 12:00:00 GMT")], False),
        ([("Server", "app")], False),
        ([("X-Long", "v" * 1100)], False),  # lines longer than max_block
        ([["X-A", "1"]], False),  # a pair that is a list: not hashable
    ],
)
def test_head_cache_keeps_only_plain_short_hashable_heads(fields: list[Any], kept: bool) -> None:
    cache = HeadCache(str, int)
    response, _ = cache.framed(None, 200, fields)
    assert response.status == 200
    assert len(cache) == (1 if kept else 0)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ([("X", "a\r\nb")], ValueError),
        ([("Content-Length", "1"), ("Content-Length", "2")], ValueError),
        ([(b"X", b"1")], TypeError),  # bytes where this interface takes str
    ],
)
def test_head_cache_never_keeps_a_refused_head(fields: list[Any], error: type) -> None:
    cache = HeadCache(str, int)
    for _ in range(2):
        with pytest.raises(error):
            cache.framed(None, 200, fields)
    assert len(cache) == 0


def test_head_cache_starts_again_empty_when_full() -> None:
    cache = HeadCache(str, int, max_entries=3)
    for n in range(3):
        cache.framed(None, 200, [("X-N", str(n))])
    assert len(cache) == 3
    cache.framed(None, 200, [("X-N", "3")])
    assert len(cache) == 1


def test_head_cache_reads_an_iterator_of_fields_once() -> None:
    cache = HeadCache(bytes, int)
    response, length = cache.framed(None, 200, iter([(b"content-length", b"2"), (b"x-a", b"1")]))
    assert (response.headers, length) == ([(b"x-a", b"1")], 2)
    response, length = cache.framed(None, 200, iter([[b"x-b", b"2"]]))  # unhashable, long way
    assert (response.headers, length) == ([(b"x-b", b"2")], None)


def _replace_value(fields: list[Any]) -> None:
    fields[1] = (b"content-length", b"7")


def _append_field(fields: list[Any]) -> None:
    fields.append((b"x-b", b"2"))


def _pair_becomes_a_list(fields: list[Any]) -> None:
    fields[0] = [b"x-a", b"1"]


def _drop_field(fields: list[Any]) -> None:
    del fields[0]


@pytest.mark.parametrize(
    "change", [_replace_value, _append_field, _pair_becomes_a_list, _drop_field]
)
def test_head_cache_sees_a_list_of_fields_changed_in_place(change: Any) -> None:
    # An application may keep one list and change it between responses: the head last answered
    # is only reused for a list equal to the one it was made from.
    cache = HeadCache(bytes, int)
    fields: list[Any] = [(b"x-a", b"1"), (b"content-length", b"5")]
    for _ in range(2):
        cache.framed(None, 200, fields)
    change(fields)
    response, length = cache.framed(None, 200, fields)
    direct, direct_length = framed_response(None, 200, fields, bytes)
    assert (_head(response), length) == (_head(direct), direct_length)


def test_head_cache_sees_a_new_status_with_the_same_fields() -> None:
    cache = HeadCache(bytes, int)
    fields = [(b"x-a", b"1")]
    assert cache.framed(None, 200, fields)[0].status == 200
    assert cache.framed(None, 404, fields)[0].status == 404
    assert cache.framed(None, 200, fields)[0].status == 200


def test_head_cache_refuses_a_field_made_invalid_in_place() -> None:
    cache = HeadCache(bytes, int)
    fields: list[Any] = [(b"x-a", b"1")]
    cache.framed(None, 200, fields)
    fields[0] = (b"x-a", "1")  # str where ASGI takes bytes
    with pytest.raises(TypeError):
        cache.framed(None, 200, fields)


@pytest.mark.parametrize(
    "pair",
    [
        (b"x-a", bytearray(b"1")),  # equal to the bytes pair answered last, not bytes
        (b"x-a", memoryview(b"1")),
        (bytearray(b"x-a"), b"1"),
    ],
    ids=["bytearray-value", "memoryview-value", "bytearray-name"],
)
def test_head_cache_refuses_an_equal_pair_of_another_type_as_a_fresh_cache_does(
    pair: tuple[Any, Any],
) -> None:
    # the head answered last is reused only for fields of the interface's own type: whether a
    # pair is refused never depends on what was answered before
    with pytest.raises(TypeError):
        HeadCache(bytes, int).framed(None, 200, [pair])
    cache = HeadCache(bytes, int)
    cache.framed(None, 200, [(b"x-a", b"1")])
    with pytest.raises(TypeError):
        cache.framed(None, 200, [pair])


def test_head_cache_responses_share_no_fields() -> None:
    # A header added to one response (as middleware may) is not in the next one's head.
    cache = HeadCache(bytes, int)
    fields = [(b"x-a", b"1")]
    first, _ = cache.framed(None, 200, fields)
    first.add_header(b"x-b", b"2")
    again, _ = cache.framed(None, 200, fields)
    assert again.headers == [(b"x-a", b"1")]
    assert again._block == b"x-a: 1\r\n"
