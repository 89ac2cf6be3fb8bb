"""ASGI WebSocket over real sockets, with the websockets client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..helpers import ServerProcess, read_response
from .test_http import wait_for_mark


def ws_url(server: ServerProcess, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_text_and_binary_messages_round_trip(raw_server: ServerProcess) -> None:
    async def talk() -> tuple[object, object]:
        async with connect(ws_url(raw_server, "/ws")) as ws:
            await ws.send("hi")
            text = await ws.recv()
            await ws.send(b"\x01\x02\x03")
            data = await ws.recv()
            return text, data

    assert run(talk()) == ("echo:hi", b"\x03\x02\x01")


def test_accept_sends_the_chosen_subprotocol_and_extra_headers(raw_server: ServerProcess) -> None:
    async def talk() -> tuple[object, object]:
        async with connect(ws_url(raw_server, "/ws"), subprotocols=["chat", "other"]) as ws:
            return ws.subprotocol, ws.response.headers["x-accepted"]

    assert run(talk()) == ("chat", "yes")


def test_permessage_deflate_is_negotiated(raw_server: ServerProcess) -> None:
    async def talk() -> object:
        async with connect(ws_url(raw_server, "/ws")) as ws:
            await ws.send("x" * 10000)
            assert await ws.recv() == "echo:" + "x" * 10000
            return ws.response.headers.get("sec-websocket-extensions")

    assert "permessage-deflate" in str(run(talk()))


def test_close_from_the_app_reaches_the_client_with_its_code(raw_server: ServerProcess) -> None:
    async def talk() -> object:
        async with connect(ws_url(raw_server, "/ws-close")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code if info.value.rcvd else None

    assert run(talk()) == 4001


def test_client_close_code_reaches_the_app(raw_server: ServerProcess, marks: Path) -> None:
    async def talk() -> None:
        async with connect(ws_url(raw_server, "/ws")) as ws:
            await ws.close(4321)

    (marks / "ws-disconnect").unlink(missing_ok=True)
    run(talk())
    assert wait_for_mark(marks, "ws-disconnect") == "4321"


def test_client_dropping_the_connection_is_a_1006_disconnect(
    raw_server: ServerProcess, marks: Path
) -> None:
    (marks / "ws-disconnect").unlink(missing_ok=True)
    with raw_server.connect() as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert sock.recv(1000).startswith(b"HTTP/1.1 101 ")
    assert wait_for_mark(marks, "ws-disconnect") == "1006"


def test_close_before_accept_is_a_403(raw_server: ServerProcess) -> None:
    async def talk() -> int:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(raw_server, "/ws-deny")):
                pass
        return info.value.response.status_code

    assert run(talk()) == 403


def test_denial_response_extension_sends_the_apps_answer(raw_server: ServerProcess) -> None:
    async def talk() -> tuple[int, bytes]:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(raw_server, "/ws-denial-response")):
                pass
        return info.value.response.status_code, info.value.response.body or b""

    assert run(talk()) == (401, b"who are you?")


def test_bad_handshake_is_refused_without_calling_the_app(raw_server: ServerProcess) -> None:
    with raw_server.connect() as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
            b"\r\n"
        )
        status, headers, _ = read_response(sock)
    assert (status, headers["sec-websocket-version"]) == (426, "13")


def test_websocket_scope(raw_server: ServerProcess) -> None:
    # an ordinary request on the same server still works after WebSocket traffic
    assert httpx.get(f"{raw_server.url}/stream-length").content == b"0123456789"
