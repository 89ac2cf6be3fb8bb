"""``Headers``: case-insensitive lookups over fields kept exactly as sent."""

from __future__ import annotations

import pytest

from peregrine.http.headers import Headers

RAW = [
    (b"Host", b"example.com"),
    (b"X-Dup", b"1"),
    (b"content-TYPE", b"text/plain"),
    (b"x-dup", b"2"),
    (b"X-Latin", b"caf\xe9"),
    (b"X-Empty", b""),
]


@pytest.fixture
def headers() -> Headers:
    return Headers(list(RAW))


def test_get_any_case(headers: Headers) -> None:
    for name in ("content-type", "Content-Type", "CONTENT-TYPE", "content-TYPE"):
        assert headers.get(name) == "text/plain"


def test_get_first_of_repeated(headers: Headers) -> None:
    assert headers.get("X-DUP") == "1"


def test_get_default(headers: Headers) -> None:
    assert headers.get("X-Missing") is None
    assert headers.get("X-Missing", "d") == "d"
    assert headers.get("X-Empty", "d") == ""


def test_getall(headers: Headers) -> None:
    assert headers.getall("x-dup") == ["1", "2"]
    assert headers.getall("missing") == []


def test_getall_returns_a_copy(headers: Headers) -> None:
    headers.getall("x-dup").append("3")
    assert headers.getall("x-dup") == ["1", "2"]


def test_getitem_and_contains(headers: Headers) -> None:
    assert headers["HOST"] == "example.com"
    with pytest.raises(KeyError):
        headers["missing"]
    assert "host" in headers and "X-EMPTY" in headers
    assert "missing" not in headers
    assert 42 not in headers


def test_iteration_is_raw_order_and_spelling(headers: Headers) -> None:
    assert list(headers) == [(n.decode("latin-1"), v.decode("latin-1")) for n, v in RAW]
    assert headers.keys() == ["Host", "X-Dup", "content-TYPE", "x-dup", "X-Latin", "X-Empty"]
    assert headers.items() == list(headers)
    assert len(headers) == len(RAW)


def test_lookups_do_not_transform_names(headers: Headers) -> None:
    headers.get("content-type")
    assert headers.keys()[2] == "content-TYPE"
    assert headers.raw == RAW


def test_latin1_values(headers: Headers) -> None:
    assert headers.get("x-latin") == "caf\xe9"


def test_any_byte_decodes() -> None:
    headers = Headers([(b"X-Bin", bytes(range(0x80, 0x100)))])
    assert headers.get("x-bin") == bytes(range(0x80, 0x100)).decode("latin-1")


def test_empty() -> None:
    headers = Headers()
    assert len(headers) == 0 and list(headers) == [] and headers.get("a") is None


def test_equality_and_repr(headers: Headers) -> None:
    assert headers == Headers(list(RAW))
    assert headers != Headers(RAW[:1])
    assert "example.com" in repr(headers)
