"""``Request``: path decoding and query parsing, computed on first access and cached."""

from __future__ import annotations

import pytest

from peregrine.http.headers import Headers
from peregrine.http.parser import RequestParser
from peregrine.http.request import QueryParams, Request, decode_path


def request(target: bytes) -> Request:
    parser = RequestParser()
    parser.feed(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    (req,) = parser.requests
    return req


class TestPath:
    @pytest.mark.parametrize(
        "raw, decoded",
        [
            (b"/", "/"),
            (b"/plain/path", "/plain/path"),
            (b"/a%20b", "/a b"),
            (b"/a+b", "/a+b"),  # '+' is a space only in queries
            (b"/caf%C3%A9", "/café"),
            (b"/caf%c3%a9", "/café"),
            (b"/a%2Fb", "/a/b"),
            (b"/%25", "/%"),
            (b"/bad%zz", "/bad%zz"),  # not an escape: kept
            (b"/trunc%4", "/trunc%4"),
            (b"/%FF", "/\ufffd"),  # not UTF-8: replacement character
            (b"/%00", "/\x00"),
        ],
    )
    def test_decode_path(self, raw: bytes, decoded: str) -> None:
        assert decode_path(raw) == decoded
        req = request(raw)
        assert req.path == decoded
        assert req.raw_path == raw

    def test_path_excludes_query(self) -> None:
        req = request(b"/p%20q?a=%20")
        assert req.path == "/p q"
        assert req.raw_path == b"/p%20q"
        assert req.query_string == "a=%20"
        assert req.url == "/p%20q?a=%20"

    def test_path_is_cached(self) -> None:
        req = request(b"/a%20b")
        assert req.path is req.path

    def test_empty_query_mark(self) -> None:
        req = request(b"/p?")
        assert req.path == "/p" and req.query_string == "" and len(req.query) == 0
        assert req.url == "/p"


class TestQuery:
    def test_get_and_getall(self) -> None:
        q = request(b"/?a=1&b=2&a=3").query
        assert q.get("a") == "1"
        assert q.getall("a") == ["1", "3"]
        assert q.getall("b") == ["2"]
        assert q.get("missing") is None and q.get("missing", "d") == "d"
        assert q.getall("missing") == []

    def test_repeated_keys_keep_order(self) -> None:
        q = request(b"/?k=3&x=0&k=1&k=2").query
        assert q.getall("k") == ["3", "1", "2"]
        assert q.items() == [("k", "3"), ("x", "0"), ("k", "1"), ("k", "2")]
        assert list(q) == ["k", "x"]
        assert len(q) == 4

    def test_decoding(self) -> None:
        q = request(b"/?name=caf%C3%A9&sp=a+b&pct=a%2Bb&amp=%26").query
        assert q["name"] == "café"
        assert q["sp"] == "a b"
        assert q["pct"] == "a+b"
        assert q["amp"] == "&"

    def test_blank_and_bare_keys(self) -> None:
        q = request(b"/?empty=&flag").query
        assert q.get("empty") == ""
        assert q.get("flag") == ""
        assert "flag" in q and "nope" not in q

    def test_getitem_missing(self) -> None:
        with pytest.raises(KeyError):
            request(b"/?a=1").query["b"]

    def test_parsed_once_and_cached(self) -> None:
        req = request(b"/?a=1")
        assert req.query is req.query

    def test_never_stale_across_requests(self) -> None:
        parser = RequestParser()
        parser.feed(b"GET /?a=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /?a=2 HTTP/1.1\r\nHost: h\r\n\r\n")
        first, second = parser.requests
        assert first.query.get("a") == "1"
        assert second.query.get("a") == "2"
        assert first.query.get("a") == "1"

    def test_query_params_directly(self) -> None:
        q = QueryParams("x=1&x=2")
        assert q.getall("x") == ["1", "2"]
        assert "QueryParams" in repr(q)


class TestRequestObject:
    def test_fields(self) -> None:
        req = Request(
            "POST", b"/p", b"q=1", "1.0", Headers([(b"A", b"b")]), b"body", ("1.2.3.4", 5), False
        )
        assert (req.method, req.version, req.body, req.client, req.keep_alive, req.scheme) == (
            "POST",
            "1.0",
            b"body",
            ("1.2.3.4", 5),
            False,
            "http",
        )
        assert req.headers.get("a") == "b"
        assert repr(req) == "<Request POST /p?q=1 HTTP/1.0>"

    def test_defaults(self) -> None:
        req = Request("GET", b"/", b"", "1.1", Headers())
        assert req.body == b"" and req.client is None and req.keep_alive is True
