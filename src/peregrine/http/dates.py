"""The ``Date`` header, formatted once a second rather than once a response."""

from __future__ import annotations

from email.utils import formatdate


def http_date(timestamp: float) -> str:
    """``timestamp`` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)


def date_line(timestamp: float) -> bytes:
    """The complete ``Date: ...\\r\\n`` header line for ``timestamp``."""
    return b"Date: " + http_date(timestamp).encode("ascii") + b"\r\n"
