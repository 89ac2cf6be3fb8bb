"""What both process models share to start a worker: pinning and the one-line error."""

from __future__ import annotations

import os

import pytest

from peregrine.process.startup import one_line, pin_to_core


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ValueError("bad\n  value\tthere"), "ValueError: bad value there"),
        (OSError(98, "Address already in use"), "OSError: [Errno 98] Address already in use"),
        (KeyError("x"), "KeyError: 'x'"),
    ],
)
def test_one_line_names_the_type_on_one_line(exc: BaseException, line: str) -> None:
    assert one_line(exc) == line


def test_one_line_is_at_most_500_characters() -> None:
    assert len(one_line(RuntimeError("x" * 2000))) == 500


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_pin_to_core_wraps_around_the_cores_given() -> None:
    allowed = os.sched_getaffinity(0)
    cores = sorted(allowed)
    expected = cores[(len(cores) + 1) % len(cores)]  # one past the end wraps round
    try:
        assert pin_to_core(len(cores) + 1, cores) == expected
        assert os.sched_getaffinity(0) == {expected}
    finally:
        os.sched_setaffinity(0, allowed)
