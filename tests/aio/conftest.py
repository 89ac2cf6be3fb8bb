"""Fixtures of the connection tests: shared real servers (Engine app) and the in-process loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..helpers import ServerProcess
from .fakes import ClockLoop, clock_loop

APP = "tests.apps:Engine"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """Default settings (keep-alive 5 s), shared by the tests that do not change them."""
    with ServerProcess(APP) as proc:
        yield proc


@pytest.fixture(scope="module")
def short() -> Iterator[ServerProcess]:
    """Short timeouts, for the timeout tests."""
    with ServerProcess(
        APP,
        "--keep-alive-timeout",
        "0.5",
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--send-timeout",
        "1",
    ) as proc:
        yield proc


@pytest.fixture
def loop() -> Iterator[ClockLoop]:
    """An asyncio loop whose clock the test moves (``loop.advance``); fails on loop errors."""
    with clock_loop() as hand_moved:
        yield hand_moved
