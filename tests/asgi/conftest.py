"""One server per module for the ASGI tests: starting a process per test would be most of the time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import ServerProcess


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test apps write what they saw after the client left."""
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def served_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    return path


@pytest.fixture(scope="module")
def raw_server(marks: Path, served_file: Path) -> Iterator[ServerProcess]:
    """tests.asgi.apps:raw on one worker, with the lifespan on."""
    env = {"PEREGRINE_TEST_MARKS": str(marks), "PEREGRINE_TEST_FILE": str(served_file)}
    with ServerProcess(
        "tests.asgi.apps:raw", "--lifespan", "on", "--max-body-size", "100000", env=env
    ) as server:
        yield server
