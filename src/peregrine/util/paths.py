"""From a raw request target to path segments, and containment checks. No socket I/O.

The engine gives handlers both ``req.path`` (already percent-decoded) and
``req.raw_path`` (the bytes as sent). Static file serving decodes the raw form
itself, one segment at a time, because by the time ``%2f`` has become ``/`` or
``%00`` has become a NUL it is too late to tell a separator the client typed
from one it smuggled in. A segment is rejected if, once decoded, it

- contains ``/``, ``\\`` or NUL (a separator or terminator in disguise),
- is ``.`` or ``..`` (in any spelling: ``%2e%2e`` decodes to ``..`` first),
- starts with ``.`` while hidden files are not shown,
- is not valid UTF-8, or (on Windows) contains ``:`` or ends in ``.`` or space,
  which Windows would silently reinterpret.

Whatever survives is opened beneath the root by :mod:`.beneath`, which uses
:func:`is_within` to check where a symlink inside the tree leads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

from ..http.errors import ProtocolError
from ..http.target import split_absolute_form

__all__ = [
    "BadPath",
    "RequestPath",
    "is_within",
    "parse_prefix",
    "quote_segments",
    "split_target",
    "split_target_tuple",
]

_HEX = frozenset(b"0123456789abcdefABCDEF")
_WINDOWS = os.name == "nt"
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)


class BadPath(Exception):
    """A request path that cannot name a file under the root; ``status`` is the answer to give."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RequestPath:
    """A request target split into decoded segments.

    ``segments`` has no empty entries (repeated slashes collapse, as in nginx);
    ``trailing_slash`` records whether the path ended with ``/``. A query
    string, if the target has one, is dropped (``req.query_string`` has it).
    """

    segments: tuple[str, ...]
    trailing_slash: bool


def _percent_decode(segment: bytes) -> bytes:
    """Strictly decode %XX escapes: a ``%`` not followed by two hex digits is an error."""
    if b"%" not in segment:
        return segment
    first, *rest = segment.split(b"%")
    out = bytearray(first)
    for part in rest:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise BadPath(400, "malformed percent-encoding")
        out.append(int(part[:2], 16))
        out += part[2:]
    return bytes(out)


def split_target(raw_target: bytes, show_hidden: bool = False) -> RequestPath:
    """Split and decode a raw request target (as sent on the request line).

    Raises :class:`BadPath` (400 for malformed input, 404 for anything that
    could only name something outside the served tree or hidden).
    """
    return RequestPath(*split_target_tuple(raw_target, show_hidden))


def split_target_tuple(
    raw_target: bytes, show_hidden: bool = False
) -> tuple[tuple[str, ...], bool]:
    """:func:`split_target` as a plain ``(segments, trailing_slash)`` pair (cheaper, for each request)."""
    if raw_target[:1] == b"/" and not _WINDOWS:
        # Fast path for the common plain path, checked on the decoded text:
        # `in` on str is a cheap operator, where every bytes method call costs
        # ~1,000 instructions. UTF-8 never uses the byte "/" inside a
        # multi-byte character, so decoding the whole path accepts exactly
        # what decoding segment by segment does. No "%", no segment starting
        # with "." and no NUL or backslash means none of the checks below can
        # fire; a "?" or "#" (a query the parser left in) takes the long way.
        try:
            text = raw_target.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if text and not (
            "%" in text
            or "/." in text
            or "\\" in text
            or "\x00" in text
            or "?" in text
            or "#" in text
        ):
            return tuple(filter(None, text.split("/"))), text[-1] == "/"
    target = raw_target
    if not target.startswith(b"/"):
        # "GET http://host/path HTTP/1.1" is legal (RFC 9112 section 3.2.2); only the path
        # matters here, taken as the parser takes it
        try:
            target = split_absolute_form(target)[0]
        except ProtocolError:
            raise BadPath(400, "request target is not an absolute path") from None
    target = target.partition(b"?")[0].partition(b"#")[0]
    # .find() rather than "in": on CPython 3.11 `bytes in bytes` first tries the needle as an
    # int, raising and clearing a TypeError (~2,000 instructions per test, every request).
    if target.find(b"\\") >= 0:
        raise BadPath(404, "backslash in path")
    if (
        target.find(b"%") < 0
        and target.find(b"/.") < 0
        and target.find(b"\x00") < 0
        and not _WINDOWS
    ):
        # Fast path for the common plain path: no escapes and no segment
        # starting with a dot means none of the checks below can fire.
        try:
            names = [s.decode("utf-8") for s in target.split(b"/") if s]
        except UnicodeDecodeError:
            raise BadPath(404, "path is not UTF-8") from None
        return tuple(names), target.endswith(b"/")
    segments: list[str] = []
    for raw_segment in target.split(b"/"):
        if not raw_segment:
            continue
        decoded = _percent_decode(raw_segment)
        if b"\x00" in decoded:
            raise BadPath(400, "NUL in path")
        if b"/" in decoded or b"\\" in decoded:
            raise BadPath(404, "encoded separator in path")
        if decoded in (b".", b".."):
            raise BadPath(404, "dot segment in path")
        if decoded.startswith(b".") and not show_hidden:
            raise BadPath(404, "hidden file")
        try:
            name = decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPath(404, "path is not UTF-8") from None
        if _WINDOWS and (
            ":" in name
            or name.endswith((".", " "))
            or name.split(".")[0].lower() in _WINDOWS_DEVICES
        ):
            raise BadPath(404, "name Windows would reinterpret")
        segments.append(name)
    return tuple(segments), target.endswith(b"/")


def parse_prefix(prefix: str) -> tuple[str, ...]:
    """Split a mount prefix such as ``/static/`` into its segments (``("static",)``)."""
    if not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/': {prefix!r}")
    return tuple(s for s in prefix.split("/") if s)


def quote_segments(segments: tuple[str, ...] | list[str]) -> str:
    """Percent-encode segments back into an absolute path (``/a/b%20c``).

    Used for redirect targets, which are built from the validated segments
    rather than echoed from the request: ``//evil.example`` must never become a
    ``Location``.
    """
    return "/" + "/".join(quote(s, safe="!$&'()*+,;=:@-._~") for s in segments)


def is_within(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or below it. Both must be absolute and already resolved."""
    path = os.path.normcase(path)
    root = os.path.normcase(root)
    if path == root:
        return True
    # Compare with a trailing separator so /srv/www-secret is not inside /srv/www.
    return path.startswith(root if root.endswith(os.sep) else root + os.sep)
