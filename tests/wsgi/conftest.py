"""Servers for the WSGI tests: each module's tests run against both modes.

``pool``: the application in a thread pool (``--threads 4``); ``loop``: on the event loop
(``--threads 0``). One server per mode per test module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..helpers import ServerProcess

APP = "tests.wsgi.apps:app"
MODES = {"pool": "4", "loop": "0"}


@pytest.fixture(scope="module", params=list(MODES))
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The test apps, 64 MiB bodies allowed, short send timeout for the disconnect tests."""
    with ServerProcess(
        APP,
        "--threads",
        MODES[request.param],
        "--max-body-size",
        str(64 * 1024 * 1024),
        "--graceful-timeout",
        "3",
    ) as proc:
        proc.mode = request.param  # type: ignore[attr-defined]
        yield proc
