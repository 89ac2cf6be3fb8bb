"""``max_header_size`` counts the head as received, the same however the bytes are split.

The head is every byte from the request line's first to the blank line's end: method, target,
version, every field line with its whitespace, every line end. A head of exactly the limit is
accepted and one byte more is refused with 431, whether it arrives in one read, in TCP-sized
segments, split in two anywhere, or a byte at a time.
"""

from __future__ import annotations

import pytest

from peregrine.http.parser import RequestParser

from .test_parser import H, bytewise, error_of, parse_in_pieces


def head_of_size(size: int, padding: bytes = b"v") -> bytes:
    """A valid GET head of exactly ``size`` bytes, padded in one field's value."""
    base = b"GET / HTTP/1.1\r\n" + H + b"X-Pad: v\r\n\r\n"
    assert size >= len(base)
    if padding == b" ":  # leading whitespace, which llhttp does not report in the value
        return b"GET / HTTP/1.1\r\n" + H + b"X-Pad:" + b" " * (size - len(base) + 1) + b"v\r\n\r\n"
    return b"GET / HTTP/1.1\r\n" + H + b"X-Pad: " + b"v" * (size - len(base) + 1) + b"\r\n\r\n"


def segments(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def outcome(pieces: list[bytes], **limits: int) -> int:
    """431 (or another refusal status), or 200 when one request came out."""
    exc = error_of(pieces, **limits)
    if exc is not None:
        return exc.status
    assert len(parse_in_pieces(pieces, **limits)) == 1
    return 200


class TestHeadSizeAsReceived:
    @pytest.mark.parametrize("padding", [b"v", b" "], ids=["value", "leading-spaces"])
    def test_at_the_limit_is_accepted_however_split(self, padding: bytes) -> None:
        data = head_of_size(300, padding)
        assert len(data) == 300
        assert outcome([data], max_header_size=300) == 200
        for i in range(1, len(data)):
            assert outcome([data[:i], data[i:]], max_header_size=300) == 200, f"split at {i}"
        assert outcome(bytewise(data), max_header_size=300) == 200

    @pytest.mark.parametrize("padding", [b"v", b" "], ids=["value", "leading-spaces"])
    def test_one_byte_over_is_431_however_split(self, padding: bytes) -> None:
        data = head_of_size(301, padding)
        assert outcome([data], max_header_size=300) == 431
        for i in range(1, len(data)):
            assert outcome([data[:i], data[i:]], max_header_size=300) == 431, f"split at {i}"
        assert outcome(bytewise(data), max_header_size=300) == 431

    def test_request_line_counts(self) -> None:
        # a long target, under max_request_line, is part of the head
        data = b"GET /" + b"a" * 250 + b" HTTP/1.1\r\n" + H + b"\r\n"
        assert outcome([data], max_header_size=len(data)) == 200
        assert outcome([data], max_header_size=len(data) - 1) == 431

    def test_empty_lines_before_the_request_do_not_count(self) -> None:
        data = head_of_size(300)
        assert outcome([b"\r\n" * 10 + data], max_header_size=300) == 200

    def test_padded_field_of_120k_is_431_in_one_read_and_in_segments(self) -> None:
        # one field padded with leading spaces: its value as reported is one byte
        data = b"GET / HTTP/1.1\r\n" + H + b"X-Pad:" + b" " * 120_000 + b"v\r\n\r\n"
        assert outcome([data]) == 431
        assert outcome(segments(data, 1460)) == 431

    def test_ordinary_head_of_40k_is_431_in_one_read_and_in_segments(self) -> None:
        # an 8,000-byte target and 78 fields of 400 bytes: each part within its own limit
        fields = b"".join(b"X-%02d: %s\r\n" % (i, b"v" * 392) for i in range(78))
        data = b"GET /" + b"a" * 7999 + b" HTTP/1.1\r\n" + H + fields + b"\r\n"
        assert 39_000 < len(data) < 41_000
        assert outcome([data]) == 431
        assert outcome(segments(data, 1460)) == 431

    def test_second_head_in_the_same_read_is_measured_too(self) -> None:
        first = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello"
        chunked = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        for before in (first, chunked, b"GET / HTTP/1.1\r\n" + H + b"\r\n"):
            parser = RequestParser(max_header_size=300)
            parser.feed(before + head_of_size(300))
            assert len(parser.requests) == 2
            assert outcome([before + head_of_size(301, b" ")], max_header_size=300) == 431


class TestStreamedBodies:
    """With ``stream_bodies`` the same pieces come out, and each body is bounded on its own."""

    def test_body_limit_counts_each_message_alone(self) -> None:
        one = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n\r\nabcdef"
        parser = RequestParser(max_body_size=10, stream_bodies=True)
        parser.feed(one)
        parser.feed(one + one)
        assert [e for e in parser.events if e is None] == [None] * 3
        assert [e for e in parser.events if isinstance(e, bytes)] == [b"abcdef"] * 3

    def test_head_parsed_again_for_a_trailing_tab_is_reported_once(self) -> None:
        data = (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        for pieces in ([data], bytewise(data)):
            parser = RequestParser(stream_bodies=True)
            for piece in pieces:
                parser.feed(piece)
            kinds = [type(e).__name__ for e in parser.events if not isinstance(e, bytes)]
            assert kinds == ["Request", "NoneType"]
            assert b"".join(e for e in parser.events if isinstance(e, bytes)) == b"abc"
