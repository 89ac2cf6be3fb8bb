"""WebSocket end to end: real Peregrine servers, the `websockets` client, and raw sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from peregrine.ws.frames import FrameParser, serialize_frame

from ..helpers import ServerProcess, read_response

MASK = b"\x0a\x0b\x0c\x0d"
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


@pytest.fixture(scope="module")
def echo() -> Iterator[ServerProcess]:
    with ServerProcess("tests.ws.apps:Echo") as server:
        yield server


@pytest.fixture(scope="module")
def hooks() -> Iterator[ServerProcess]:
    with ServerProcess("tests.ws.apps:Hooks") as server:
        yield server


def ws_url(server: ServerProcess, path: str = "/ws") -> str:
    return f"ws://{server.host}:{server.port}{path}"


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


class RawClient:
    """A WebSocket client over a plain socket, to send what a library never would."""

    def __init__(
        self,
        server: ServerProcess,
        path: str = "/ws",
        extra: bytes = b"",
        after_handshake: bytes = b"",
    ) -> None:
        self.sock = server.connect()
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n"
            + extra
            + b"\r\n"
            + after_handshake
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            assert chunk, buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        assert self.head.startswith("HTTP/1.1 101 "), self.head
        self.parser = FrameParser(max_payload=1 << 26, require_mask=False, allow_rsv1=True)
        self.parser.feed(rest)

    def send(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        self.sock.sendall(serialize_frame(opcode, payload, fin=fin, mask=MASK))

    def recv(self, timeout: float = 10.0) -> tuple[int, bytes] | None:
        """The next frame, or None when the server closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            frame = self.parser.next_frame()
            if frame is not None:
                return frame.opcode, frame.payload
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.parser.feed(data)

    def expect_close(self, code: int, timeout: float = 10.0) -> None:
        """Skip to the close frame, check its code, and check the server then closes TCP."""
        while True:
            frame = self.recv(timeout)
            assert frame is not None, "connection closed without a close frame"
            if frame[0] == CLOSE:
                break
        assert int.from_bytes(frame[1][:2], "big") == code, frame
        self.send(CLOSE, frame[1][:2])
        assert self.recv(timeout) is None

    def close(self) -> None:
        self.sock.close()


# --- the opening handshake ----------------------------------------------------------------------


class TestHandshake:
    @pytest.mark.parametrize(
        "headers, status",
        [
            (
                b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
                400,
            ),  # no key
            (
                b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\n"
                b"Sec-WebSocket-Version: 13\r\n",
                400,
            ),
            (
                b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 8\r\n",
                426,
            ),
            (b"", 400),  # plain HTTP to a WebSocket endpoint
        ],
    )
    def test_refused(self, echo: ServerProcess, headers: bytes, status: int) -> None:
        with echo.connect() as sock:
            sock.sendall(b"GET /ws HTTP/1.1\r\nHost: test\r\n" + headers + b"\r\n")
            got, hdrs, body = read_response(sock)
        assert got == status
        assert body
        if status == 426:
            assert hdrs["sec-websocket-version"] == "13"

    def test_accept_and_plain_http_go_on(self, echo: ServerProcess) -> None:
        client = RawClient(echo, "/ws/plain")
        assert "Sec-WebSocket-Accept:" in client.head
        assert "Sec-WebSocket-Extensions" not in client.head
        client.close()

    def test_frames_in_the_handshake_packet(self, echo: ServerProcess) -> None:
        # Bytes after the request head belong to the WebSocket: none may be lost.
        first = serialize_frame(TEXT, b"early", mask=MASK) + serialize_frame(
            BINARY, b"bird", mask=MASK
        )
        client = RawClient(echo, "/ws/plain", after_handshake=first)
        assert client.recv() == (TEXT, b"early")
        assert client.recv() == (BINARY, b"bird")
        client.close()

    def test_subprotocol(self, echo: ServerProcess) -> None:
        async def main() -> tuple[str | None, str | None]:
            async with connect(ws_url(echo, "/ws/proto"), subprotocols=["xml", "json"]) as ws:  # type: ignore[list-item]
                chosen = ws.subprotocol
            async with connect(ws_url(echo, "/ws/proto"), subprotocols=["xml"]) as ws:  # type: ignore[list-item]
                # The server supports none of the offered ones: no subprotocol, still connected.
                return chosen, ws.subprotocol

        assert run(main()) == ("json", None)

    def test_426_with_upgrade_has_connection_upgrade(self, echo: ServerProcess) -> None:
        """`Sec-WebSocket-Version: 8`. The 426 carries `Upgrade: websocket`; RFC 9110 7.8:
        "When Upgrade is sent, the sender MUST also send a Connection header field that
        contains an 'upgrade' connection option". Guards against: no Connection header at all."""
        with echo.connect() as sock:
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
            )
            status, headers, _ = read_response(sock)
        assert status == 426 and headers.get("upgrade") == "websocket"
        assert "upgrade" in headers.get("connection", "").lower(), headers


# --- messages -----------------------------------------------------------------------------------


class TestEcho:
    @pytest.mark.parametrize("compression", ["deflate", None])
    def test_messages(self, echo: ServerProcess, compression: str | None) -> None:
        messages: list[Any] = [
            "hello",
            b"\x00\x01\xff",
            "",
            b"",
            "ünïcødé ✓",
            os.urandom(70_000),
            "x" * 1_000_000,
            os.urandom(3 * 1024 * 1024),
        ]

        async def main() -> tuple[list[Any], str | None]:
            async with connect(ws_url(echo), compression=compression, max_size=None) as ws:
                got = []
                for message in messages:
                    await ws.send(message)
                    got.append(await ws.recv())
                return got, ws.response.headers.get("Sec-WebSocket-Extensions")

        got, extensions = run(main())
        assert got == messages
        if compression:
            assert extensions is not None and extensions.startswith("permessage-deflate")
        else:
            assert extensions is None

    def test_fragmented_messages(self, echo: ServerProcess) -> None:
        async def main() -> list[Any]:
            async with connect(ws_url(echo)) as ws:
                await ws.send(["frag", "ment", "ed"])  # type: ignore[arg-type]
                await ws.send([b"a", b"b"])  # type: ignore[list-item]
                return [await ws.recv(), await ws.recv()]

        assert run(main()) == ["fragmented", b"ab"]

    def test_pipelined_and_byte_by_byte(self, echo: ServerProcess) -> None:
        client = RawClient(echo, "/ws/plain")
        wire = b"".join(serialize_frame(TEXT, str(i).encode(), mask=MASK) for i in range(100))
        client.sock.sendall(wire)
        assert [client.recv() for _ in range(100)] == [(TEXT, str(i).encode()) for i in range(100)]
        wire = (
            serialize_frame(TEXT, b"sl", fin=False, mask=MASK)
            + serialize_frame(PING, b"!", mask=MASK)
            + serialize_frame(CONT, b"ow", mask=MASK)
        )
        for i in range(len(wire)):
            client.sock.sendall(wire[i : i + 1])
            time.sleep(0.001)
        assert client.recv() == (PONG, b"!")
        assert client.recv() == (TEXT, b"slow")
        client.close()

    def test_ping_from_the_client(self, echo: ServerProcess) -> None:
        async def main() -> float:
            async with connect(ws_url(echo)) as ws:
                waiter = await ws.ping(b"are you there")
                return await waiter

        assert run(main()) >= 0


# --- protocol errors close with the right code ----------------------------------------------------


class TestProtocolErrors:
    @pytest.mark.parametrize(
        "frames, code",
        [
            ([serialize_frame(TEXT, b"unmasked")], 1002),
            ([bytes((0x83, 0x80)) + MASK], 1002),  # reserved opcode
            ([bytes((0xC1, 0x80)) + MASK], 1002),  # RSV1 without compression
            ([serialize_frame(CONT, b"x", mask=MASK)], 1002),
            ([serialize_frame(PING, b"x" * 126, mask=MASK)], 1002),
            ([serialize_frame(TEXT, b"\xff", mask=MASK)], 1007),
            (
                [
                    serialize_frame(TEXT, b"\xce", fin=False, mask=MASK),
                    serialize_frame(CONT, b"\xff", mask=MASK),
                ],
                1007,
            ),
            ([serialize_frame(CLOSE, b"\x03\xec", mask=MASK)], 1002),  # close code 1004
            ([serialize_frame(CLOSE, b"\x03\xe8\xff", mask=MASK)], 1007),  # reason not UTF-8
        ],
    )
    def test_failure_codes(self, echo: ServerProcess, frames: list[bytes], code: int) -> None:
        client = RawClient(echo, "/ws/plain")
        for frame in frames:
            client.sock.sendall(frame)
        client.expect_close(code)
        client.close()

    def test_message_too_big(self, start_server: Callable[..., ServerProcess]) -> None:
        server = start_server("tests.ws.apps:Echo", "--ws-max-message-size", "1000")
        client = RawClient(server, "/ws/plain")
        client.send(BINARY, b"x" * 1000)
        assert client.recv() == (BINARY, b"x" * 1000)
        client.send(BINARY, b"x" * 600, fin=False)
        client.send(CONT, b"x" * 600)
        client.expect_close(1009)
        client.close()

    def test_decompression_bomb(self, start_server: Callable[..., ServerProcess]) -> None:
        server = start_server("tests.ws.apps:Echo", "--ws-max-message-size", "100000")

        async def main() -> int:
            async with connect(ws_url(server), max_size=None) as ws:
                # 50 times the limit, compressed to ~5 KB: whatever the size beyond the limit,
                # the server must stop inflating at the limit and close with 1009
                await ws.send(bytes(5_000_000))
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                return info.value.rcvd.code

        assert run(main(), 60) == 1009


# --- closing ---------------------------------------------------------------------------------------


class TestClosing:
    def test_server_initiated_by_the_handler(self, hooks: ServerProcess) -> None:
        async def main() -> tuple[int, str]:
            async with connect(ws_url(hooks, "/close")) as ws:
                assert await ws.recv() == "welcome"
                await ws.send("close 4001")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                return info.value.rcvd.code, info.value.rcvd.reason

        assert run(main()) == (4001, "bye")

    def test_shutdown_sends_1001(self, start_server: Callable[..., ServerProcess]) -> None:
        # graceful_timeout an hour: an exit within stop()'s 10 s (which only makes a hang fail)
        # means the closing handshake let the worker go, not the end of the graceful period
        server = start_server("tests.ws.apps:Echo", "--graceful-timeout", "3600")
        client = RawClient(server, "/ws/plain")
        client.send(TEXT, b"hi")
        assert client.recv() == (TEXT, b"hi")
        server.send_signal(signal.SIGTERM)
        client.expect_close(1001)
        client.close()
        assert server.stop(timeout=10) == 0
        assert "graceful_timeout" not in server.output


# --- hooks ----------------------------------------------------------------------------------------


class TestHooks:
    def test_order_and_request(self, hooks: ServerProcess) -> None:
        async def main() -> list[Any]:
            async with connect(ws_url(hooks, "/order?q=42"), subprotocols=["chat"]) as ws:  # type: ignore[list-item]
                # Sent while the async handle_ws_conn still sleeps: must wait for it, in order.
                await ws.send("first")
                await ws.send("slow 0.2")
                await ws.send("after slow")
                await ws.send("info")
                return [await ws.recv() for _ in range(5)]

        got = run(main())
        assert got[:4] == ["welcome", "first", "done 0.2", "after slow"]
        assert json.loads(got[4]) == {
            "path": "/order",
            "query": "42",
            "subprotocol": "chat",
            "closed": False,
        }

    def test_disconn_exactly_once(self, hooks: ServerProcess) -> None:
        async def main() -> str:
            async with connect(ws_url(hooks, "/once-a")) as ws:
                await ws.recv()
            client = RawClient(hooks, "/once-b")  # vanishes without a close frame: 1006
            assert client.recv() == (TEXT, b"welcome")
            client.sock.close()
            async with connect(ws_url(hooks, "/once-c")) as ws:
                await ws.recv()
                await ws.send("close 1000")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            # The server learns of the vanished client on its own schedule: poll.
            for _ in range(100):
                async with connect(ws_url(hooks, "/events")) as ws:
                    await ws.recv()
                    await ws.send("events")
                    log = await ws.recv()
                if all(f"disconn /once-{x} " in log for x in "abc"):  # type: ignore[operator]
                    break
                await asyncio.sleep(0.1)
            return log  # type: ignore[return-value]

        log = run(main()).split("|")
        for path, code in (("/once-a", 1000), ("/once-b", 1006), ("/once-c", 1000)):
            assert log.count(f"conn {path}") == 1
            assert [e for e in log if e.startswith(f"disconn {path} ")] == [
                f"disconn {path} {code}"
            ]
        # conn comes before disconn for every connection
        assert log.index("conn /once-a") < log.index("disconn /once-a 1000")


class TestBackpressure:
    def test_drain_lets_a_reading_client_get_everything(self, hooks: ServerProcess) -> None:
        async def main() -> int:
            async with connect(ws_url(hooks, "/drain"), max_size=None) as ws:
                await ws.recv()
                await ws.send("drain 100")  # 6.4 MiB, with drain() between messages
                count = 0
                while (await ws.recv()) != "drained":
                    count += 1
                    if count % 20 == 0:
                        await asyncio.sleep(0.05)  # a slowish reader
                return count

        assert run(main(), 60) == 100

    def test_compressed_messages_queued_behind_a_slow_hook(self) -> None:
        """permessage-deflate, `--ws-max-message-size 1048576`, an async message hook that
        takes 3 s. The client sends 24 messages of 1 MiB of zeros in one ~25 KB write. The
        docs: reading pauses when `ws_max_message_size` bytes wait. Guards against: reading pauses,
        but every frame already read is still decompressed and queued: the worker's RSS
        grows by ~24 MiB (a 1,000x amplification of what the client sent; 3x the bound)."""
        server = ServerProcess(
            HOOK_PROBE_APP,
            "--ws-max-message-size",
            str(1 << 20),
            "--ws-ping-interval",
            "0",
            "--graceful-timeout",
            "1",
        )
        try:
            client = RawClient(
                server, "/slow", extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
            )
            assert "permessage-deflate" in client.head
            comp = zlib.compressobj(9, zlib.DEFLATED, -15)
            wire = b""
            for _ in range(24):
                data = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_SYNC_FLUSH)
                wire += _frame(BINARY, data[:-4], rsv1=True)
            time.sleep(0.3)
            before = _rss(server.proc.pid)
            client.sock.sendall(wire)
            time.sleep(1.0)
            growth = _rss(server.proc.pid) - before
            client.close()
        finally:
            server.kill()
        assert growth < 8 << 20, f"RSS grew by {growth >> 20} MiB with a 1 MiB message limit"


# --- the example ------------------------------------------------------------------------------------


class TestExample:
    def test_page_and_echo(self, start_server: Callable[..., ServerProcess]) -> None:
        server = start_server(script=["examples/websocket/app.py"])
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            status, headers, body = read_response(sock)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"new WebSocket(" in body and b"/ws" in body

        async def main() -> list[Any]:
            async with connect(ws_url(server)) as ws:
                await ws.send("message 1")
                await ws.send(b"\x01")
                return [await ws.recv(), await ws.recv()]

        assert run(main()) == ["message 1", b"\x01"]


HOOK_PROBE_APP = "tests.ws.apps:HookProbeApp"


def _frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=MASK)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class TestHooksAndClosing:
    def test_hook_raising_its_own_connection_error(self) -> None:
        """An async message hook raises ConnectionRefusedError (its own backend, not the
        client). docs/websocket.md: a hook that raises is logged with its traceback and the
        connection is closed with 1011. Guards against: `_await_hook` drops every ConnectionError
        silently: no log line, no close frame, the connection stays open."""
        with ServerProcess(
            HOOK_PROBE_APP, "--ws-ping-interval", "0", "--graceful-timeout", "1"
        ) as server:
            client = RawClient(server, "/backend")
            client.send(TEXT, b"go")
            try:
                frame = client.recv(2)
            except TimeoutError:
                frame = None
            logged = server.wait_for_line("backend refused it", 1)
            client.close()
        assert (
            frame is not None and frame[0] == CLOSE and frame[1][:2] == (1011).to_bytes(2, "big")
        ), frame
        assert logged is not None

    def test_shutdown_closes_a_busy_connection_with_1001(self) -> None:
        """`/ticker`: the usual push loop (`while not ws.closed: send; await sleep`) in an
        async handle_ws_conn. SIGTERM with `--graceful-timeout 3600`. Promised: on shutdown
        every open connection is closed with 1001, at once. Guards against: the worker only calls
        `shutdown()` on idle connections, so the loop never sees `ws.closed`, no close frame
        comes, and the connection is aborted when the graceful period ends (handle_ws_disconn
        gets 1006). That period is an hour here, so a close frame within the 10 s the client
        waits (a bound that only makes a missing close fail) can only come from the shutdown."""
        server = ServerProcess(
            HOOK_PROBE_APP, "--ws-ping-interval", "0", "--graceful-timeout", "3600"
        )
        try:
            client = RawClient(server, "/ticker")
            assert client.recv(5) == (TEXT, b"tick")
            server.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10  # ticks go on without a close: do not wait forever
            frame = client.recv(10)
            while frame is not None and frame[0] != CLOSE and time.monotonic() < deadline:
                frame = client.recv(10)
            client.close()
        finally:
            server.kill()
        assert frame is not None and frame[1][:2] == (1001).to_bytes(2, "big"), frame

    def test_async_disconn_runs_at_shutdown(self) -> None:
        """An async handle_ws_disconn; an idle client that does not answer the 1001 close;
        `--graceful-timeout 1` (below `ws_close_timeout`, 5 s). Promised: handle_ws_disconn
        exactly once per connection. Guards against: the abort at the end of the graceful period
        starts the hook as a task that the loop never runs to completion ("Task was destroyed
        but it is pending!"), so it never finishes."""
        server = ServerProcess(
            "tests.ws.apps:AsyncDisconnApp",
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
        assert "HOOK disconn /idle 1001" in server.output, server.output[-2000:]
