"""The one HTTP-date formatter: the Date line and every other date the server writes."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from peregrine.http.dates import date_line, http_date


@pytest.mark.parametrize("timestamp", [0, 784111777, 951782400, 1_700_000_000, 2_000_000_000])
def test_same_as_the_standard_library(timestamp: int) -> None:
    assert http_date(timestamp) == formatdate(timestamp, usegmt=True)


def test_date_line_drops_the_fraction_of_a_second() -> None:
    assert date_line(784111777.999) == b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


def test_clamped_to_four_digit_years() -> None:
    assert http_date(10**17) == "Fri, 31 Dec 9999 23:59:59 GMT"
    assert http_date(-(10**13)) == "Mon, 01 Jan 0001 00:00:00 GMT"


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
