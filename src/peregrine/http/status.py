"""Status lines, computed once: the hot path looks them up instead of formatting them."""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

#: reason phrase of every status the standard library knows
REASONS: Final[dict[int, str]] = {s.value: s.phrase for s in HTTPStatus}


def reason(status: int) -> str:
    """The standard reason phrase for ``status`` ('' for codes without one)."""
    return REASONS.get(status, "")


def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {reason(status)}\r\n".encode("ascii")


#: ``status -> b"HTTP/1.1 200 OK\r\n"`` for every valid three-digit code
STATUS_LINES: Final[dict[int, bytes]] = {code: _status_line(code) for code in range(100, 600)}


def has_no_body(status: int) -> bool:
    """1xx, 204 and 304 responses never carry a body nor a Content-Length (RFC 9110 §6.4.1)."""
    return status < 200 or status == 204 or status == 304
