"""A transport and an event loop for driving the asyncio protocols in process, exactly.

``ClockLoop`` is a real asyncio loop (tasks, futures, ``asyncio.sleep`` all work) whose clock
moves only when the test calls :meth:`ClockLoop.advance`: a timeout test then takes no wall time
and its assertions can name the exact instant something happens. ``FakeTransport`` records what
the protocol writes and how it pauses, resumes, closes or aborts, and models a client that reads
everything at once or nothing at all (its send buffer grows, with the high/low water marks of a
real transport). ``Wire`` ties the two to one protocol object and talks to it only through the
asyncio protocol methods, so tests do not depend on a protocol's internals.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.ws.frames import FrameParser, serialize_frame

# far from 0, as a monotonic clock is: a deadline computed as "0 + x" cannot pass for "unset"
START = 1000.0
_NS = 1_000_000_000


class ClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is a number the test moves by hand.

    Nothing runs by itself: :meth:`run_ready` runs what is ready now, :meth:`advance` moves the
    clock and fires every timer due on the way, each at its own time. Exceptions that reach the
    loop's exception handler (a failing callback, a task's exception nobody retrieved) are kept
    in ``errors`` so that a test can fail on them.
    """

    def __init__(self) -> None:
        super().__init__()
        # kept in integer nanoseconds, so that 0.2 s then 0.1 s is exactly 0.3 s later
        self._ns = int(START) * _NS
        self.errors: list[dict[str, Any]] = []
        self.set_exception_handler(lambda loop, context: self.errors.append(context))

    def time(self) -> float:
        return self._ns / _NS

    @property
    def now(self) -> float:
        return self._ns / _NS

    @property
    def elapsed(self) -> float:
        """Seconds since the loop was made."""
        return (self._ns - int(START) * _NS) / _NS

    def _due(self) -> bool:
        return bool(self._ready) or bool(  # type: ignore[attr-defined]
            self._scheduled  # type: ignore[attr-defined]
            and self._scheduled[0].when() < self.time() + self._clock_resolution  # type: ignore[attr-defined]
        )

    def run_ready(self, limit: int = 10_000) -> None:
        """Run callbacks and task steps until nothing is ready or due at the current time."""
        for _ in range(limit):
            if not self._due():
                return
            self.call_soon(self.stop)
            self.run_forever()  # one pass over what is ready, then the stop
        raise AssertionError(f"the loop is still busy after {limit} passes")

    def next_timer(self) -> float | None:
        """When the earliest live timer is due, or None without one."""
        times = [t.when() for t in self._scheduled if not t.cancelled()]  # type: ignore[attr-defined]
        return min(times) if times else None

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, firing each timer due on the way at its own time."""
        target = self._ns + round(seconds * _NS)
        self.run_ready()
        while True:
            when = self.next_timer()
            # asyncio runs a timer up to one clock resolution early: so do we
            resolution = self._clock_resolution  # type: ignore[attr-defined]
            if when is None or when >= target / _NS + resolution:
                break
            self._ns = min(target, max(self._ns, math.ceil(when * _NS)))
            self.run_ready()
        self._ns = target
        self.run_ready()

    def close(self) -> None:
        """Cancel what is left (a test may stop mid-response), let it unwind, then close."""
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        super().close()


@contextmanager
def clock_loop() -> Iterator[ClockLoop]:
    """A :class:`ClockLoop`, closed afterwards; fails the test if an error reached the loop."""
    loop = ClockLoop()
    try:
        yield loop
    finally:
        loop.close()
    assert loop.errors == [], loop.errors


class FakeTransport:
    """What a protocol sees of a socket; it records every call the protocol makes.

    The peer reads everything at once while ``client_reads`` is true (the buffer stays empty).
    Set it false and writes pile up in the send buffer, calling ``pause_writing`` above the high
    water mark like asyncio's and uvloop's transports; :meth:`client_read` drains it again.
    ``close()`` delivers ``connection_lost`` once the buffer is empty; ``abort()`` at once.
    """

    def __init__(
        self,
        loop: ClockLoop,
        peername: Any = ("127.0.0.1", 50000),
        sockname: Any = ("127.0.0.1", 8000),
        sslcontext: Any = None,
        sock: Any = None,
    ) -> None:
        self.loop = loop
        self.protocol: Any = None
        self.extra = {
            "peername": peername,
            "sockname": sockname,
            "sslcontext": sslcontext,
            "socket": sock,
        }
        #: every byte written, in order (what the client will have received once it reads)
        self.written = bytearray()
        self.writes = 0
        self.client_reads = True
        #: bytes written but not yet read by the client
        self.buffered = 0
        self.high = 64 * 1024
        self.low = 16 * 1024
        self.writing_paused = False
        self.reading = True
        self.pause_reading_calls = 0
        self.resume_reading_calls = 0
        #: "close" or "abort", whichever the protocol called first
        self.how: str | None = None
        self.eof_written = False
        self.lost = False
        self.writes_after_close = 0
        #: what the client sent while the protocol was not reading: the kernel holds it
        self.held: list[bytes | None] = []

    # --- the transport interface --------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.how is not None:
            self.writes_after_close += 1
            return
        if self.eof_written:
            raise RuntimeError("write() after write_eof()")
        self.writes += 1
        self.written += data
        if not self.client_reads:
            self.buffered += len(data)
            if self.buffered > self.high and not self.writing_paused:
                self.writing_paused = True
                self.protocol.pause_writing()

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        assert high is not None and low is not None and 0 <= low <= high
        self.high, self.low = high, low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.low, self.high

    def pause_reading(self) -> None:
        self.pause_reading_calls += 1
        self.reading = False

    def resume_reading(self) -> None:
        self.resume_reading_calls += 1
        if not self.reading:
            self.reading = True
            if self.held:
                self.loop.call_soon(self._deliver_held)

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.how is not None

    def close(self) -> None:
        if self.how is None:
            self.how = "close"
            if not self.buffered:
                self.loop.call_soon(self._lose, None)

    def abort(self) -> None:
        if self.how != "abort":
            self.how = "abort"
            self.buffered = 0
            self.loop.call_soon(self._lose, None)

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        value = self.extra.get(name)
        return default if value is None else value

    # --- what the test does as the client ------------------------------------------------------

    def take(self) -> bytes:
        """What was written since the last call."""
        data = bytes(self.written)
        self.written.clear()
        return data

    def client_read(self, count: int | None = None) -> None:
        """The client reads ``count`` bytes (all when None) of what waits in the send buffer."""
        self.buffered -= self.buffered if count is None else min(count, self.buffered)
        if self.writing_paused and self.buffered <= self.low:
            self.writing_paused = False
            if not self.lost:
                self.protocol.resume_writing()
        if self.how == "close" and not self.buffered and not self.lost:
            self.loop.call_soon(self._lose, None)

    def deliver(self, data: bytes | None) -> None:
        """The client's ``data`` (None: its EOF) reaches the protocol, or waits while not reading."""
        if self.lost:
            return
        if not self.reading or self.held:
            self.held.append(data)
            return
        if data is not None:
            self.protocol.data_received(data)
        elif not self.protocol.eof_received():
            self.close()

    def _deliver_held(self) -> None:
        while self.held and self.reading and not self.lost:
            data = self.held.pop(0)
            if data is not None:
                self.protocol.data_received(data)
            elif not self.protocol.eof_received():
                self.close()

    def reset(self) -> None:
        """The client resets the connection."""
        self._lose(ConnectionResetError("reset by peer"))

    def _lose(self, exc: BaseException | None) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connection_lost(exc)


class Wire:
    """One protocol on a ``FakeTransport``, driven through the asyncio protocol methods only."""

    def __init__(self, loop: ClockLoop, protocol: asyncio.Protocol, **extra: Any) -> None:
        self.loop = loop
        self.protocol = protocol
        self.transport = FakeTransport(loop, **extra)
        self.transport.protocol = protocol
        self._unparsed = b""
        protocol.connection_made(self.transport)  # type: ignore[arg-type]
        loop.run_ready()

    def send(self, *pieces: bytes) -> None:
        """Deliver each piece as one read (held while the protocol does not read); run the loop."""
        for piece in pieces:
            self.transport.deliver(piece)
            self.loop.run_ready()

    def send_eof(self) -> None:
        """The client half-closes; the transport closes unless ``eof_received`` says otherwise."""
        self.transport.deliver(None)
        self.loop.run_ready()

    def received(self) -> bytes:
        """Everything written to the client since the last call."""
        return self.transport.take()

    def responses(self, head_only: bool = False) -> list[Response]:
        """The complete responses written since the last call; a partial one waits for the next.

        A body without Content-Length or chunked framing runs to the close, so it is complete
        only once the connection is closed.
        """
        data = self._unparsed + self.received()
        out = []
        while data:
            parsed = _parse_one(data, head_only, self.transport.how is not None)
            if parsed is None:
                break
            response, data = parsed
            out.append(response)
        self._unparsed = data
        return out

    def response(self, head_only: bool = False) -> Response:
        """The one complete response written since the last call."""
        (only,) = self.responses(head_only)
        return only

    @property
    def closed(self) -> bool:
        """The connection is gone (closed and flushed, or aborted)."""
        return self.transport.lost

    @property
    def aborted(self) -> bool:
        return self.transport.how == "abort"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    head: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = self.getall(name)
        return values[0] if values else None

    def getall(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


def _parse_one(data: bytes, head_only: bool, closed: bool) -> tuple[Response, bytes] | None:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
    response = Response(status, headers, head=head)
    if head_only or status < 200 or status in (204, 304):
        return response, rest
    if (response.get("transfer-encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size_line, sep, after = rest.partition(b"\r\n")
            if not sep:
                return None
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                if after.startswith(b"\r\n"):  # no trailer section
                    rest = after[2:]
                    break
                trailers, sep, rest = after.partition(b"\r\n\r\n")
                if not sep:
                    return None
                for line in trailers.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    response.trailers.append((name.strip(), value.strip()))
                break
            if len(after) < size + 2:
                return None
            parts.append(after[:size])
            rest = after[size + 2 :]
        response.body = b"".join(parts)
        return response, rest
    length = response.get("content-length")
    if length is not None:
        if len(rest) < int(length):
            return None
        response.body = rest[: int(length)]
        return response, rest[int(length) :]
    if not closed:
        return None
    response.body = rest
    return response, b""


def http_connection(
    loop: ClockLoop, handler: Any, *, state: ServerState | None = None, **options: Any
) -> tuple[Wire, ServerState]:
    """An ``HttpConnection`` serving ``handler`` with ``Config(**options)`` on a new ``Wire``."""
    if state is None:
        state = ServerState(Config(**options), handler, loop)
    return Wire(loop, HttpConnection(state)), state


def request(
    method: str, path: str, version: str = "1.1", headers: str = "", body: bytes = b""
) -> bytes:
    """A request as bytes, with ``Host`` and (for a body) ``Content-Length``."""
    head = f"{method} {path} HTTP/{version}\r\nHost: t\r\n{headers}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def get(path: str, version: str = "1.1", headers: str = "") -> bytes:
    return request("GET", path, version, headers)


# --- WebSocket ----------------------------------------------------------------------------------

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
_MASK = b"\x0a\x0b\x0c\x0d"


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


class WsPeer:
    """The client's end of a WebSocket opened by a real handshake over ``HttpConnection``.

    The handler's ``handle_request`` must call ``peregrine.ws.upgrade``; the transport is then
    handed from the HTTP connection to the WebSocket one, exactly as in a server.
    """

    def __init__(
        self,
        loop: ClockLoop,
        handler: Any,
        path: str = "/ws",
        headers: str = "",
        state: ServerState | None = None,
        **options: Any,
    ) -> None:
        self.wire, self.state = http_connection(loop, handler, state=state, **options)
        self.wire.send(
            f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"{headers}\r\n".encode("latin-1")
        )
        head, sep, rest = self.wire.received().partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 101 "), head
        self.head = head.decode("latin-1")
        self.loop = loop
        self.transport = self.wire.transport
        self.parser = FrameParser(max_payload=1 << 30, require_mask=False, allow_rsv1=True)
        self.parser.feed(rest)

    def send(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> None:
        self.wire.send(serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=_MASK))

    def frames(self) -> list[tuple[int, bytes]]:
        """The frames the server sent since the last call, as ``(opcode, payload)``."""
        self.parser.feed(self.wire.received())
        out = []
        while (frame := self.parser.next_frame()) is not None:
            out.append((frame.opcode, frame.payload))
        return out
