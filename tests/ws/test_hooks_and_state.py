"""The application's side of a connection, end to end: `ws.ping()`, `ws.closed` and
`ws.close_code`, `drain()` once the client is gone, async and failing `handle_ws_disconn`,
and a close that comes while an async hook runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

import peregrine
import peregrine.ws

from ..helpers import ServerProcess
from .test_websocket_e2e import CLOSE, PING, TEXT, RawClient


class StateApp:
    """Text commands: `ping` -> `ws.ping(b"app")`; `state` -> JSON of closed/close_code;
    `close` -> closes with 4000 and reports closed/close_code after it; `drain-later` ->
    waits 0.3 s then awaits `drain()`; `slow` -> waits 1 s then sends `late`;
    `events` -> the log. Paths starting with `/raise` get a disconn hook that raises."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp)

    async def handle_ws_message(self, ws: Any, message: Any) -> None:
        if message == "ping":
            ws.ping(b"app")
        elif message == "state":
            ws.send(json.dumps({"closed": ws.closed, "close_code": ws.close_code}))
        elif message == "close":
            ws.close(4000, "app")
            self.log.append(f"after-close {ws.closed} {ws.close_code}")
        elif message == "drain-later":
            await asyncio.sleep(0.3)
            try:
                await ws.drain()
                self.log.append("drain returned")
            except ConnectionResetError:
                self.log.append(f"drain reset {ws.closed} {ws.close_code}")
        elif message == "slow":
            await asyncio.sleep(1.0)
            ws.send("late")  # the connection is closed by now: a no-op
            self.log.append(f"slow done {ws.closed}")
        elif message == "events":
            ws.send("|".join(self.log))

    async def handle_ws_disconn(self, ws: Any, code: int) -> None:
        await asyncio.sleep(0.01)
        self.log.append(f"disconn {ws.request.path} {code} {ws.closed} {ws.close_code}")
        if ws.request.path.startswith("/raise"):
            raise RuntimeError("boom from handle_ws_disconn")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(
        "tests.ws.test_hooks_and_state:StateApp",
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
