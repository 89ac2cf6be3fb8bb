"""The WebSocket connection in process: keepalive, the close handshake, flow control, shutdown.

Each test opens a WebSocket with a real handshake over ``HttpConnection`` on a ``FakeTransport``
(``tests/aio/fakes.py``), so the transport is handed over exactly as in a server, then speaks
frames through the asyncio protocol methods only. The loop's clock moves by hand: every timer
is asserted to the instant. The end-to-end tests with real clients are in tests/ws/.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
import zlib
from typing import Any

import pytest

import peregrine
import peregrine.ws
from peregrine.ws.frames import serialize_frame

from ..ws.apps import Echo, Hooks
from .fakes import BINARY, CLOSE, PING, PONG, TEXT, ClockLoop, WsPeer, close_payload

EPSILON = 0.001


class Recording:
    """Echoes; ``slow`` sleeps 1 s then sends ``late``; on ``/slow`` every message takes 3 s;
    ``tick`` is pushed by an async conn hook on ``/ticker`` until the connection closes; every
    hook call is logged."""

    def __init__(self, disconn_delay: float = 0.0) -> None:
        self.log: list[str] = []
        self.disconn_delay = disconn_delay

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp)

    async def handle_ws_conn(self, ws: Any) -> None:
        self.log.append("conn")
        while ws.request.path == "/ticker" and not ws.closed:
            ws.send("tick")
            await asyncio.sleep(0.05)

    async def handle_ws_message(self, ws: Any, message: Any) -> None:
        self.log.append(f"message {message!r}"[:40])
        if ws.request.path == "/slow":
            await asyncio.sleep(3)
        elif message == "slow":
            await asyncio.sleep(1)
            ws.send("late")  # the connection may be closed by now: then a no-op
            self.log.append(f"slow done, closed={ws.closed}")
        elif message == "backend":
            await asyncio.sleep(0)
            raise ConnectionRefusedError("the handler's own backend refused it")
        elif message == "drain-later":
            await asyncio.sleep(0.3)
            try:
                await ws.drain()
                self.log.append("drain returned")
            except ConnectionResetError:
                self.log.append(f"drain reset, close_code={ws.close_code}")
        else:
            ws.send(message)

    async def handle_ws_disconn(self, ws: Any, code: int) -> None:
        if self.disconn_delay:
            await asyncio.sleep(self.disconn_delay)
        self.log.append(f"disconn {code}")


# --- keepalive ------------------------------------------------------------------------------------


class TestKeepalive:
    def test_ping_then_1011_without_a_pong(self, loop: ClockLoop) -> None:
        peer = WsPeer(loop, Echo(), "/ws/plain", ws_ping_interval=0.2, ws_ping_timeout=0.3)
        loop.advance(0.2 - EPSILON)
        assert peer.frames() == []
        loop.advance(EPSILON)
        assert peer.frames() == [(PING, (1).to_bytes(4, "big"))]
        loop.advance(0.3 - EPSILON)
        assert peer.frames() == []
        loop.advance(EPSILON)
        assert peer.frames() == [(CLOSE, close_payload(1011, b"keepalive ping timeout"))]
        peer.send(CLOSE, close_payload(1011))
        assert peer.transport.how == "close" and peer.wire.closed

    def test_answering_client_stays(self, loop: ClockLoop) -> None:
        peer = WsPeer(loop, Echo(), "/ws/plain", ws_ping_interval=0.2, ws_ping_timeout=0.3)
        pings = 0
        for _ in range(100):  # 10 s
            loop.advance(0.1)
            for opcode, payload in peer.frames():
                assert opcode == PING
                pings += 1
                peer.send(PONG, payload)
        assert pings == 50 and not peer.transport.is_closing()
        peer.send(TEXT, b"still here")
        assert peer.frames() == [(TEXT, b"still here")]

    def test_unread_pong_while_reading_is_paused_is_no_timeout(self, loop: ClockLoop) -> None:
        """Hooks lag (3 s per message), reading pauses; the client's pong waits in the kernel."""
        app = Recording()
        peer = WsPeer(loop, app, "/slow", ws_ping_interval=0.5, ws_ping_timeout=1, max_pipelined=32)
        peer.wire.send(serialize_frame(TEXT, b"m", mask=b"abcd") * 40)  # one read
        assert not peer.transport.reading
        closes = []
        for _ in range(130):  # 13 s: the ping deadline passes many times while paused
            loop.advance(0.1)
            for opcode, payload in peer.frames():
                if opcode == PING:
                    peer.send(PONG, payload)  # held while the server does not read
                closes += [payload] if opcode == CLOSE else []
        assert closes == []
        assert app.log.count("message 'm'") == 5  # 3 s each, one at a time


# --- closing ------------------------------------------------------------------------------------


class TestClosing:
    def test_client_initiated_close_is_answered_and_tcp_closed_by_the_server(
        self, loop: ClockLoop
    ) -> None:
        app = Recording()
        peer = WsPeer(loop, app, ws_ping_interval=0)
        peer.send(CLOSE, close_payload(4000, b"bye"))
        assert peer.frames() == [(CLOSE, close_payload(4000))]
        assert peer.transport.how == "close" and peer.wire.closed  # RFC 6455 §7.1.1
        assert app.log == ["conn", "disconn 4000"]

    def test_peer_that_never_answers_our_close_is_aborted(self, loop: ClockLoop) -> None:
        peer = WsPeer(loop, Hooks(), "/silent", ws_ping_interval=0, ws_close_timeout=0.3)
        loop.advance(0.05)  # Hooks' async handle_ws_conn
        assert peer.frames() == [(TEXT, b"welcome")]
        peer.send(TEXT, b"close 4002")
        assert peer.frames() == [(CLOSE, close_payload(4002, b"bye"))]
        loop.advance(0.3 - EPSILON)
        assert not peer.transport.is_closing()
        loop.advance(EPSILON)
        assert peer.transport.how == "abort"

    def test_close_is_answered_at_once_while_an_async_hook_runs(self, loop: ClockLoop) -> None:
        app = Recording()
        peer = WsPeer(loop, app, ws_ping_interval=0)
        peer.send(TEXT, b"slow")
        loop.advance(0.05)
        peer.send(CLOSE, close_payload(1000))
        assert peer.frames() == [(CLOSE, close_payload(1000))]  # not after the hook's 1 s
        assert peer.wire.closed
        loop.advance(1)
        # the running hook finishes first (its send a no-op), then disconn, once
        assert app.log == ["conn", "message 'slow'", "slow done, closed=True", "disconn 1000"]
        assert peer.frames() == []

    def test_drain_after_the_client_is_gone_raises(self, loop: ClockLoop) -> None:
        app = Recording()
        peer = WsPeer(loop, app, ws_ping_interval=0)
        peer.send(TEXT, b"drain-later")
        loop.advance(0.05)
        peer.transport.reset()
        loop.advance(0.3)
        assert app.log == [
            "conn",
            "message 'drain-later'",
            "drain reset, close_code=1006",
            "disconn 1006",
        ]

    def test_failing_hook_closes_with_1011(
        self, loop: ClockLoop, caplog: pytest.LogCaptureFixture
    ) -> None:
        peer = WsPeer(loop, Hooks(), "/raise", ws_ping_interval=0)
        loop.advance(0.05)
        peer.frames()
        with caplog.at_level(logging.ERROR, "peregrine.error"):
            peer.send(TEXT, b"raise")
        assert peer.frames() == [(CLOSE, close_payload(1011))]
        assert "boom from a WebSocket hook" in caplog.text

    def test_hook_raising_its_own_connection_error_closes_with_1011(
        self, loop: ClockLoop, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Not the client's connection: the hook's own backend. Logged, and closed like any failure."""
        peer = WsPeer(loop, Recording(), ws_ping_interval=0)
        with caplog.at_level(logging.ERROR, "peregrine.error"):
            peer.send(TEXT, b"backend")
        assert peer.frames() == [(CLOSE, close_payload(1011))]
        assert "backend refused it" in caplog.text


# --- flow control ---------------------------------------------------------------------------------


class TestFlowControl:
    def test_client_that_reads_nothing_is_aborted_past_ws_write_limit(
        self, loop: ClockLoop
    ) -> None:
        peer = WsPeer(loop, Hooks(), "/flood", ws_ping_interval=0, ws_write_limit=1 << 20)
        loop.advance(0.05)
        peer.transport.client_reads = False
        peer.send(TEXT, b"flood 400")  # 25 MiB without drain()
        # over the limit, the next send finds it so and gives up on the client
        assert peer.transport.how == "abort"
        assert (1 << 20) < len(peer.transport.written) <= (1 << 20) + 2 * 65546

    def test_drain_waits_for_the_client_to_read(self, loop: ClockLoop) -> None:
        peer = WsPeer(loop, Hooks(), "/drain", ws_ping_interval=0)
        loop.advance(0.05)
        peer.frames()
        peer.transport.client_reads = False
        peer.send(TEXT, b"drain 100")  # 100 x 64 KiB, drain() after each
        received = 0
        for _ in range(1000):
            got = peer.frames()
            received += sum(1 for opcode, _ in got if opcode == BINARY)
            if (TEXT, b"drained") in got:
                break
            assert peer.transport.writing_paused  # each message waits for the client
            peer.transport.client_read()
            loop.run_ready()
        assert received == 100 and not peer.transport.is_closing()

    def test_compressed_backlog_stays_compressed_while_hooks_lag(self, loop: ClockLoop) -> None:
        """16 messages of 1 MiB of zeros in one ~16 KB read, a hook taking 3 s each: reading
        pauses once a message's worth waits, and the rest is not inflated meanwhile (inflating
        even a quarter of them would pass the bound)."""
        app = Recording()
        peer = WsPeer(
            loop,
            app,
            "/slow",
            headers="Sec-WebSocket-Extensions: permessage-deflate\r\n",
            ws_ping_interval=0,
            ws_max_message_size=1 << 20,
        )
        assert "permessage-deflate" in peer.head
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        frames = b""
        for _ in range(16):
            data = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_SYNC_FLUSH)
            frames += serialize_frame(BINARY, data[:-4], rsv1=True, mask=b"abcd")
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            peer.wire.send(frames)
            growth = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert not peer.transport.reading
        assert growth < 4 << 20, f"{growth >> 20} MiB held for 16 MiB announced"


class SyncFlood:
    """A synchronous hook: ``flood N`` sends N messages of 64 KiB at once; else echoes."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp, compression=False)

    def handle_ws_message(self, ws: Any, message: Any) -> None:
        if isinstance(message, str) and message.startswith("flood "):
            for _ in range(int(message.split()[1])):
                ws.send(bytes(1 << 16))
        else:
            ws.send(message)


def masked(opcode: int, payload: bytes) -> bytes:
    return serialize_frame(opcode, payload, mask=b"\x01\x02\x03\x04")


class TestOneWritePerRead:
    """The answers to the frames of one read leave in one write, in order."""

    def test_messages_of_one_read_are_echoed_in_one_write(self, loop: ClockLoop) -> None:
        peer = WsPeer(loop, SyncFlood(), ws_ping_interval=0)
        writes = peer.transport.writes
        peer.wire.send(b"".join(masked(TEXT, b"m%d" % i) for i in range(4)) + masked(PING, b"p"))
        assert peer.transport.writes == writes + 1
        assert peer.frames() == [(TEXT, b"m%d" % i) for i in range(4)] + [(PONG, b"p")]

    def test_a_bad_frame_is_answered_after_the_messages_before_it(self, loop: ClockLoop) -> None:
        peer = WsPeer(loop, SyncFlood(), ws_ping_interval=0)
        data = masked(TEXT, b"one") + masked(BINARY, b"two") + masked(0x3, b"reserved opcode")
        peer.wire.send(data + masked(TEXT, b"never read"))
        frames = peer.frames()
        assert frames[:2] == [(TEXT, b"one"), (BINARY, b"two")]
        assert [opcode for opcode, _ in frames[2:]] == [CLOSE]
        assert frames[2][1][:2] == (1002).to_bytes(2, "big")
        assert peer.transport.eof_written  # after the close frame, not before it

    def test_split_at_every_byte_gives_the_same_answers(self, loop: ClockLoop) -> None:
        data = masked(TEXT, b"abc") + masked(PING, b"") + masked(BINARY, bytes(300))
        want = [(TEXT, b"abc"), (PONG, b""), (BINARY, bytes(300))]
        for at in range(1, len(data)):
            peer = WsPeer(loop, SyncFlood(), ws_ping_interval=0)
            peer.wire.send(data[:at], data[at:])
            assert peer.frames() == want

    def test_a_sync_hook_flooding_a_client_that_reads_nothing_is_cut_off(
        self, loop: ClockLoop
    ) -> None:
        """What one read makes is written as it grows, so ws_write_limit still applies."""
        peer = WsPeer(loop, SyncFlood(), ws_ping_interval=0, ws_write_limit=1 << 20)
        peer.transport.client_reads = False
        peer.send(TEXT, b"flood 400")  # 25 MiB from one message, without drain()
        assert peer.transport.how == "abort"
        assert (1 << 20) < len(peer.transport.written) <= (1 << 20) + 2 * 65546 + (64 << 10)


# --- shutdown -----------------------------------------------------------------------------------


class TestShutdown:
    """What the worker does: ``draining``, ``shutdown()`` on every connection, then abort."""

    def test_busy_connection_gets_1001(self, loop: ClockLoop) -> None:
        app = Recording()
        peer = WsPeer(loop, app, "/ticker", ws_ping_interval=0, graceful_timeout=2.5)
        loop.advance(0.1)
        assert peer.frames() == [(TEXT, b"tick")] * 3
        peer.state.draining = True
        for conn in list(peer.state.connections):
            assert not conn.is_idle()
            conn.shutdown()
        loop.advance(0.05)
        assert peer.frames() == [(CLOSE, close_payload(1001, b"server shutting down"))]
        peer.send(CLOSE, close_payload(1001))
        assert peer.wire.closed and app.log[-1] == "disconn 1001"

    def test_peer_silent_after_1001_is_aborted_at_half_the_graceful_timeout(
        self, loop: ClockLoop
    ) -> None:
        app = Recording(disconn_delay=0.05)
        peer = WsPeer(loop, app, ws_ping_interval=0, graceful_timeout=1, ws_close_timeout=5)
        for conn in list(peer.state.connections):
            conn.shutdown()
        assert peer.frames() == [(CLOSE, close_payload(1001, b"server shutting down"))]
        loop.advance(0.5 - EPSILON)
        assert not peer.transport.is_closing()
        loop.advance(EPSILON)
        assert peer.transport.how == "abort"
        loop.advance(0.05)  # the async disconn hook runs to its end
        assert app.log == ["conn", "disconn 1001"] and peer.state.tasks == set()

    def test_connection_opened_while_draining_is_closed_at_once(self, loop: ClockLoop) -> None:
        first = WsPeer(loop, Echo(), "/ws/plain", ws_ping_interval=0)
        first.state.draining = True
        second = WsPeer(loop, Echo(), "/ws/plain", state=first.state)
        assert second.frames() == [(CLOSE, close_payload(1001, b"server shutting down"))]
