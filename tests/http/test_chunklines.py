"""The chunk-size line grammar (RFC 9112 §7.1.1), scanned a byte at a time."""

from __future__ import annotations

import pytest

from peregrine.http import chunklines

# (id, line, the line llhttp gets once the BWS is taken out)
VALID = [
    ("size-only", b"5\r\n", b"5\r\n"),
    ("last-chunk", b"0\r\n", b"0\r\n"),
    ("sixteen-digits", b"ffffffffffffffff\r\n", b"ffffffffffffffff\r\n"),
    ("name", b"5;a\r\n", b"5;a\r\n"),
    ("name-and-token", b"5;a=1\r\n", b"5;a=1\r\n"),
    ("two-extensions", b"5;a=1;b\r\n", b"5;a=1;b\r\n"),
    ("bws-around-semicolon", b"5 ; a\r\n", b"5;a\r\n"),
    ("bws-around-equals", b"5;a = 1\r\n", b"5;a=1\r\n"),
    ("tabs", b"5\t;\ta\t=\t1\r\n", b"5;a=1\r\n"),
    ("quoted-with-space-and-semicolon", b'5;q="x ; y"\r\n', b'5;q="x ; y"\r\n'),
    ("quoted-pair", b'5;q="a\\"b"\r\n', b'5;q="a\\"b"\r\n'),
    ("quoted-obs-text", b'5;q="\xe9"\r\n', b'5;q="\xe9"\r\n'),
    ("bws-after-quoted", b'5;q="x" ;b\r\n', b'5;q="x";b\r\n'),
]

# (id, line) refused: where the byte order verdict comes from
INVALID = [
    ("empty", b"\r\n"),
    ("not-hex", b"zz\r\n"),
    ("sign", b"+5\r\n"),
    ("size-then-space", b"0 \r\n"),
    ("junk-after-space", b"5 x\r\n"),
    ("junk-after-size", b"5x\r\n"),
    ("semicolon-alone", b"5;\r\n"),
    ("empty-name", b"5;;a\r\n"),
    ("empty-value", b"5;a=\r\n"),
    ("name-starts-with-equals", b"5;=b\r\n"),
    ("trailing-space", b"5;a=1 \r\n"),
    ("space-in-name", b"5;a b\r\n"),
    ("two-equals", b"5;a=b=c\r\n"),
    ("text-after-quote", b'5;a="x"y\r\n'),
    ("unclosed-quote", b'5;a="x\r\n'),
    ("nul", b"5;a\x00\r\n"),
    ("bare-lf", b"5\n"),
    ("cr-without-lf", b"5\rx\r\n"),
    ("obs-text-in-name", b"5;\xe9\r\n"),
]


def scan_whole(line: bytes) -> int:
    return chunklines.advance(chunklines.START, line, 0, len(line))[0]


def scan_bytewise(line: bytes) -> int:
    state = chunklines.START
    for i in range(len(line)):
        state = chunklines.advance(state, line, i, i + 1)[0]
    return state


@pytest.mark.parametrize("line, normal", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_line_ends_complete_however_scanned(line: bytes, normal: bytes) -> None:
    assert scan_whole(line) == chunklines.END
    assert scan_bytewise(line) == chunklines.END
    for i in range(len(line) + 1):
        state = chunklines.advance(chunklines.START, line, 0, i)[0]
        assert chunklines.advance(state, line, i, len(line))[0] == chunklines.END


@pytest.mark.parametrize("line, normal", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_normalize_takes_out_bws_only(line: bytes, normal: bytes) -> None:
    assert chunklines.normalize(line) == normal
    assert scan_whole(normal) == chunklines.END


@pytest.mark.parametrize("line", [c[1] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_line_is_an_error_however_scanned(line: bytes) -> None:
    assert scan_whole(line) == chunklines.ERROR
    assert scan_bytewise(line) == chunklines.ERROR


def test_an_error_stays_an_error() -> None:
    state = chunklines.advance(chunklines.START, b"5 x", 0, 3)[0]
    assert chunklines.advance(state, b";a=1\r\n", 0, 6)[0] == chunklines.ERROR


def test_a_line_still_arriving_is_neither_complete_nor_an_error() -> None:
    for prefix in (b"5", b"5 ", b"5;", b"5;a", b"5;a =", b'5;a="x', b"5;a\r"):
        assert scan_whole(prefix) not in (chunklines.END, chunklines.ERROR), prefix


# (id, line, where the scan stops: just past the byte that refuses the line)
STOPS_AT_THE_REFUSED_BYTE = [
    ("nul-after-semicolon", b"1;\x00" + b"a" * 40_000, 3),
    ("junk-after-size", b"5x" + b"a" * 40_000, 2),
    ("not-hex", b"z" + b"0" * 40_000, 1),
    ("space-in-name", b"5;a b" + b" " * 40_000, 5),
]


@pytest.mark.parametrize(
    "line, stop",
    [c[1:] for c in STOPS_AT_THE_REFUSED_BYTE],
    ids=[c[0] for c in STOPS_AT_THE_REFUSED_BYTE],
)
def test_the_scan_stops_at_the_byte_that_refuses_the_line(line: bytes, stop: int) -> None:
    """The bytes after a refused one are not looked at: a 40 KB line refused at its third byte
    costs three bytes of scanning, not 40 KB (nor the extension limit's 16 KB)."""
    assert chunklines.advance(chunklines.START, line, 0, len(line)) == (chunklines.ERROR, stop)
    # scanned from any split: it stops at the same byte
    for i in range(stop):
        state, end = chunklines.advance(chunklines.START, line, 0, i)
        assert end == i
        assert chunklines.advance(state, line, i, len(line)) == (chunklines.ERROR, stop)


def test_a_valid_line_is_scanned_to_its_end() -> None:
    line = b"5;a=1\r\n"
    assert chunklines.advance(chunklines.START, line, 0, len(line)) == (chunklines.END, len(line))
