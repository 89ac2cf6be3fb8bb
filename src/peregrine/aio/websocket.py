"""One asyncio protocol per upgraded WebSocket connection.

It owns the transport, the sans-IO `ServerConnection`, the timers and flow control, and
calls the handler's hooks. The rules that keep it correct:

1. Hooks run in order, one at a time: `handle_ws_conn`, then each message, then
   `handle_ws_disconn` exactly once. A hook that returns an awaitable holds back the
   ones after it until it finishes; while too much waits, reading pauses: the transport
   stops reading and the frames already read stay unparsed (at most one read's worth),
   so nothing more is decompressed or queued until the hooks catch up.
2. The transport ends in one place, `connection_lost`, which cancels every timer and
   queues `handle_ws_disconn`. Every other path (close handshake done, close timeout,
   send buffer over its limit, handler error) only asks the transport to close.
3. At most three timers exist, each with one job: keepalive (next ping, or the pong
   deadline), close (the peer's answer to our close frame, or a transport that does not
   finish closing), send (a client that reads nothing for `send_timeout`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ..http.request import Request
from ..ws.deflate import DeflateParams, PerMessageDeflate
from ..ws.events import Message, Pong
from ..ws.protocol import ServerConnection, State
from .send_watchdog import SendWatchdog

if TYPE_CHECKING:
    # only for annotations: the state makes WebSocket connections (ServerState.open_websocket)
    from .state import ServerState

log = logging.getLogger("peregrine.error")

__all__ = ["WebSocket", "WebSocketConnection", "make_factory"]

# Queue items: what the next hook call is.
_MESSAGE, _DISCONN = 0, 1


class WebSocket:
    """The application's handle on one WebSocket connection (passed to every hook)."""

    __slots__ = ("_conn", "request", "subprotocol", "__weakref__")

    def __init__(
        self, conn: WebSocketConnection, request: Request, subprotocol: str | None
    ) -> None:
        self._conn = conn
        #: The upgrade request (path, headers, query, client).
        self.request = request
        #: The negotiated subprotocol, or None.
        self.subprotocol = subprotocol

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a message: text for `str`, binary for bytes-like data.

        Does nothing once the connection is closing or closed (see `closed`). Use
        `await drain()` to wait while the client reads more slowly than you send.
        """
        conn = self._conn
        if isinstance(data, str):
            conn.write(conn.protocol.send_text(data))
        elif isinstance(data, (bytes, bytearray, memoryview)):
            conn.write(conn.protocol.send_binary(data))
        else:
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")

    def ping(self, data: bytes = b"") -> None:
        """Send a ping with up to 125 bytes of data (the pong is handled by the server)."""
        conn = self._conn
        conn.write(conn.protocol.ping(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (no-op if it has already started).

        Raises ValueError for a code that may not be sent or a reason over 123 bytes.
        """
        self._conn.close(code, reason)

    async def drain(self) -> None:
        """Wait until the send buffer is below its high-water mark.

        Raises ConnectionResetError when the connection is gone.
        """
        await self._conn.drain()

    @property
    def closed(self) -> bool:
        """True once the close handshake has started or the connection is gone."""
        conn = self._conn
        return conn.lost or conn.protocol.state is not State.OPEN

    @property
    def close_code(self) -> int | None:
        """The code the connection closed with (1006 without a close frame), else None."""
        return self._conn.protocol.close_code

    @property
    def client(self) -> tuple[str, int] | None:
        """(host, port) of the client."""
        return getattr(self.request, "client", None)

    def __repr__(self) -> str:
        path = getattr(self.request, "path", "?")
        return f"<WebSocket {path} {'closed' if self.closed else 'open'}>"


def make_factory(
    request: Any,
    subprotocol: str | None,
    deflate: DeflateParams | None,
    hooks: Any = None,
) -> Callable[[asyncio.Transport, ServerState], WebSocketConnection]:
    """The `factory(transport, state)` that `Response.upgrade` expects (docs/internals.md).

    ``hooks`` is the object whose ``handle_ws_*`` methods are called (default: the worker's
    handler; the ASGI adapter passes one per connection).
    """

    def factory(transport: asyncio.Transport, state: ServerState) -> WebSocketConnection:
        return WebSocketConnection(state, request, subprotocol, deflate, hooks)

    return factory


class WebSocketConnection(asyncio.Protocol):
    """Serves one WebSocket connection (see the module docstring)."""

    # Slots: thousands of mostly idle connections are the normal case for WebSocket.
    __slots__ = (
        "state",
        "config",
        "loop",
        "protocol",
        "ws",
        "on_conn",
        "on_message",
        "on_disconn",
        "transport",
        "lost",
        "queue",
        "queued_bytes",
        "busy",
        "reading_paused",
        "transport_paused",
        "processing",
        "batch",
        "batch_bytes",
        "eof_sent",
        "write_paused",
        "drain_waiters",
        "keepalive_timer",
        "awaiting_pong",
        "ping_count",
        "close_timer",
        "send_watchdog",
    )

    def __init__(
        self,
        state: ServerState,
        request: Request,
        subprotocol: str | None = None,
        deflate: DeflateParams | None = None,
        hooks: Any = None,
    ) -> None:
        self.state = state
        config = self.config = state.config
        self.loop = state.loop
        codec = None
        if deflate is not None:
            codec = PerMessageDeflate(deflate, level=config.ws_compression_level)
        #: The sans-IO protocol state.
        self.protocol = ServerConnection(max_message_size=config.ws_max_message_size, deflate=codec)
        self.ws = WebSocket(self, request, subprotocol)
        handler = hooks if hooks is not None else state.handler
        self.on_conn = getattr(handler, "handle_ws_conn", None)
        self.on_message = getattr(handler, "handle_ws_message", None)
        self.on_disconn = getattr(handler, "handle_ws_disconn", None)
        self.transport: asyncio.Transport | None = None
        #: True once the transport is gone (connection_lost ran).
        self.lost = False
        # Hook calls waiting for an awaitable hook before them to finish.
        self.queue: deque[tuple[int, Any]] = deque()
        self.queued_bytes = 0
        self.busy = False
        #: True while too much waits for the hooks: no parsing, no reading.
        self.reading_paused = False
        self.transport_paused = False
        #: True while `_process` runs (it is not re-entered from a hook's side effects).
        self.processing = False
        #: while `_process` runs: what is written, sent in one write when it is over
        self.batch: list[bytes] | None = None
        self.batch_bytes = 0
        self.eof_sent = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.keepalive_timer: asyncio.TimerHandle | None = None
        self.awaiting_pong: bytes | None = None
        self.ping_count = 0
        self.close_timer: asyncio.TimerHandle | None = None
        self.send_watchdog: SendWatchdog | None = None

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        transport = self.transport = cast(asyncio.Transport, transport)
        self.state.connections.add(self)
        config = self.config
        transport.set_write_buffer_limits(config.write_buffer_high, config.write_buffer_low)
        self._schedule_ping()
        if self.on_conn is not None:
            self._call(self.on_conn, (self.ws,))
        if self.state.draining:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        self.protocol.feed(data)
        if not self.reading_paused:
            self._process()

    def _process(self) -> None:
        """Turn buffered bytes into events until they run out or reading pauses."""
        protocol = self.protocol
        self.processing = True
        # What the hooks and the protocol write meanwhile goes out in one write at the end:
        # several frames in one read get their answers in one system call, not one each.
        self.batch = []
        try:
            # One event at a time: a sync hook answers a message before a bad frame after
            # it fails the connection (whose close frame must come after that answer).
            while not self.reading_paused:
                event = protocol.next_event()
                if type(event) is Message:
                    # (a message adds nothing to data_to_send)
                    hook = self.on_message
                    if hook is None or self.busy or self.queue:
                        self._message(event.data)
                        continue
                    # _call inlined: nothing waits before this message
                    try:
                        result = hook(self.ws, event.data)
                    except Exception:
                        self._hook_failed(hook)
                        continue
                    if result is not None and hasattr(result, "__await__"):
                        self._await_later(hook, result)
                    continue
                out = protocol.data_to_send()
                if out:
                    self.write(out)
                if event is None:
                    break
                if type(event) is Pong:
                    self._pong(event.data)
        finally:
            self.processing = False
            self._flush()
        if not self.reading_paused and self.transport_paused and not self.lost:
            self.transport_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
            if self.awaiting_pong is not None and self.keepalive_timer is not None:
                # The pong may have waited unread: the deadline counts from now.
                self.keepalive_timer.cancel()
                self.keepalive_timer = self.loop.call_later(
                    self.config.ws_ping_timeout, self._pong_timed_out
                )
        self._check_state()

    def eof_received(self) -> bool | None:
        # The peer will send nothing more: after its close frame this is the normal end,
        # otherwise the connection ended abnormally (1006). Either way close our side.
        self.protocol.receive_eof()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.protocol.receive_eof()
        self.state.connections.discard(self)
        for name in ("keepalive_timer", "close_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        self._wake_drainers()
        if self.on_disconn is not None:
            self._enqueue(_DISCONN, self.protocol.close_code or 1006)

    def pause_writing(self) -> None:
        self.write_paused = True
        if not self.lost:
            if self.send_watchdog is None:
                self.send_watchdog = SendWatchdog(
                    self.loop, self.transport, self.config.send_timeout, self._abort
                )
            self.send_watchdog.start()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        self._wake_drainers()

    # --- sending ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write protocol output, closing a client whose unread output passed the limit."""
        batch = self.batch
        if batch is not None and data:
            batch.append(data)
            self.batch_bytes += len(data)
            if self.batch_bytes >= self.config.write_buffer_high:
                self._flush(True)  # the limit below is checked on what was written so far
            return
        self._send(data)

    def _send(self, data: bytes | list[bytes]) -> None:
        transport = self.transport
        if not data or transport is None or self.lost or transport.is_closing():
            return
        # Checked before adding: one large message may exceed the limit, but a client
        # still sitting on more than the limit when the next one comes is not reading.
        if transport.get_write_buffer_size() > self.config.ws_write_limit:
            log.info(
                "WebSocket send buffer over ws_write_limit: closing a client that does not read"
            )
            self._abort()
            return
        if data.__class__ is list:
            transport.writelines(data)
        else:
            transport.write(data)  # type: ignore[arg-type]

    def _flush(self, go_on: bool = False) -> None:
        """Write what was batched (and keep batching with `go_on`)."""
        batch = self.batch
        size = self.batch_bytes
        self.batch = [] if go_on else None
        self.batch_bytes = 0
        if not batch:
            return
        if len(batch) == 1:
            self._send(batch[0])
        elif size < 16384:
            self._send(b"".join(batch))  # small frames: one buffer is cheapest
        else:
            self._send(batch)  # large ones are not copied: writelines (one writev in uvloop)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (if still open) and wait for the peer's answer."""
        self.write(self.protocol.close(code, reason))
        self._check_state()

    async def drain(self) -> None:
        """Wait while writing is paused; raise ConnectionResetError once the connection is gone."""
        if self.lost:
            raise ConnectionResetError("the WebSocket connection is closed")
        if not self.write_paused:
            return
        waiter = self.loop.create_future()
        self.drain_waiters.append(waiter)
        await waiter

    def _wake_drainers(self) -> None:
        waiters = self.drain_waiters
        if not waiters:
            return
        self.drain_waiters = []
        for waiter in waiters:
            if not waiter.done():
                if self.lost:
                    waiter.set_exception(ConnectionResetError("the WebSocket connection is closed"))
                else:
                    waiter.set_result(None)

    # --- the close paths ----------------------------------------------------------------------

    def _check_state(self) -> None:
        """Act on the protocol's state after anything that may have changed it."""
        # (self.state is the worker's ServerState; this is the WebSocket's OPEN/CLOSING/CLOSED)
        ws_state = self.protocol.state
        if ws_state is State.OPEN or self.lost:
            return
        if self.batch:
            self._flush(True)  # before the transport is closed or half-closed below
        transport = self.transport
        assert transport is not None
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
            self.keepalive_timer = None
        if self.close_timer is None:
            # Bounds both waits: for the peer's close frame, and for a transport that
            # cannot finish closing because the peer reads nothing.
            self.close_timer = self.loop.call_later(
                self.config.ws_close_timeout, self._close_timed_out
            )
        if ws_state is State.CLOSED:
            # Handshake done: the server closes the TCP connection first (RFC 6455 7.1.1).
            if not transport.is_closing():
                transport.close()
        elif self.protocol.failed and not self.eof_sent:
            # We failed the connection: half-close so the peer sees our close frame and EOF,
            # and read (discarding) until it closes too; closing outright while its bytes
            # are still arriving would reset the connection and could destroy our frame.
            self.eof_sent = True
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def _close_timed_out(self) -> None:
        self.close_timer = None
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()

    # --- keepalive ----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.config.ws_ping_interval
        if interval > 0:
            self.keepalive_timer = self.loop.call_later(interval, self._send_keepalive)

    def _send_keepalive(self) -> None:
        self.keepalive_timer = None
        if self.lost or self.protocol.state is not State.OPEN:
            return
        self.ping_count += 1
        data = self.ping_count.to_bytes(4, "big")
        self.awaiting_pong = data
        self.write(self.protocol.ping(data))
        self.keepalive_timer = self.loop.call_later(
            self.config.ws_ping_timeout, self._pong_timed_out
        )

    def _pong(self, data: bytes) -> None:
        if self.awaiting_pong is not None and data == self.awaiting_pong:
            self.awaiting_pong = None
            if self.keepalive_timer is not None:
                self.keepalive_timer.cancel()
            self._schedule_ping()

    def _pong_timed_out(self) -> None:
        self.keepalive_timer = None
        if self.reading_paused:
            # We are not reading (the hooks lag): the pong may sit unread, and the client
            # is not at fault. Check again later; resuming restarts the deadline.
            self.keepalive_timer = self.loop.call_later(
                self.config.ws_ping_timeout, self._pong_timed_out
            )
            return
        log.info("WebSocket keepalive: no pong within ws_ping_timeout, closing")
        self.close(1011, "keepalive ping timeout")

    # --- calling the handler --------------------------------------------------------------------

    def _message(self, data: str | bytes) -> None:
        hook = self.on_message
        if hook is None:
            return
        if not self.busy and not self.queue:
            self._call(hook, (self.ws, data))  # the fast path: nothing waits before it
            return
        self._enqueue(_MESSAGE, data)

    def _enqueue(self, kind: int, arg: Any) -> None:
        self.queue.append((kind, arg))
        if kind == _MESSAGE:
            self.queued_bytes += len(arg)
            config = self.config
            if (
                (
                    len(self.queue) >= config.max_pipelined
                    or self.queued_bytes > config.ws_max_message_size
                )
                and not self.reading_paused
                and not self.lost
                and self.transport is not None
            ):
                # Stops `_process` too: the frames already read wait unparsed.
                self.reading_paused = True
                if not self.transport_paused:
                    self.transport_paused = True
                    self.transport.pause_reading()
        if not self.busy:
            self._run_queue()

    def _run_queue(self) -> None:
        queue = self.queue
        while queue and not self.busy:
            kind, arg = queue.popleft()
            if kind == _MESSAGE:
                self.queued_bytes -= len(arg)
                self._call(self.on_message, (self.ws, arg))  # type: ignore[arg-type]
            else:
                self._call(self.on_disconn, (self.ws, arg))  # type: ignore[arg-type]
        if self.reading_paused and not queue and not self.lost and self.transport is not None:
            self.reading_paused = False
            if not self.processing:  # else the loop in `_process` simply goes on
                self._process()

    def _call(self, hook: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = hook(*args)
        except Exception:
            self._hook_failed(hook)
            return
        if result is not None and hasattr(result, "__await__"):
            self._await_later(hook, result)

    def _await_later(self, hook: Callable[..., Any], result: Any) -> None:
        """Run the rest of an async hook as a task; the hooks after it wait for it."""
        self.busy = True
        task = self.loop.create_task(self._await_hook(hook, result))
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    async def _await_hook(self, hook: Callable[..., Any], awaitable: Any) -> None:
        try:
            await awaitable
        except ConnectionError:
            # The client went away mid-send (drain() raises): connection_lost handles it.
            # While the connection is still there, it is the hook's own failure (a backend
            # it talks to), like any other exception.
            if not self.lost:
                self._hook_failed(hook)
        except asyncio.CancelledError:
            # Shutdown gave up waiting: drop the messages still queued, keep the disconn call.
            self.queue = deque(item for item in self.queue if item[0] == _DISCONN)
            self.queued_bytes = 0
            self._abort()
            self.busy = False
            self._run_queue()
            raise
        except Exception:
            self._hook_failed(hook)
        self.busy = False
        self._run_queue()

    def _hook_failed(self, hook: Callable[..., Any]) -> None:
        log.exception("WebSocket handler %s failed", getattr(hook, "__name__", hook))
        if not self.lost and self.protocol.state is State.OPEN:
            self.close(1011)

    # --- graceful shutdown ----------------------------------------------------------------------

    def is_idle(self) -> bool:
        """True when open with no hook running or waiting; a closing connection is not idle."""
        return (
            not self.lost and self.protocol.state is State.OPEN and not self.busy and not self.queue
        )

    def awaits_first_request(self) -> bool:
        """Always False: the upgrade request was this connection's first."""
        return False

    def shutdown(self) -> None:
        """Server shutdown: close with 1001 Going Away (once).

        The worker calls it at the start of shutdown, busy or not. The peer gets at most
        half the graceful period to answer (not the whole `ws_close_timeout`), so that the
        transport ends, and an async `handle_ws_disconn` runs, while the worker still
        waits for `state.tasks`.
        """
        if not self.lost and self.protocol.state is State.OPEN:
            self.close(1001, "server shutting down")
            wait = min(self.config.ws_close_timeout, self.config.graceful_timeout / 2)
            if self.close_timer is not None and wait < self.config.ws_close_timeout:
                self.close_timer.cancel()
                self.close_timer = self.loop.call_later(wait, self._close_timed_out)
