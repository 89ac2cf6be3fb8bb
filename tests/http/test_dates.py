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
