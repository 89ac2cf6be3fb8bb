"""The grammar of a chunk-size line (RFC 9112 §7.1), judged a byte at a time.

``chunk-size *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF``

llhttp refuses the optional whitespace (BWS) the RFC allows around extensions, and reports its
verdict on a line only as the bytes reach it. The request parser therefore holds a chunk-size
line back until it is whole, judges it here, and gives llhttp the line without its BWS. Judging
byte by byte, with the state kept between reads, tells *where* a line first goes wrong: that is
what lets a syntax error and the extension limit be weighed in byte order, the same however the
line was split into reads (see ``RequestParser._take_chunk_line``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["CR", "END", "ERROR", "START", "advance", "normalize"]

# states of the scan
START: Final = 0  # nothing yet: a hex digit must come
_DIGITS = 1  # in the chunk size
_AFTER_QUOTED = 2  # after a quoted value: ";", BWS or the line end
_BWS = 3  # whitespace after the size or a value: more of it, or ";"
_SEMI = 4  # after ";" (and BWS): a name must come
_NAME = 5  # in a name
_NAME_BWS = 6  # whitespace after a name: more of it, "=" or ";"
_EQUALS = 7  # after "=" (and BWS): a token or a quoted string must come
_TOKEN_VALUE = 8  # in a token value
_QUOTED = 9  # in a quoted string
_QUOTED_PAIR = 10  # after a backslash in a quoted string
CR: Final = 11  # after the CR that ends the line
END: Final = 12  # the line is complete (CRLF)
ERROR: Final = 13  # not a chunk-size line; stays so

_HEX = b"0123456789abcdefABCDEF"
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WS = b" \t"
_QDTEXT = b"\t !" + bytes(range(0x23, 0x5C)) + bytes(range(0x5D, 0x7F)) + bytes(range(0x80, 256))
_QUOTED_PAIR_CHARS = b"\t " + bytes(range(0x21, 0x7F)) + bytes(range(0x80, 256))


def _row(*moves: tuple[bytes, int]) -> bytes:
    row = bytearray([ERROR]) * 256
    for chars, state in moves:
        for char in chars:
            row[char] = state
    return bytes(row)


_LINE_END = (b"\r", CR)
# _TABLE[state][byte] is the next state
_TABLE = (
    _row((_HEX, _DIGITS)),  # START
    _row((_HEX, _DIGITS), (b";", _SEMI), (_WS, _BWS), _LINE_END),  # _DIGITS
    _row((b";", _SEMI), (_WS, _BWS), _LINE_END),  # _AFTER_QUOTED
    _row((_WS, _BWS), (b";", _SEMI)),  # _BWS: "0 <CRLF>" and "5;a=1 <CRLF>" stay refused
    _row((_WS, _SEMI), (_TCHAR, _NAME)),  # _SEMI
    _row((_TCHAR, _NAME), (b"=", _EQUALS), (_WS, _NAME_BWS), (b";", _SEMI), _LINE_END),  # _NAME
    _row((_WS, _NAME_BWS), (b"=", _EQUALS), (b";", _SEMI)),  # _NAME_BWS
    _row((_WS, _EQUALS), (_TCHAR, _TOKEN_VALUE), (b'"', _QUOTED)),  # _EQUALS
    _row((_TCHAR, _TOKEN_VALUE), (b";", _SEMI), (_WS, _BWS), _LINE_END),  # _TOKEN_VALUE
    _row((_QDTEXT, _QUOTED), (b"\\", _QUOTED_PAIR), (b'"', _AFTER_QUOTED)),  # _QUOTED
    _row((_QUOTED_PAIR_CHARS, _QUOTED)),  # _QUOTED_PAIR
    _row((b"\n", END)),  # CR
    _row(),  # END: nothing may follow
    _row(),  # ERROR
)


def advance(state: int, data: bytes, start: int, stop: int) -> tuple[int, int]:
    """The state after ``data[start:stop]``, scanned from ``state`` (:data:`START` for a line),
    and where the scan stopped; :data:`END` after the line's CRLF.

    The scan stops just past the first byte that cannot continue a chunk-size line (the state is
    then :data:`ERROR`, which no byte can leave): the bytes after it are not looked at, however
    many there are. Otherwise it stops at ``stop``.
    """
    # (``data`` is bytes, not bytes | bytearray: compiled, indexing it is then a C read, not a
    # generic lookup that boxes the byte, ~10x fewer instructions per byte)
    table = _TABLE
    for i in range(start, stop):
        state = table[state][data[i]]
        if state == 13:  # ERROR (a literal: the interpreted build would look the name up)
            return state, i + 1
    return state, stop


def normalize(line: bytes) -> bytes:
    """A complete, valid chunk-size line without its BWS: the form llhttp accepts."""
    if 32 not in line and 9 not in line:
        return line
    out = bytearray()
    table = _TABLE
    state = START
    for byte in line:
        # whitespace is BWS everywhere but inside a quoted string
        if (byte != 32 and byte != 9) or state == _QUOTED or state == _QUOTED_PAIR:
            out.append(byte)
        state = table[state][byte]
    return bytes(out)
