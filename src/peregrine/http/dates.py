"""The ``Date`` header, formatted once a second rather than once a response."""

from __future__ import annotations

import time

# Not email.utils.formatdate: the email package imports socket, and this package does no I/O.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(timestamp: float) -> str:
    """``timestamp`` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(timestamp)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def date_line(timestamp: float) -> bytes:
    """The complete ``Date: ...\\r\\n`` header line for ``timestamp``."""
    return b"Date: " + http_date(timestamp).encode("ascii") + b"\r\n"
