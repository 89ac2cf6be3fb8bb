"""The application's side of a connection, end to end: `ws.ping()`, `ws.closed` and
`ws.close_code`, `drain()` once the client is gone, async and failing `handle_ws_disconn`,
and a close that comes while an async hook runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from ..helpers import ServerProcess
from .test_websocket_e2e import CLOSE, PING, TEXT, RawClient


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(
        "tests.ws.apps:StateApp",
        "--ws-ping-interval",
        "0",
        "--graceful-timeout",
        "1",
    ) as proc:
        yield proc


def _events(server: ServerProcess, wanted: str, timeout: float = 4.0) -> str:
    """The app's log once it contains `wanted` (asked over a fresh connection)."""
    deadline = time.monotonic() + timeout
    while True:
        client = RawClient(server, "/events")
        client.send(TEXT, b"events")
        frame = client.recv(5)
        client.close()
        assert frame is not None and frame[0] == TEXT, frame
        log = frame[1].decode()
        if wanted in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


class TestApplicationSide:
    def test_app_ping(self, server: ServerProcess) -> None:
        client = RawClient(server, "/ping")
        client.send(TEXT, b"ping")
        assert client.recv(5) == (PING, b"app")
        client.close()

    def test_closed_and_close_code(self, server: ServerProcess) -> None:
        client = RawClient(server, "/state")
        client.send(TEXT, b"state")
        frame = client.recv(5)
        assert frame is not None and json.loads(frame[1]) == {"closed": False, "close_code": None}
        client.send(TEXT, b"close")
        frame = client.recv(5)
        assert frame is not None and frame[0] == CLOSE
        assert frame[1] == (4000).to_bytes(2, "big") + b"app"
        client.send(CLOSE, frame[1][:2])
        assert client.recv(5) is None
        client.close()
        log = _events(server, "disconn /state ")
        assert "after-close True 4000" in log, log
        assert "disconn /state 4000 True 4000" in log, log

    def test_close_code_of_a_vanished_client(self, server: ServerProcess) -> None:
        client = RawClient(server, "/vanish")
        client.close()
        log = _events(server, "disconn /vanish ")
        assert "disconn /vanish 1006 True 1006" in log, log

    def test_async_disconn_that_raises(self, server: ServerProcess) -> None:
        client = RawClient(server, "/raise")
        client.send(TEXT, b"state")
        assert client.recv(5) is not None
        client.close()
        log = _events(server, "disconn /raise ")
        assert "disconn /raise 1006 True 1006" in log, log
        assert server.wait_for_line("boom from handle_ws_disconn", 3) is not None
        # the worker goes on serving
        other = RawClient(server, "/after")
        other.send(TEXT, b"state")
        assert other.recv(5) is not None
        other.close()
