"""Validators and conditional requests (RFC 9110, sections 8.8 and 13). No I/O.

- :func:`make_etag` derives a strong ETag from a file's ``stat`` result, so it
  changes whenever the file's size or modification time does.
- :func:`parse_http_date` parses HTTP-dates (IMF-fixdate, plus the two obsolete
  forms recipients must accept); :func:`http_date` (from ``http/dates.py``) formats them.
- :func:`evaluate_preconditions` applies If-Match, If-Unmodified-Since,
  If-None-Match and If-Modified-Since in the order RFC 9110 section 13.2.2
  prescribes and says whether to answer 304, 412 or carry on.
- :func:`if_range_allows` decides whether a Range request may be honoured.
"""

from __future__ import annotations

import calendar
import os
import re

# formatting is shared with the Date header; exported from here too, next to its parser
from ..http.dates import MONTH_NAMES, http_date

__all__ = [
    "evaluate_preconditions",
    "http_date",
    "if_range_allows",
    "make_etag",
    "parse_etags",
    "parse_http_date",
]

_MONTH_NUMBER = {name.lower(): i + 1 for i, name in enumerate(MONTH_NAMES)}


def make_etag(st: os.stat_result, suffix: str = "") -> str:
    """A strong ETag for a file: its modification time (ns) and size, in hex.

    Like nginx's ``"mtime-size"`` but with nanoseconds, so two writes within the
    same second still give different tags. ``suffix`` tells apart variants
    (such as a precompressed sibling) that must never share a tag.
    """
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}{suffix}"'  # cheaper than the f-string


# Sun, 06 Nov 1994 08:49:37 GMT
_IMF_FIXDATE = re.compile(
    r"[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT", re.ASCII
)
# Sunday, 06-Nov-94 08:49:37 GMT
_RFC850_DATE = re.compile(
    r"[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT", re.ASCII
)
# Sun Nov  6 08:49:37 1994
_ASCTIME_DATE = re.compile(
    r"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})", re.ASCII
)


def parse_http_date(text: str) -> int | None:
    """Parse an HTTP-date into a Unix timestamp (whole seconds); None if it is not one."""
    text = text.strip()
    m = _IMF_FIXDATE.fullmatch(text)
    if m:
        day, mon, year, hh, mm, ss = m.groups()
    else:
        m = _RFC850_DATE.fullmatch(text)
        if m:
            day, mon, yy, hh, mm, ss = m.groups()
            # Two-digit years: RFC 9110 says a year that would be more than 50
            # years in the future is in the past; with today's dates that is a
            # fixed pivot at 70.
            year = str(2000 + int(yy) if int(yy) < 70 else 1900 + int(yy))
        else:
            m = _ASCTIME_DATE.fullmatch(text)
            if not m:
                return None
            mon, day, hh, mm, ss, year = m.groups()
    month = _MONTH_NUMBER.get(mon.lower())
    if month is None:
        return None
    d, y, h, mi, s = int(day), int(year), int(hh), int(mm), int(ss)
    # Reject impossible values rather than let timegm() roll them over; year 0
    # is a valid match of 4DIGIT, but no year of the calendar (timegm raises).
    if not (
        y >= 1 and 1 <= d <= calendar.monthrange(y, month)[1] and h < 24 and mi < 60 and s < 61
    ):
        return None
    return calendar.timegm((y, month, d, h, mi, min(s, 59)))


def parse_etags(value: str) -> list[tuple[bool, str]] | None:
    """Parse a comma-separated list of entity-tags into ``(weak, opaque_tag)`` pairs.

    ``opaque_tag`` keeps its double quotes. Returns None if the value is not a
    valid list (``*`` is handled by the callers, before this).
    """
    tags: list[tuple[bool, str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t,":
            i += 1
            continue
        weak = False
        if value.startswith("W/", i):
            weak = True
            i += 2
        if i >= n or value[i] != '"':
            return None
        # etagc allows commas, so split on quotes, not on commas.
        end = value.find('"', i + 1)
        if end < 0:
            return None
        tags.append((weak, value[i : end + 1]))
        i = end + 1
        # Only whitespace may separate a tag from the next comma.
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] != ",":
            return None
    return tags


def _opaque(etag: str) -> str:
    return etag[2:] if etag.startswith("W/") else etag


def _matches(value: str, etag: str, strong: bool) -> bool:
    """True if the list ``value`` (If-Match, If-None-Match) is ``*`` or has a tag matching ``etag``.

    The strong comparison (If-Match) needs both tags strong and equal; the
    weak one (If-None-Match) compares the opaque tags alone (RFC 9110 section 8.8.3.2).
    """
    if value.strip() == "*":
        return True
    tags = parse_etags(value)
    if not tags:
        return False
    if strong:
        return not etag.startswith("W/") and any(not weak and tag == etag for weak, tag in tags)
    mine = _opaque(etag)
    return any(tag == mine for _, tag in tags)


def evaluate_preconditions(
    method: str,
    etag: str,
    last_modified: int,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    if_unmodified_since: str | None = None,
) -> int | None:
    """Evaluate the preconditions of a request on an existing representation.

    ``etag`` and ``last_modified`` (whole seconds) are the representation's
    current validators. Returns 304 (Not Modified: answer with headers only),
    412 (Precondition Failed) or None (carry on: serve the representation).
    Order and rules are those of RFC 9110 section 13.2.2.
    """
    safe = method in ("GET", "HEAD")
    # Step 1: If-Match, else step 2: If-Unmodified-Since (ignored when If-Match is present).
    if if_match is not None:
        if not _matches(if_match, etag, strong=True):
            return 412
    elif if_unmodified_since is not None:
        date = parse_http_date(if_unmodified_since)
        if date is not None and last_modified > date:
            return 412
    # Step 3: If-None-Match, else step 4: If-Modified-Since (GET/HEAD only).
    if if_none_match is not None:
        if _matches(if_none_match, etag, strong=False):
            return 304 if safe else 412
    elif if_modified_since is not None and safe:
        date = parse_http_date(if_modified_since)
        if date is not None and last_modified <= date:
            return 304
    return None


def if_range_allows(if_range: str | None, etag: str, last_modified: int, now: float) -> bool:
    """True if a Range request may be honoured given its ``If-Range`` value.

    An entity-tag must match strongly (a weak tag never matches). A date must be
    exactly the Last-Modified date, and that date must be a strong validator:
    at least one second older than ``now`` (RFC 9110 section 8.8.2.2), since a
    file changed twice within one second keeps the same date.
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        tags = parse_etags(value)
        return (
            tags is not None
            and len(tags) == 1
            and not tags[0][0]
            and not etag.startswith("W/")
            and tags[0][1] == etag
        )
    date = parse_http_date(value)
    return date is not None and date == last_modified and int(now) > last_modified
