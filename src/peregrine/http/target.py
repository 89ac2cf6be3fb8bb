"""Request targets in absolute-form (RFC 9112 §3.2.2): the path and query they name.

One place for the parser (``GET http://host/path HTTP/1.1``) and for static file serving, which
may be handed a raw target that was never through the parser. No I/O.
"""

from __future__ import annotations

from typing import Any

import httptools

from .errors import ProtocolError

__all__ = ["split_absolute_form"]


def split_absolute_form(target: bytes) -> tuple[bytes, bytes]:
    """``(path, query)`` of an ``http`` or ``https`` URI: ``http://h/a?q`` gives ``(b"/a", b"q")``.

    An empty path is ``/``; a fragment is dropped. Raises :class:`ProtocolError` (400) for a
    target that is not such a URI.
    """
    try:
        # Any: httptools' stub says its fields are bytes, but absent ones are None (the
        # compiled build checks the declared type and would raise on None)
        parsed: Any = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise ProtocolError(400, "invalid request target") from None
    if not parsed.schema or parsed.schema.lower() not in (b"http", b"https"):
        raise ProtocolError(400, "invalid request target")
    return parsed.path or b"/", parsed.query or b""
