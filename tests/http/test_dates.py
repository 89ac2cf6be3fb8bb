"""The Date header's format (IMF-fixdate, RFC 9110 section 5.6.7)."""

from __future__ import annotations

import pytest

from peregrine.http.dates import date_line, http_date


@pytest.mark.parametrize(
    "timestamp, text",
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784111777, "Sun, 06 Nov 1994 08:49:37 GMT"),  # the RFC's own example
        (784111777.999, "Sun, 06 Nov 1994 08:49:37 GMT"),  # fractions are cut, not rounded
        (951782400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ],
)
def test_http_date(timestamp: float, text: str) -> None:
    assert http_date(timestamp) == text


def test_date_line_is_one_header_line() -> None:
    assert date_line(784111777) == b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
