"""``start_response``: the status and headers of a WSGI response, checked when given.

PEP 3333's rules: a second call is an error unless it carries ``exc_info``; with ``exc_info``
the call replaces the status and headers while nothing has been sent, and re-raises the
application's exception once the head is out (the server then cuts the connection). Headers
are validated at the call, so an invalid one raises inside the application, which then fails
with a 500, never a split response.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from ..http.framing import HeadCache
from ..http.response import Response

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Write = Callable[[bytes], None]


def parse_status(status: Any) -> int:
    """The code of a WSGI status string such as ``"200 OK"`` (the reason phrase is not sent:
    the server sends the standard one)."""
    code = _STATUS_CODES.get(status) if type(status) is str else None
    if code is None:
        code = _parse_status(status)
        if len(_STATUS_CODES) < 1024:
            _STATUS_CODES[status] = code
    return code


_STATUS_CODES: Final[dict[str, int]] = {}


def _parse_status(status: Any) -> int:
    if not isinstance(status, str):
        raise TypeError(f"status must be a str such as '200 OK', got {status!r}")
    code = status[:3]
    if len(status) < 3 or not code.isdigit() or not code.isascii():
        raise ValueError(f"invalid status {status!r}")
    if len(status) > 3 and status[3] != " ":
        raise ValueError(f"invalid status {status!r}")
    if "\r" in status or "\n" in status or "\0" in status:
        raise ValueError(f"status {status!r} contains CR, LF or NUL")
    return int(code)


def body_bytes(chunk: Any) -> bytes:
    """A body chunk as bytes: PEP 3333 allows bytestrings only (bytes-like objects are copied)."""
    if type(chunk) is bytes:
        return chunk
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"WSGI body chunks must be bytes, got {type(chunk).__name__}")


#: the WSGI interface's checked heads (statuses as strings, fields as str pairs)
_HEADS: Final = HeadCache(str, parse_status)  # (Final: compiled, a C static, no dict lookup)


class StartResponse:
    """The ``start_response`` callable of one request (see the module docstring).

    What it returns is its own :meth:`write` (the PEP's ``write()`` callable), which each way
    of running the application defines in a subclass. A method, not a callable stored on the
    object: a closure or bound method of the server's kept here would make a reference cycle
    per request, left for the garbage collector (measured: it ran every few requests).
    """

    __slots__ = ("request", "response", "length", "head_sent")

    def __init__(self, request: Any) -> None:
        self.request = request
        #: the response as the application last set it, or None before the first call
        self.response: Response | None = None
        #: the Content-Length the application declared, or None
        self.length: int | None = None
        #: set by the server once the head is on its way: exc_info then re-raises
        self.head_sent = False

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Write:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.response is not None:
            raise RuntimeError("start_response() called a second time without exc_info")
        if type(headers) is not list:
            raise TypeError(f"headers must be a list of (name, value) tuples, got {headers!r}")
        self.response, self.length = _HEADS.framed(self.request, status, headers)
        return self.write

    def write(self, chunk: bytes) -> None:
        """Send ``chunk`` of the body (the PEP's ``write()``): defined by each subclass."""
        raise NotImplementedError("write() is the server's: StartResponse is subclassed")
