"""Regressions found by review of the WebSocket support (issue 4), fixed since.

Each test once proved one defect; its docstring says what is sent, what the issue, the
docs or the RFC expect, and what used to happen ("Was:"). Servers run as real processes
(`ServerProcess`) or the sans-IO classes are driven with bytes alone.
"""

from __future__ import annotations

import asyncio
import signal
import time
import tracemalloc
import zlib
from typing import Any

import pytest

import peregrine
import peregrine.ws
from peregrine.ws.deflate import DeflateParams, PerMessageDeflate
from peregrine.ws.events import Message
from peregrine.ws.frames import FrameParser, serialize_frame
from peregrine.ws.protocol import ServerConnection, State

from ..helpers import ServerProcess, read_response
from .test_websocket_e2e import CLOSE, MASK, TEXT, RawClient

CLOSE_TICKER_EVERY = 0.05


class ReviewApp:
    """Test endpoints the shared apps lack.

    `/ticker`: an async `handle_ws_conn` that sends `tick` until `ws.closed` (the usual
    push-loop shape). `/backend`: messages run an async hook that raises the handler's own
    ConnectionRefusedError. `/slow`: every message waits 3 s in an async hook.
    Every disconn is printed as `REVIEW disconn PATH CODE`.
    """

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp)

    async def handle_ws_conn(self, ws: Any) -> None:
        if ws.request.path == "/ticker":
            while not ws.closed:
                ws.send("tick")
                await asyncio.sleep(CLOSE_TICKER_EVERY)

    async def handle_ws_message(self, ws: Any, message: Any) -> None:
        path = ws.request.path
        if path == "/backend":
            await asyncio.sleep(0)
            raise ConnectionRefusedError("the handler's own backend refused it")
        if path == "/slow":
            await asyncio.sleep(3)
            return
        ws.send(message)

    def handle_ws_disconn(self, ws: Any, code: int) -> None:
        print(f"REVIEW disconn {ws.request.path} {code}", flush=True)


class AsyncDisconnApp(ReviewApp):
    """ReviewApp with an async `handle_ws_disconn` that awaits before it reports."""

    async def handle_ws_disconn(self, ws: Any, code: int) -> None:  # type: ignore[override]
        await asyncio.sleep(0.05)
        print(f"REVIEW disconn {ws.request.path} {code}", flush=True)


APP = "tests.ws.test_review_regressions:ReviewApp"
BINARY, CONT = 0x2, 0x0


def _frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=MASK)


def _sent_close_code(conn: ServerConnection) -> Any:
    parser = FrameParser(max_payload=1 << 20, require_mask=False, allow_rsv1=True)
    parser.feed(conn.data_to_send())
    while (frame := parser.next_frame()) is not None:
        if frame.opcode == CLOSE:
            return int.from_bytes(frame.payload[:2], "big")
    return None


def _memory_growth(conn: ServerConnection, chunk: bytes, times: int) -> int:
    """Bytes still allocated after feeding `chunk` `times` times (events drained each time)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(times):
            conn.feed(chunk)
            while conn.next_event() is not None:
                pass
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class TestMemoryBounds:
    def test_empty_continuation_frames(self) -> None:
        """A message opened with a non-final frame, then an endless run of empty non-final
        continuations (6 bytes each on the wire). The message never grows, so the limit never
        trips; the issue says a client never grows the server's memory without bound.
        Was: every empty fragment appends to `_msg_parts` (~8.4 bytes per frame), so
        30,000 frames leave ~250 KB held for a message of 0 bytes (limit 1,000)."""
        conn = ServerConnection(max_message_size=1000)
        conn.receive_data(_frame(BINARY, b"", fin=False))
        growth = _memory_growth(conn, _frame(CONT, b"", fin=False) * 1000, 30)
        assert conn.state is State.OPEN
        assert growth < 64 * 1024, f"{growth} bytes held for an empty message"

    def test_tiny_fragments_stay_near_the_limit(self) -> None:
        """A 40,000-byte binary message (limit 40,000) sent as 2-byte fragments. Expected:
        memory of the order of the limit (`ws_max_message_size` is the bound the docs give).
        Was: one bytes object plus a list slot per fragment, ~840 KB (~21x the limit;
        with the 16 MiB default that is ~350 MB for one connection)."""
        conn = ServerConnection(max_message_size=40_000)
        conn.receive_data(_frame(BINARY, b"ab", fin=False))
        growth = _memory_growth(conn, _frame(CONT, b"ab", fin=False) * 1000, 19)
        assert conn.state is State.OPEN
        assert growth < 4 * 40_000, f"{growth} bytes held for a message limited to 40,000"

    def test_continuation_over_the_room_left_fails_from_its_header(self) -> None:
        """999 bytes of a message (limit 1,000), then the 8-byte header of a 1,000-byte
        continuation. docs/websocket.md: the limit is checked "from the frame header before
        buffering". Was: the header is only checked against the whole limit, so the
        server stays OPEN and buffers the continuation's payload (up to 2x the limit held)."""
        conn = ServerConnection(max_message_size=1000)
        conn.receive_data(_frame(BINARY, b"x" * 999, fin=False))
        conn.receive_data(_frame(CONT, b"y" * 1000)[:8])
        assert conn.failed and _sent_close_code(conn) == 1009


class TestDeflate:
    @pytest.mark.parametrize("fragmented", [False, True])
    def test_data_after_a_final_block(self, fragmented: bool) -> None:
        """One compressed text message whose deflate data is a stream ending in a BFINAL
        block ("hello ") followed by a second stream ("world"). Expected: either the whole
        text or failing the connection with 1007 (RFC 7692 7.2.2: the payload plus tail is
        one DEFLATE stream). Was: zlib's `unused_data` is never looked at, so the
        message arrives truncated as "hello " and the connection stays open."""
        first = zlib.compressobj(6, zlib.DEFLATED, -15)
        a = first.compress(b"hello ") + first.flush(zlib.Z_FINISH)
        second = zlib.compressobj(6, zlib.DEFLATED, -15)
        b = (second.compress(b"world") + second.flush(zlib.Z_SYNC_FLUSH))[:-4]
        conn = ServerConnection(deflate=PerMessageDeflate(DeflateParams()))
        if fragmented:
            wire = _frame(TEXT, a, fin=False, rsv1=True) + _frame(CONT, b)
        else:
            wire = _frame(TEXT, a + b, rsv1=True)
        events = conn.receive_data(wire)
        assert events == [Message("hello world")] or (
            events == [] and _sent_close_code(conn) == 1007
        ), events


class TestHandshake:
    def test_426_with_upgrade_has_connection_upgrade(self) -> None:
        """`Sec-WebSocket-Version: 8`. The 426 carries `Upgrade: websocket`; RFC 9110 7.8:
        "When Upgrade is sent, the sender MUST also send a Connection header field that
        contains an 'upgrade' connection option". Was: no Connection header at all."""
        with ServerProcess("tests.ws.apps:Echo") as server, server.connect() as sock:
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
            )
            status, headers, _ = read_response(sock)
        assert status == 426 and headers.get("upgrade") == "websocket"
        assert "upgrade" in headers.get("connection", "").lower(), headers


class TestHooksAndClosing:
    def test_async_disconn_runs_at_shutdown(self) -> None:
        """An async handle_ws_disconn; an idle client that does not answer the 1001 close;
        `--graceful-timeout 1` (below `ws_close_timeout`, 5 s). The issue: handle_ws_disconn
        exactly once per connection. Was: the abort at the end of the graceful period
        starts the hook as a task that the loop never runs to completion ("Task was destroyed
        but it is pending!"), so it never finishes."""
        server = ServerProcess(
            "tests.ws.test_review_regressions:AsyncDisconnApp",
            "--ws-ping-interval",
            "0",
            "--graceful-timeout",
            "1",
        )
        try:
            client = RawClient(server, "/idle")
            time.sleep(0.2)
            server.send_signal(signal.SIGTERM)
            server.proc.wait(15)
            server._reader.join(5)
            client.close()
        finally:
            server.kill()
        assert "REVIEW disconn /idle 1001" in server.output, server.output[-2000:]
