"""``max_header_size`` counts the head as received, the same however the bytes are split.

The head is every byte from the request line's first to the blank line's end: method, target,
version, every field line with its whitespace, every line end. A head of exactly the limit is
accepted and one byte more is refused with 431, whether it arrives in one read, in TCP-sized
segments, split in two anywhere, or a byte at a time.
"""

from __future__ import annotations

import pytest

from peregrine.http.errors import ProtocolError
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


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked_outcome(pieces: list[bytes], **limits: int) -> tuple[int, int]:
    """``(status or 200, requests completed)``: a refused body must complete no request."""
    parser = RequestParser(**limits)
    try:
        for piece in pieces:
            parser.feed(piece)
    except ProtocolError as exc:
        return exc.status, len(parser.requests)
    return 200, len(parser.requests)


def splits(data: bytes) -> list[list[bytes]]:
    """One write, TCP-sized segments, a byte at a time, and two pieces cut at ~200 places."""
    step = max(1, len(data) // 200)
    return [
        [data],
        segments(data, 1460),
        bytewise(data),
        *([data[:i], data[i:]] for i in range(1, len(data), step)),
    ]


class TestChunkSizeLinesAsReceived:
    """Chunk-size lines are judged in byte order, whole or split: a byte that cannot continue the
    line is 400, the first byte past ``max_chunk_extensions`` (all lines of a body together) is
    413, and a refused body never completes its request."""

    def test_junk_after_the_size_is_400_before_any_limit(self) -> None:
        data = CHUNKED_HEAD + b"5 x" + b"a" * 40000 + b"\r\n"
        assert {chunked_outcome(p) for p in splits(data)} == {(400, 0)}

    def test_extension_of_40k_is_413_and_never_reaches_the_handler(self) -> None:
        data = CHUNKED_HEAD + b"5;" + b"a" * 40000 + b"\r\nabcde\r\n0\r\n\r\n"
        assert {chunked_outcome(p) for p in splits(data)} == {(413, 0)}

    @pytest.mark.parametrize(
        "line, limit, expected",
        [
            (b"5;" + b"a" * 99, 100, 200),  # 100 bytes of extension: at the limit
            (b"5;" + b"a" * 100, 100, 413),
            (b"5 ; " + b"a" * 97, 100, 200),  # BWS counts as received
            (b"5 ; " + b"a" * 98, 100, 413),
            (b"5;a", 0, 413),
            (b"0" * 15 + b"5", 0, 200),  # 16 digits: a size, not an extension
            (b"0" * 16 + b"5", 0, 413),  # a 17th digit counts
            (b"0" * 116 + b"5", 100, 413),
            (b"1" * 17, 100, 400),  # overflows 64 bits
            (b"0" * 99 + b"1" * 17, 100, 400),  # overflows just before the limit
            (b"0" * 101 + b"1" * 17, 100, 413),  # the limit comes first
            (b"5;" + b"a" * 50 + b"\x00" + b"a" * 100, 100, 400),
            (b"5;" + b"a" * 150 + b"\x00", 100, 413),
            (b"5;" + b"a" * 99 + b"\rx", 100, 413),  # a CR at the limit that ends no line
        ],
        ids=lambda v: v[:12] if isinstance(v, bytes) else str(v),
    )
    def test_limit_and_syntax_in_byte_order(self, line: bytes, limit: int, expected: int) -> None:
        data = CHUNKED_HEAD + line + b"\r\nabcde\r\n0\r\n\r\n"
        outcomes = {chunked_outcome(p, max_chunk_extensions=limit) for p in splits(data)}
        assert outcomes == ({(200, 1)} if expected == 200 else {(expected, 0)})

    def test_limit_is_for_the_whole_body(self) -> None:
        line = b"1;" + b"e" * 49 + b"\r\nz\r\n"  # 50 bytes of extension each
        ok = CHUNKED_HEAD + line * 2 + b"0\r\n\r\n"
        over = CHUNKED_HEAD + line * 2 + b"0;x\r\n\r\n"
        assert {chunked_outcome(p, max_chunk_extensions=100) for p in splits(ok)} == {(200, 1)}
        assert {chunked_outcome(p, max_chunk_extensions=100) for p in splits(over)} == {(413, 0)}

    def test_each_body_has_its_own_limit(self) -> None:
        one = CHUNKED_HEAD + b"1;" + b"e" * 80 + b"\r\nz\r\n0\r\n\r\n"
        assert chunked_outcome([one * 3], max_chunk_extensions=100) == (200, 3)

    def test_trailer_section_is_measured_as_received(self) -> None:
        # a trailer field padded with leading spaces: its value as reported is one byte
        data = CHUNKED_HEAD + b"0\r\nX-T:" + b" " * 600 + b"v\r\n\r\n"
        assert {chunked_outcome(p, max_header_size=500) for p in splits(data)} == {(431, 0)}
        fits = CHUNKED_HEAD + b"0\r\nX-T:" + b" " * 400 + b"v\r\n\r\n"
        assert {chunked_outcome(p, max_header_size=500) for p in splits(fits)} == {(200, 1)}


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


# (id, the head up to a line too long to be the request line (dribbled a byte at a time), the
# rest of the request)
LONG_FIRST_LINES = [
    ("first-field-value", b"GET / HTTP/1.1\r\nX-Pad: " + b"v" * 600, b"\r\n" + H + b"\r\n"),
    ("first-field-name", b"GET / HTTP/1.1\r\nX" + b"x" * 600, b": v\r\n" + H + b"\r\n"),
]


@pytest.mark.parametrize(
    "head, rest", [c[1:] for c in LONG_FIRST_LINES], ids=[c[0] for c in LONG_FIRST_LINES]
)
def test_a_line_too_long_to_be_a_request_line_is_not_copied_at_every_read(
    head: bytes, rest: bytes
) -> None:
    """Whether a line is an HTTP/0.9 request line (refused at its end) needs only its start:
    once a line is longer than any request line can be, the bytes dribbled into it are not
    kept, so the work per read stays the same however long the line gets (copying the line
    so far at every read made a line of n bytes cost n²/2)."""
    limits = {"max_request_line": 200, "max_header_size": 4096}
    parser = RequestParser(**limits)
    kept = None
    for i in range(len(head)):
        parser.feed(head[i : i + 1])
        if i > 500:  # well past max_request_line + 32 (the method and version) into the line
            if kept is None:
                kept = parser._line_tail
            assert parser._line_tail is kept, f"copied again at byte {i}"
    parser.feed(rest)
    assert len(parser.requests) == 1
    assert outcome(bytewise(head + rest), **limits) == 200
