"""Fixtures of the process-model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import LaunchedServer


@pytest.fixture
def launched() -> Iterator[list[LaunchedServer]]:
    """A list to put LaunchedServers in; they are stopped after the test."""
    servers: list[LaunchedServer] = []
    yield servers
    for server in servers:
        if server.proc.poll() is None:
            try:
                server.stop(timeout=15)
            except Exception:
                server.kill()
