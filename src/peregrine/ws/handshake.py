"""The opening handshake (RFC 6455 section 4.2): validate a client's upgrade request and
compute the server's answer. No I/O: headers in, a decision and response headers out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .deflate import DeflateParams, negotiate

__all__ = [
    "GUID",
    "HandshakeError",
    "Accepted",
    "accept_key",
    "parse_extensions",
    "select_subprotocol",
    "check_request",
]

#: The fixed GUID appended to the client's key (RFC 6455 section 1.3).
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: header fields as ``(name, value)`` pairs, text or bytes
HeaderPairs = Iterable[tuple["str | bytes", "str | bytes"]]


class HandshakeError(Exception):
    """The request cannot be upgraded: answer with `status` (+ `headers`) instead of 101."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid handshake and what was negotiated."""

    accept: str
    subprotocol: str | None = None
    deflate: DeflateParams | None = None

    def headers(self) -> list[tuple[str, str]]:
        """Headers of the 101 response."""
        out = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", self.accept),
        ]
        if self.subprotocol is not None:
            out.append(("Sec-WebSocket-Protocol", self.subprotocol))
        if self.deflate is not None:
            out.append(("Sec-WebSocket-Extensions", self.deflate.response_header()))
        return out


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID))."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _text(value: str | bytes) -> str:
    # Header bytes are ISO-8859-1 on the wire; anything non-ASCII fails the checks below.
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def _tokens(values: Iterable[str]) -> list[str]:
    """Elements of comma-separated header values (the #rule), lowercased, empties dropped."""
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OWS = re.compile(r"[ \t]*")
_UNESCAPE = re.compile(r"\\(.)")


def _after_ows(text: str, pos: int) -> int:
    """The position after the spaces and tabs at ``pos`` (``_OWS`` matches the empty string)."""
    match = _OWS.match(text, pos)
    return match.end() if match is not None else pos


def parse_extensions(values: Iterable[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse Sec-WebSocket-Extensions values (RFC 6455 section 9.1) into
    [(name, [(param, value or None), ...]), ...] in order. Raises ValueError if malformed.
    """
    result: list[tuple[str, list[tuple[str, str | None]]]] = []
    for text in values:
        pos = 0
        end = len(text)
        while True:
            pos = _after_ows(text, pos)
            if pos < end and text[pos] == ",":  # empty list element
                pos += 1
                continue
            if pos >= end:
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"expected an extension name at {pos}")
            name = m.group()
            params: list[tuple[str, str | None]] = []
            pos = _after_ows(text, m.end())
            while pos < end and text[pos] == ";":
                pos = _after_ows(text, pos + 1)
                m = _TOKEN.match(text, pos)
                if m is None:
                    raise ValueError(f"expected a parameter name at {pos}")
                pname = m.group()
                value: str | None = None
                pos = _after_ows(text, m.end())
                if pos < end and text[pos] == "=":
                    pos = _after_ows(text, pos + 1)
                    m = _TOKEN.match(text, pos)
                    if m is not None:
                        value = m.group()
                    else:
                        m = _QUOTED.match(text, pos)
                        if m is None:
                            raise ValueError(f"expected a parameter value at {pos}")
                        value = _UNESCAPE.sub(r"\1", m.group(1))
                        # Section 9.1: a quoted value must still be a token once unquoted.
                        if not _TOKEN.fullmatch(value):
                            raise ValueError("quoted parameter value is not a token")
                    pos = _after_ows(text, m.end())
                params.append((pname, value))
            result.append((name, params))
            if pos >= end:
                break
            if text[pos] != ",":
                raise ValueError(f"unexpected {text[pos]!r} at {pos}")
            pos += 1
    return result


def select_subprotocol(offered: Iterable[str], supported: Sequence[str] | None) -> str | None:
    """The first of `supported` (the server's preference order) that the client offered."""
    if not supported:
        return None
    wanted = {p.strip() for v in offered for p in v.split(",") if p.strip()}
    for proto in supported:
        if proto in wanted:
            return proto
    return None


# RFC 9110 7.8: a sender of Upgrade must also send Connection with the "upgrade" option.
_VERSION_HEADERS = [
    ("Sec-WebSocket-Version", "13"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
]


def check_request(
    method: str,
    http_version: str,
    headers: HeaderPairs,
    *,
    subprotocols: Sequence[str] | None = None,
    compression: bool = True,
    window_bits: int = 12,
    server_no_context_takeover: bool = False,
) -> Accepted:
    """Validate an upgrade request and negotiate; raise HandshakeError to refuse it.

    Refusals: 426 (with `Sec-WebSocket-Version: 13`) for a missing or unsupported
    version, 400 for anything else that is wrong. A malformed Sec-WebSocket-Extensions
    header only turns compression off: the connection still works without it.
    """
    pairs = [(_text(k), _text(v)) for k, v in headers]
    if method != "GET":
        raise HandshakeError(400, "WebSocket handshake requires GET")
    if http_version in ("0.9", "1.0"):
        raise HandshakeError(400, "WebSocket handshake requires HTTP/1.1")
    if "websocket" not in _tokens(_values(pairs, "upgrade")):
        raise HandshakeError(400, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(_values(pairs, "connection")):
        raise HandshakeError(400, "missing Connection: upgrade")
    versions = _values(pairs, "sec-websocket-version")
    if [v.strip() for v in versions] != ["13"]:
        raise HandshakeError(426, "unsupported WebSocket version", _VERSION_HEADERS)
    keys = _values(pairs, "sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError(400, "expected one Sec-WebSocket-Key")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "invalid Sec-WebSocket-Key")

    subprotocol = select_subprotocol(_values(pairs, "sec-websocket-protocol"), subprotocols)
    deflate = None
    if compression:
        try:
            offers = parse_extensions(_values(pairs, "sec-websocket-extensions"))
        except ValueError:
            offers = []
        deflate = negotiate(
            offers, window_bits=window_bits, server_no_context_takeover=server_no_context_takeover
        )
    return Accepted(accept=accept_key(key), subprotocol=subprotocol, deflate=deflate)
