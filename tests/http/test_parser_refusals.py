"""A refused request gets the same status however its bytes are split into reads.

Every refusal case of the parser tests, plus cases where two problems compete (a limit passed
before llhttp finds a malformed byte, a field check due before a later syntax error, a method name
that ends in a later read), is fed at once, split in two at every byte, and one byte at a time:
the status must be the same each time. The verdict is the one the first problem in byte order
calls for.
"""

from __future__ import annotations

import pytest

from .test_parser import MALFORMED, H, bytewise, error_of

FIELDS_1K = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(10))
TOO_MANY_FIELDS = b"".join(b"X-%d: v\r\n" % i for i in range(10))

# (id, bytes, limits, status)
COMPETING: list[tuple[str, bytes, dict[str, int], int]] = [
    ("unknown-method", b"FOO / HTTP/1.1\r\n" + H + b"\r\n", {}, 501),
    ("unknown-method-alone", b"BREW / HTTP/1.1\r\n", {}, 501),
    ("unknown-method-after-empty-lines", b"\r\n\r\nFOO / HTTP/1.1\r\n" + H + b"\r\n", {}, 501),
    ("method-with-bad-char", b"FO@ / HTTP/1.1\r\n" + H + b"\r\n", {}, 400),
    ("method-then-tab", b"FOO\t/ HTTP/1.1\r\n" + H + b"\r\n", {}, 400),
    (
        "unknown-method-past-head-limit",
        b"F" * 300 + b" / HTTP/1.1\r\n\r\n",
        {"max_header_size": 100},
        431,
    ),
    (
        "target-over-limit",
        b"GET /" + b"a" * 150 + b" HTTP/1.1\r\n" + H + b"\r\n",
        {"max_request_line": 100},
        414,
    ),
    (
        "target-over-limit-then-bad-char",
        b"GET /" + b"a" * 150 + b"\x00 HTTP/1.1\r\n" + H + b"\r\n",
        {"max_request_line": 100},
        414,
    ),
    (
        "bad-char-in-target-before-limit",
        b"GET /" + b"a" * 50 + b"\x00" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n",
        {"max_request_line": 100},
        400,
    ),
    (
        "target-over-head-limit",
        b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n" + H + b"\r\n",
        {"max_header_size": 200},
        431,
    ),
    (
        "version-then-large-head",
        b"GET / HTTP/1.2\r\n" + H + FIELDS_1K + b"\r\n",
        {"max_header_size": 500},
        505,
    ),
    (
        "large-head-then-bad-version",
        b"GET /" + b"a" * 600 + b" HTTP/1.2\r\n" + H + b"\r\n",
        {"max_header_size": 500},
        431,
    ),
    ("large-head", b"GET / HTTP/1.1\r\n" + H + FIELDS_1K + b"\r\n", {"max_header_size": 500}, 431),
    (
        "large-head-then-bad-field",
        b"GET / HTTP/1.1\r\n" + H + FIELDS_1K + b"X(A): b\r\n\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "bad-field-then-large-head",
        b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n" + FIELDS_1K + b"\r\n",
        {"max_header_size": 500},
        400,
    ),
    (
        "padded-value-over-limit",
        b"GET / HTTP/1.1\r\n" + H + b"X-Pad:" + b" " * 600 + b"v\r\n\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "value-over-limit-then-ctl",
        b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 600 + b"\x01\r\n\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "too-many-fields-then-bad-name",
        b"GET / HTTP/1.1\r\n" + H + TOO_MANY_FIELDS + b"X(A): b\r\n\r\n",
        {"max_header_count": 10},
        431,
    ),
    (
        "unknown-expectation-then-bad-name",
        b"POST / HTTP/1.1\r\n" + H + b"Expect: nothing\r\nX(A): b\r\n\r\n",
        {},
        417,
    ),
    (
        "second-host-then-bad-name",
        b"GET / HTTP/1.1\r\n" + H + H + b"X(A): b\r\n\r\n",
        {},
        400,
    ),
    (
        "content-length-over-limit-then-bad-name",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\nX(A): b\r\n\r\n",
        {"max_body_size": 10},
        413,
    ),
    (
        "pipelined-unknown-method",
        b"GET / HTTP/1.1\r\n" + H + b"\r\nFOO / HTTP/1.1\r\n" + H + b"\r\n",
        {},
        501,
    ),
    (
        "unknown-method-after-a-closing-request",
        b"GET / HTTP/1.0\r\n\r\nFOO / HTTP/1.1\r\n" + H + b"\r\n",
        {},
        400,
    ),
    (
        "chunked-request-after-a-closing-request",
        b"GET / HTTP/1.0\r\n\r\nPOST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {},
        400,
    ),
    (
        "too-many-fields-after-connection-close",
        b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
        b"GET / HTTP/1.1\r\n" + H + TOO_MANY_FIELDS + b"\r\n",
        {"max_header_count": 5},
        400,
    ),
    (
        "chunk-size-overflow-on-a-line-longer-than-the-limit",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 300 + b"\r\n",
        {"max_header_size": 100},
        400,
    ),
    (
        "te-trailing-comma-then-large-head",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,\r\n" + FIELDS_1K + b"\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "te-comma-then-gzip-then-large-head",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n" + FIELDS_1K + b"\r\n",
        {"max_header_size": 500},
        400,
    ),
    (
        "te-trailing-commas-past-head-limit",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked" + b"," * 600 + b"\r\n\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "te-trailing-comma-then-bad-field",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,\r\nX(A): b\r\n\r\n",
        {},
        400,
    ),
    (
        "chunk-size-junk-longer-than-the-extension-limit",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n5 x"
        + b"a" * 300
        + b"\r\n",
        {"max_chunk_extensions": 100},
        400,
    ),
    (
        "chunk-extension-over-the-limit",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n5;"
        + b"a" * 300
        + b"\r\nabcde\r\n0\r\n\r\n",
        {"max_chunk_extensions": 100},
        413,
    ),
    (
        "chunk-over-the-body-limit-then-a-bad-chunk-size-line",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n64\r\n"
        + b"c" * 100
        + b"\r\nzz\r\n0\r\n\r\n",
        {"max_body_size": 64},
        413,
    ),
    (
        "trailer-section-over-the-head-limit-then-bad-byte",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T:"
        + b" " * 600
        + b"v\x01\r\n\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "too-many-trailer-fields-then-bad-name",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
        + TOO_MANY_FIELDS
        + b"X(A): b\r\n\r\n",
        {"max_header_count": 5},
        431,
    ),
    ("http09-line-then-a-field-line", b"GET /\r\nX: y\r\n", {}, 400),
    ("http09-line-then-a-field-and-more", b"GET /\nX: y\r\nZ", {}, 400),
    ("http09-line-then-unknown-expectation", b"GET /\nExpect: x\r\nZ", {}, 400),
    (
        "http09-line-then-large-content-length",
        b"GET /\nContent-Length: 99\r\n\r\n",
        {"max_body_size": 10},
        400,
    ),
    (
        "http09-line-then-too-many-fields",
        b"GET /\n" + TOO_MANY_FIELDS,
        {"max_header_count": 5},
        400,
    ),
    (
        "head-with-trailing-tab-after-a-closing-request",
        b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\naFOO \n\t\r\n\r\n",
        {},
        400,
    ),
    ("http09-line-with-bare-lf-then-a-field-line", b"GET /\n8:\r\n", {}, 400),
    (
        "pipelined-after-body-large-head",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
        b"GET / HTTP/1.1\r\n" + H + FIELDS_1K + b"\r\n",
        {"max_header_size": 500},
        431,
    ),
    (
        "pipelined-after-chunked-large-head",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"GET / HTTP/1.1\r\n" + H + FIELDS_1K + b"\r\n",
        {"max_header_size": 500},
        431,
    ),
]

CASES = [(c[0], c[1], {}, None) for c in MALFORMED] + COMPETING


def status_of(pieces: list[bytes], limits: dict[str, int]) -> int | None:
    exc = error_of(pieces, **limits)
    return None if exc is None else exc.status


@pytest.mark.parametrize(
    "data, limits, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
class TestSameStatusWhateverTheSplit:
    def test_at_once(self, data: bytes, limits: dict[str, int], expected: int | None) -> None:
        status = status_of([data], limits)
        assert status is not None, "accepted"
        if expected is not None:
            assert status == expected

    def test_split_in_two_at_every_byte(
        self, data: bytes, limits: dict[str, int], expected: int | None
    ) -> None:
        whole = status_of([data], limits)
        splits = {i: status_of([data[:i], data[i:]], limits) for i in range(1, len(data))}
        assert {i: s for i, s in splits.items() if s != whole} == {}

    def test_byte_by_byte(self, data: bytes, limits: dict[str, int], expected: int | None) -> None:
        assert status_of(bytewise(data), limits) == status_of([data], limits)
