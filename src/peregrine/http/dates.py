"""HTTP-dates (RFC 9110 §5.6.7): the ``Date`` line, and every other date the server writes.

One formatter for all of them: the ``Date`` header (refreshed once a second, see
``ServerState.start_clock``) and ``Last-Modified`` of static files. Parsing lives with the
conditional requests that need it (``util/conditional.py``).
"""

from __future__ import annotations

import functools
import time

# Not email.utils.formatdate: the email package imports socket, and this package does no I/O.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: The range of timestamps an IMF-fixdate (four-digit years) can show:
#: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP = -62135596800
MAX_TIMESTAMP = 253402300799


# Cached: the same files' modification times are formatted over and over.
@functools.lru_cache(maxsize=1024)
def http_date(timestamp: float) -> str:
    """Format a Unix timestamp as an IMF-fixdate: ``Sun, 06 Nov 1994 08:49:37 GMT``.

    English names whatever the locale. Timestamps outside the years 1 to 9999 (a file's mtime
    can be anything) are clamped to that range.
    """
    t = time.gmtime(min(max(timestamp, MIN_TIMESTAMP), MAX_TIMESTAMP))
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {MONTH_NAMES[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def date_line(timestamp: float) -> bytes:
    """The complete ``Date: ...\\r\\n`` header line for ``timestamp``."""
    return b"Date: " + http_date(int(timestamp)).encode("ascii") + b"\r\n"
