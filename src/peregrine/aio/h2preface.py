"""How an HTTP/1 connection turns into HTTP/2: the h2c preface in its first bytes, or ALPN ``h2``.

Apart from ``aio/h2connection.py`` so that starting a server does not import the HTTP/2 machinery
(the asyncio protocol, frames, HPACK, the stream state machine): that import was about a third of
``import peregrine.server``, paid by every server process, while only a connection that turns
out to be HTTP/2 needs it (:func:`take_over` imports it then, once).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..http2.frames import PREFACE


def sniff_preface(conn: Any, data: bytes) -> bytes:
    """Called by the HTTP/1 connection with its first bytes while they may be the h2c preface.

    Returns the bytes the HTTP/1 parser should see (none while the preface is still possible,
    or after the connection went to HTTP/2).
    """
    seen: bytes = conn.h2_preface + data
    n = min(len(seen), len(PREFACE))
    if seen[:n] != PREFACE[:n]:
        conn.h2_preface = None
        return seen
    if n < len(PREFACE):
        conn.h2_preface = seen  # part of the preface so far: wait for the rest
        return b""
    conn.h2_preface = None
    take_over(conn, seen)
    return b""


def take_over(conn: Any, data: bytes) -> None:
    """Move an HTTP/1 connection's transport to a new HTTP/2 protocol (see aio/h2connection.py)."""
    from .h2connection import take_over as h2_take_over

    h2_take_over(conn, data)


def negotiated_h2(transport: asyncio.BaseTransport) -> bool:
    """True when TLS ALPN picked ``h2`` on this transport."""
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
