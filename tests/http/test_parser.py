"""The sans-IO request parser, driven with bytes alone (RFC 9112).

Every case is a row of a table: input bytes, and either the requests they must produce or the
status of the :class:`ProtocolError` they must raise. Each table is also replayed split at every
byte, since a request may arrive in any number of pieces.
"""

from __future__ import annotations

import pytest

from peregrine.http.errors import ProtocolError
from peregrine.http.parser import BODY, HEAD, IDLE, RequestParser
from peregrine.http.request import Request

H = b"Host: example.com\r\n"


def parse(data: bytes, **limits: int) -> list[Request]:
    """Feed ``data`` at once; return the completed requests."""
    parser = RequestParser(**limits)
    parser.feed(data)
    return parser.requests


def parse_in_pieces(pieces: list[bytes], **limits: int) -> list[Request]:
    parser = RequestParser(**limits)
    for piece in pieces:
        parser.feed(piece)
    return parser.requests


def error_of(pieces: list[bytes], **limits: int) -> ProtocolError | None:
    """The ProtocolError feeding ``pieces`` raises, or None when every piece is accepted."""
    parser = RequestParser(**limits)
    try:
        for piece in pieces:
            parser.feed(piece)
    except ProtocolError as exc:
        return exc
    return None


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def summary(requests: list[Request]) -> list[tuple[object, ...]]:
    return [
        (r.method, r.raw_path, r.query_bytes, r.version, r.headers.raw, r.body, r.keep_alive)
        for r in requests
    ]


# --- malformed input: (id, bytes, the status it gets) ---------------------------------------------

MALFORMED = [
    # request line (RFC 9112 §3)
    ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
    ("bad-method-char", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space-in-target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("nul-in-target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("lowercase-http", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("garbled-version", b"GET / HTTQ/1.1\r\n" + H + b"\r\n", 400),
    ("missing-minor", b"GET / HTTP/1\r\n" + H + b"\r\n", 400),
    ("bare-lf-request-line", b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    ("http09-line", b"GET /\r\n\r\n", 400),
    ("http09-line-then-fields", b"GET /\r\n" + H + b"\r\n", 400),
    # refused as an HTTP/0.9 request line (400, as "GET /" alone), not as a version (505)
    ("version-0.9", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 400),
    ("version-1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("version-2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("version-3.0", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
    ("absolute-form-not-http", b"GET ftp://a/b HTTP/1.1\r\n" + H + b"\r\n", 400),
    # request-target forms (RFC 9112 §3.2)
    ("asterisk-form-not-options", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment-in-path", b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment-in-query", b"GET /a?q=1#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment-in-absolute-form", b"GET http://h/a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("connect-origin-form", b"CONNECT /x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("connect-without-port", b"CONNECT example.com HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("connect-absolute-form", b"CONNECT http://h:443/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("authority-form-not-connect", b"GET example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    # field syntax (RFC 9112 §5)
    ("obs-fold-space", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n", 400),
    ("obs-fold-first-field", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("tab-before-colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    ("space-before-colon-other", b"GET / HTTP/1.1\r\n" + H + b"X-A : a\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("cr-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("lf-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\nb\r\n\r\n", 400),
    ("ctl-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400),
    ("empty-name", b"GET / HTTP/1.1\r\n" + H + b": a\r\n\r\n", 400),
    ("bad-name-char", b"GET / HTTP/1.1\r\n" + H + b"X(A): a\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400),
    # Host (RFC 9112 §3.2)
    ("http11-without-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host-port-not-digits", b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
    ("host-two-ports", b"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400),
    ("host-with-userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("host-with-path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("host-bad-percent", b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
    ("host-ipv6-unbracketed", b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", 400),
    ("host-ipv6-invalid", b"GET / HTTP/1.1\r\nHost: [::g]:80\r\n\r\n", 400),
    ("host-ipv6-unclosed", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    ("host-http10-invalid", b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400),
    # message body length (RFC 9112 §6)
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "cl-differing",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    ("cl-negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-plus-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1, 2\r\n\r\nab", 400),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc", 400),
    ("cl-inner-space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400),
    ("cl-empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    (
        "cl-overflow",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n",
        400,  # not a length at all (no 413: it is not compared with the limit)
    ),
    ("te-gzip-only", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    (
        "te-chunked-then-gzip",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    (
        "te-two-fields-gzip-last",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
    ),
    ("te-empty", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \r\n\r\n", 400),
    ("te-only-commas", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: , ,\r\n\r\n", 400),
    (
        "te-empty-element-then-gzip",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, , gzip\r\n\r\n",
        400,
    ),
    (
        "te-chunked-comma-then-gzip",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-trailing-comma-in-a-later-field-than-gzip",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked,\r\nTransfer-Encoding: gzip,\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-inner-tab-not-ows",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chun\tked\r\n\r\n0\r\n\r\n",
        400,  # not a token, so no coding at all (not an unknown one, which would be 501)
    ),
    (
        "te-unknown-then-chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,  # RFC 9112 §6.1: a transfer coding we do not know
    ),
    # chunked coding (RFC 9112 §7.1)
    (
        "chunk-size-not-hex",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-negative",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-plus",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-0x",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-overflow",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"f" * 20
        + b"\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-empty",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-data-too-long",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-bare-lf",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        400,
    ),
    (
        "chunk-size-then-space",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "last-chunk-then-space",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0 \r\n\r\n",
        400,
    ),
    (
        "chunk-extension-trailing-space",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n3;a=1 \r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-extension-space-in-name",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n3; a b=1\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-extension-space-no-name",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3 ; \r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-extension-space-then-bare-lf",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3 ;a\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-extension-nul",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n3;\x00\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "trailer-space-in-name",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nBad Name: x\r\n\r\n",
        400,
    ),
    # expectations (RFC 9110 §10.1.1)
    (
        "unknown-expectation",
        b"POST / HTTP/1.1\r\n" + H + b"Expect: something\r\nContent-Length: 1\r\n\r\na",
        417,
    ),
]


class TestMalformed:
    """Bad input is refused with a status, never accepted, whole or in any number of pieces."""

    @pytest.mark.parametrize(
        "data, status", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
    )
    def test_at_once(self, data: bytes, status: int) -> None:
        exc = error_of([data])
        assert exc is not None, "accepted malformed input"
        assert exc.status == status, exc

    @pytest.mark.parametrize(
        "data, status", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
    )
    def test_byte_by_byte(self, data: bytes, status: int) -> None:
        exc = error_of(bytewise(data))
        assert exc is not None, "accepted malformed input"
        assert exc.status == status, exc

    def test_http09_request_line_alone(self) -> None:
        # An HTTP/0.9 client sends only the request line and waits for an answer.
        exc = error_of([b"GET /\r\n"])
        assert exc is not None and exc.status == 400

    def test_nothing_follows_an_error(self) -> None:
        parser = RequestParser()
        data = (
            b"GET /1 HTTP/1.1\r\n"
            + H
            + b"\r\nGET /2 HTTP/1.1\r\nHost : a\r\n\r\nGET /3 HTTP/1.1\r\n"
            + H
            + b"\r\n"
        )
        with pytest.raises(ProtocolError) as info:
            parser.feed(data)
        assert info.value.status == 400
        # the request before the error is complete; the one after it is never produced
        assert [r.raw_path for r in parser.requests] == [b"/1"]

    def test_error_carries_status_and_detail(self) -> None:
        exc = error_of([b"GET / HTTP/1.1\r\n\r\n"])
        assert isinstance(exc, ProtocolError)
        assert exc.status == 400 and "Host" in exc.detail
        assert "400" in repr(exc)


class TestLimits:
    """Size limits: URI 414, head 431, field count 431, body 413 (before reading it)."""

    def test_uri_at_limit_is_accepted(self) -> None:
        target = b"/" + b"a" * 99
        (request,) = parse(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n", max_request_line=100)
        assert request.raw_path == target

    def test_uri_over_limit_is_414(self) -> None:
        exc = error_of(
            [b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n"], max_request_line=100
        )
        assert exc is not None and exc.status == 414

    def test_uri_over_limit_counts_query(self) -> None:
        exc = error_of(
            [b"GET /?" + b"q" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n"], max_request_line=100
        )
        assert exc is not None and exc.status == 414

    def test_uri_dribbled_is_refused_before_it_ends(self) -> None:
        # no end of line ever comes: the limit must still apply
        exc = error_of([b"GET /"] + [b"a" * 10] * 20, max_request_line=100)
        assert exc is not None and exc.status == 414

    def test_default_uri_limit_is_8k(self) -> None:
        assert parse(b"GET /" + b"a" * 8191 + b" HTTP/1.1\r\n" + H + b"\r\n")
        exc = error_of([b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\n" + H + b"\r\n"])
        assert exc is not None and exc.status == 414

    def test_field_count_at_limit_is_accepted(self) -> None:
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(9))
        (request,) = parse(b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n", max_header_count=10)
        assert len(request.headers) == 10

    def test_field_count_over_limit_is_431(self) -> None:
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(10))
        exc = error_of([b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n"], max_header_count=10)
        assert exc is not None and exc.status == 431

    def test_default_field_count_is_100(self) -> None:
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(100))
        exc = error_of([b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n"])
        assert exc is not None and exc.status == 431

    def test_head_size_over_limit_is_431(self) -> None:
        fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(20))
        exc = error_of([b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n"], max_header_size=1000)
        assert exc is not None and exc.status == 431

    def test_head_size_over_limit_byte_by_byte_is_431(self) -> None:
        fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(20))
        exc = error_of(bytewise(b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n"), max_header_size=1000)
        assert exc is not None and exc.status == 431

    def test_one_huge_field_at_once_is_431(self) -> None:
        exc = error_of([b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 5000], max_header_size=1000)
        assert exc is not None and exc.status == 431

    def test_one_huge_field_dribbled_is_refused_before_it_ends(self) -> None:
        exc = error_of(
            [b"GET / HTTP/1.1\r\n" + H + b"X-Big: "] + [b"v" * 100] * 100, max_header_size=1000
        )
        assert exc is not None and exc.status == 431

    def test_one_huge_field_name_dribbled_is_refused_before_it_ends(self) -> None:
        exc = error_of(
            [b"GET / HTTP/1.1\r\n" + H + b"X"] + [b"n" * 100] * 100, max_header_size=1000
        )
        assert exc is not None and exc.status == 431

    def test_large_body_then_partial_next_request(self) -> None:
        body = b"x" * 40000
        data = (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Content-Length: 40000\r\n\r\n"
            + body
            + b"GET /next HTTP/1.1\r\nHo"
        )
        parser = RequestParser()
        parser.feed(data)
        parser.feed(b"st: a\r\n\r\n")
        assert [r.raw_path for r in parser.requests] == [b"/", b"/next"]
        assert parser.requests[0].body == body

    def test_many_pipelined_then_partial_next_request(self) -> None:
        one = b"GET / HTTP/1.1\r\n" + H + b"\r\n"
        parser = RequestParser()
        parser.feed(one * 1500 + b"GET / HTTP/1.1\r\nHo")
        parser.feed(b"st: a\r\n\r\n")
        assert len(parser.requests) == 1501

    def test_trailers_count_towards_the_field_limit(self) -> None:
        trailers = b"".join(b"T-%d: v\r\n" % i for i in range(20))
        data = (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
            + trailers
            + b"\r\n"
        )
        exc = error_of([data], max_header_count=10)
        assert exc is not None and exc.status == 431

    def test_body_at_limit_is_accepted(self) -> None:
        (request,) = parse(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n" + b"b" * 10, max_body_size=10
        )
        assert request.body == b"b" * 10

    def test_content_length_over_limit_is_413_before_the_body(self) -> None:
        parser = RequestParser(max_body_size=10)
        with pytest.raises(ProtocolError) as info:
            parser.feed(
                b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\n"
            )  # no body byte sent
        assert info.value.status == 413

    def test_chunked_body_over_limit_is_413(self) -> None:
        data = (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        exc = error_of([data], max_body_size=10)
        assert exc is not None and exc.status == 413

    def test_chunked_body_over_limit_byte_by_byte_is_413(self) -> None:
        data = (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        exc = error_of(bytewise(data), max_body_size=10)
        assert exc is not None and exc.status == 413

    def test_zero_body_limit_allows_bodiless_requests(self) -> None:
        assert parse(b"GET / HTTP/1.1\r\n" + H + b"\r\n", max_body_size=0)
        exc = error_of(
            [b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n\r\nx"], max_body_size=0
        )
        assert exc is not None and exc.status == 413


# --- well-formed input ------------------------------------------------------------------------------

VALID = [
    (
        "get",
        b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Case: Value\r\n\r\n",
        [("GET", b"/a/b", b"x=1&y=2", "1.1", [(b"Host", b"h"), (b"X-Case", b"Value")], b"", True)],
    ),
    ("http10-no-host", b"GET / HTTP/1.0\r\n\r\n", [("GET", b"/", b"", "1.0", [], b"", False)]),
    (
        "http10-keep-alive",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        [("GET", b"/", b"", "1.0", [(b"Connection", b"keep-alive")], b"", True)],
    ),
    (
        "http11-close",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        [("GET", b"/", b"", "1.1", [(b"Host", b"h"), (b"Connection", b"close")], b"", False)],
    ),
    (
        "content-length",
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        [("POST", b"/p", b"", "1.1", [(b"Host", b"h"), (b"Content-Length", b"5")], b"hello", True)],
    ),
    (
        "content-length-zero",
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        [("POST", b"/p", b"", "1.1", [(b"Host", b"h"), (b"Content-Length", b"0")], b"", True)],
    ),
    (
        "get-with-body",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi",
        [("GET", b"/", b"", "1.1", [(b"Host", b"h"), (b"Content-Length", b"2")], b"hi", True)],
    ),
    (
        "chunked-ext",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3;name=val;flag\r\nabc\r\n2;q="a b"\r\nde\r\nA\r\n0123456789\r\n0;last=1\r\n\r\n',
        [
            (
                "POST",
                b"/",
                b"",
                "1.1",
                [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")],
                b"abcde0123456789",
                True,
            )
        ],
    ),
    (
        "chunked-uppercase",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\na\r\n0123456789\r\n0\r\n\r\n",
        [
            (
                "POST",
                b"/",
                b"",
                "1.1",
                [(b"Host", b"h"), (b"Transfer-Encoding", b"CHUNKED")],
                b"0123456789",
                True,
            )
        ],
    ),
    (
        "asterisk-form",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        [("OPTIONS", b"*", b"", "1.1", [(b"Host", b"h")], b"", True)],
    ),
    (
        "absolute-form",
        b"GET http://h/p/q?z=9 HTTP/1.1\r\nHost: h\r\n\r\n",
        [("GET", b"/p/q", b"z=9", "1.1", [(b"Host", b"h")], b"", True)],
    ),
    (
        "leading-empty-line",
        b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        [("GET", b"/", b"", "1.1", [(b"Host", b"h")], b"", True)],
    ),
    (
        "leading-whitespace-trimmed",
        b"GET / HTTP/1.1\r\nHost: \t h\r\nX-E:\r\n\r\n",
        [("GET", b"/", b"", "1.1", [(b"Host", b"h"), (b"X-E", b"")], b"", True)],
    ),
    (
        "obs-text-in-value",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-T: caf\xe9\r\n\r\n",
        [("GET", b"/", b"", "1.1", [(b"Host", b"h"), (b"X-T", b"caf\xe9")], b"", True)],
    ),
    (
        "pipelined",
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
        b"GET /4 HTTP/1.0\r\n\r\n",
        [
            ("GET", b"/1", b"", "1.1", [(b"Host", b"h")], b"", True),
            ("POST", b"/2", b"", "1.1", [(b"Host", b"h"), (b"Content-Length", b"3")], b"abc", True),
            (
                "POST",
                b"/3",
                b"",
                "1.1",
                [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")],
                b"z",
                True,
            ),
            ("GET", b"/4", b"", "1.0", [], b"", False),
        ],
    ),
    (
        "host-forms",
        b"".join(
            b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % h
            for h in (b"a.example:8080", b"127.0.0.1", b"[::1]:3000", b"[v1.x]", b"a%20b", b"h:")
        )
        + b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        [
            ("GET", b"/", b"", "1.1", [(b"Host", h)], b"", True)
            for h in (
                b"a.example:8080",
                b"127.0.0.1",
                b"[::1]:3000",
                b"[v1.x]",
                b"a%20b",
                b"h:",
                b"",
            )
        ],
    ),
    (
        "connect-authority-form",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        [
            (
                "CONNECT",
                b"example.com:443",
                b"",
                "1.1",
                [(b"Host", b"example.com:443")],
                b"",
                False,
            )
        ],
    ),
    (
        "connect-ipv6",
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
        [("CONNECT", b"[::1]:8443", b"", "1.1", [(b"Host", b"[::1]:8443")], b"", False)],
    ),
    (
        "te-empty-list-elements",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,,\t, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
        [
            ("POST", b"/", b"", "1.1", [(b"Host", b"h"), (b"Transfer-Encoding", v)], body, True)
            for v, body in ((b", chunked", b"abc"), (b",,\t, chunked", b"z"))
        ],
    ),
    (
        # RFC 9110 §5.6.1: empty list elements after the last coding are ignored too (the value
        # reported is the codings, without them)
        "te-trailing-empty-list-elements",
        b"".join(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n1\r\nz\r\n0\r\n\r\n" % v
            for v in (b"chunked,", b"chunked, ,", b",chunked,", b"chunked ,\t")
        ),
        [
            ("POST", b"/", b"", "1.1", [(b"Host", b"h"), (b"Transfer-Encoding", v)], b"z", True)
            for v in (b"chunked", b"chunked", b",chunked", b"chunked")
        ],
    ),
    (
        "te-trailing-tab",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\t\r\nX-A: b \t\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
        [
            (
                "POST",
                b"/",
                b"",
                "1.1",
                [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked"), (b"X-A", b"b")],
                b"abc",
                True,
            ),
            ("GET", b"/next", b"", "1.1", [(b"Host", b"h")], b"", True),
        ],
    ),
    (
        "chunk-extension-whitespace",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5 ;a=1\r\nhello\r\n1; a = 1\r\n \r\n2\t;\tb\r\nab\r\n3 ; q = "x ; y" ; f\r\nxyz\r\n'
        b"0 ; last\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
        [
            (
                "POST",
                b"/",
                b"",
                "1.1",
                [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")],
                b"hello abxyz",
                True,
            ),
            ("GET", b"/next", b"", "1.1", [(b"Host", b"h")], b"", True),
        ],
    ),
    (
        "methods",
        b"PUT / HTTP/1.1\r\nHost: h\r\n\r\nDELETE / HTTP/1.1\r\nHost: h\r\n\r\n"
        b"PATCH / HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
        [
            (m, b"/", b"", "1.1", [(b"Host", b"h")], b"", True)
            for m in ("PUT", "DELETE", "PATCH", "HEAD")
        ],
    ),
]


class TestWellFormed:
    """Valid requests give the same result whole, split at any byte, or one byte at a time."""

    @pytest.mark.parametrize("data, expected", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
    def test_at_once(self, data: bytes, expected: list[tuple[object, ...]]) -> None:
        assert summary(parse(data)) == expected

    @pytest.mark.parametrize("data, expected", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
    def test_split_at_every_byte(self, data: bytes, expected: list[tuple[object, ...]]) -> None:
        for i in range(len(data) + 1):
            assert summary(parse_in_pieces([data[:i], data[i:]])) == expected, f"split at {i}"

    @pytest.mark.parametrize("data, expected", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
    def test_byte_by_byte(self, data: bytes, expected: list[tuple[object, ...]]) -> None:
        assert summary(parse_in_pieces(bytewise(data))) == expected

    def test_trailing_whitespace_is_not_part_of_the_value(self) -> None:
        (request,) = parse(b"GET / HTTP/1.1\r\nHost: h \t\r\nX-A: a \r\n\r\n")
        assert request.headers.raw == [(b"Host", b"h"), (b"X-A", b"a")]

    def test_expect_with_trailing_whitespace(self) -> None:
        parser = RequestParser()
        parser.feed(
            b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue \r\nContent-Length: 3\r\n\r\n"
        )
        assert parser.expect_continue

    def test_client_and_scheme_are_passed_on(self) -> None:
        parser = RequestParser(client=("10.0.0.1", 5555), scheme="https")
        parser.feed(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
        (request,) = parser.requests
        assert request.client == ("10.0.0.1", 5555)
        assert request.scheme == "https"

    def test_header_names_keep_their_spelling_and_order(self) -> None:
        (request,) = parse(b"GET / HTTP/1.1\r\nhOsT: h\r\nX-b: 2\r\nx-A: 1\r\nX-B: 3\r\n\r\n")
        assert list(request.headers) == [("hOsT", "h"), ("X-b", "2"), ("x-A", "1"), ("X-B", "3")]
        assert request.headers.getall("x-b") == ["2", "3"]

    def test_chunked_trailers_are_accepted(self) -> None:
        data = (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\nGET /next HTTP/1.1\r\n"
            + H
            + b"\r\n"
        )
        first, second = parse(data)
        assert first.body == b"abc"
        assert second.raw_path == b"/next"

    def test_trailers_are_not_merged_into_headers(self) -> None:
        data = (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Injected: yes\r\n\r\n"
        )
        (request,) = parse(data)
        assert request.headers.get("X-Injected") is None

    def test_large_body_in_many_pieces(self) -> None:
        body = bytes(range(256)) * 400
        head = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body)
        data = head + body
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        (request,) = parse_in_pieces(pieces)
        assert request.body == body

    def test_large_chunked_body_in_many_pieces(self) -> None:
        chunks = [bytes([i]) * (i * 7 + 1) for i in range(200)]
        encoded = (
            b"".join(b"%x;i=%d\r\n%s\r\n" % (len(c), i, c) for i, c in enumerate(chunks))
            + b"0\r\n\r\n"
        )
        data = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + encoded
        pieces = [data[i : i + 333] for i in range(0, len(data), 333)]
        (request,) = parse_in_pieces(pieces)
        assert request.body == b"".join(chunks)

    def test_http10_chunked_body_is_decoded(self) -> None:
        (request,) = parse(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        assert request.body == b"abc"

    def test_http10_with_transfer_encoding_is_not_persistent(self) -> None:
        (request,) = parse(
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
        )
        assert request.keep_alive is False

    def test_many_pipelined_requests_stay_in_order(self) -> None:
        data = b"".join(b"GET /%d HTTP/1.1\r\n%s\r\n" % (i, H) for i in range(200))
        assert [r.raw_path for r in parse(data)] == [b"/%d" % i for i in range(200)]


class TestExpectContinue:
    """``Expect: 100-continue`` (RFC 9110 §10.1.1): the caller is told to send 100 Continue."""

    def test_set_once_the_head_is_in(self) -> None:
        parser = RequestParser()
        parser.feed(b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 3\r\n")
        assert not parser.expect_continue or parser.phase == HEAD
        parser.feed(b"\r\n")
        assert parser.expect_continue and parser.phase == BODY
        parser.feed(b"abc")
        assert not parser.expect_continue and parser.phase == IDLE
        assert parser.requests[0].body == b"abc"

    def test_case_insensitive(self) -> None:
        parser = RequestParser()
        parser.feed(
            b"POST / HTTP/1.1\r\n" + H + b"expect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
        )
        assert parser.expect_continue

    def test_chunked(self) -> None:
        parser = RequestParser()
        parser.feed(
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        assert parser.expect_continue
        parser.feed(b"3\r\nabc\r\n0\r\n\r\n")
        assert not parser.expect_continue and parser.requests[0].body == b"abc"

    def test_not_set_when_the_body_came_along(self) -> None:
        parser = RequestParser()
        parser.feed(
            b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
        )
        assert not parser.expect_continue

    def test_not_set_without_a_body(self) -> None:
        parser = RequestParser()
        parser.feed(
            b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n"
        )
        assert not parser.expect_continue
        assert len(parser.requests) == 1

    def test_not_set_for_http10(self) -> None:
        parser = RequestParser()
        parser.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        assert not parser.expect_continue

    def test_too_large_body_is_413_not_100(self) -> None:
        exc = error_of(
            [b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n"],
            max_body_size=10,
        )
        assert exc is not None and exc.status == 413


class TestState:
    """``state`` and ``begun`` let the connection pick the right read timer."""

    def test_transitions(self) -> None:
        parser = RequestParser()
        assert parser.phase == IDLE and parser.begun == 0
        parser.feed(b"POST / HT")
        assert parser.phase == HEAD and parser.begun == 1
        parser.feed(b"TP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\n")
        assert parser.phase == BODY
        parser.feed(b"x")
        assert parser.phase == BODY
        parser.feed(b"y")
        assert parser.phase == IDLE and len(parser.requests) == 1

    def test_begun_counts_requests_within_one_feed(self) -> None:
        parser = RequestParser()
        parser.feed(b"GET / HTTP/1.1\r\n" + H + b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\nGET /")
        assert parser.begun == 3
        assert parser.phase == HEAD
        assert len(parser.requests) == 2

    def test_upgrade_keeps_the_bytes_after_the_head(self) -> None:
        parser = RequestParser()
        parser.feed(
            b"GET /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: foo\r\n\r\n\x81\x00"
        )
        assert [r.raw_path for r in parser.requests] == [b"/ws"]
        assert parser.upgrade_data == b"\x81\x00"
        parser.feed(b"more")
        assert parser.upgrade_data == b"\x81\x00more"


CHUNKED = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"


def feed_all(parser: RequestParser, pieces: list[bytes]) -> None:
    for piece in pieces:
        parser.feed(piece)


@pytest.mark.parametrize("start", [b"0\r\nX-Trailer: ", b"0\r\nX-Trailer"], ids=["value", "name"])
def test_unfinished_trailer_field_is_bounded(start: bytes) -> None:
    """A chunked body's trailer section, one field dribbled in 64 KiB pieces (max_header_size 32 KiB).

    Expected: 431 once the field passes the limit. Guards against: accepted without end (25 MB took 12 s
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

    Expected ("a request may arrive split anywhere"; "HTTP/0.9-style line -> 400", "never a
    hang"): ProtocolError 400 once the line is in. Guards against: nothing; the 0.9 client waits for the
    header timeout and then gets 408.
    """
    parser = RequestParser()
    with pytest.raises(ProtocolError) as info:
        feed_all(parser, pieces)
    assert info.value.status == 400


def test_malformed_method_after_a_request_is_400() -> None:
    """``G@T`` (not a token) pipelined after a good request, in one feed.

    Expected: 400, as when it comes alone. Guards against: 501 Not Implemented.
    """
    parser = RequestParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"GET / HTTP/1.1\r\n" + H + b"\r\nG@T / HTTP/1.1\r\n" + H + b"\r\n")
    assert info.value.status == 400


def test_connect_body_does_not_become_the_next_request() -> None:
    """``CONNECT /x`` (origin-form: invalid for CONNECT) with ``Content-Length`` and a body that is
    itself a request.

    Expected: ProtocolError 400, or the body read as the CONNECT's body. Guards against: ``body == b""``
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
