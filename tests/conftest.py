"""Shared fixtures: a factory for real server processes, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .helpers import ServerProcess


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """``start_server("tests.apps:Echo", "--max-body-size", "10")`` -> a running ServerProcess."""
    started: list[ServerProcess] = []

    def start(*args: object, **kwargs: object) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            try:
                server.stop(timeout=15)
            except Exception:
                server.kill()
