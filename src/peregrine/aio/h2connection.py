"""One asyncio protocol per HTTP/2 connection, serving the same handler API as HTTP/1.

The protocol work (frames, HPACK, stream states, flow control, flood limits) is the sans-IO
:class:`peregrine.http2.connection.H2Connection`; this module feeds it the socket's bytes, turns
its events into :class:`Request`/:class:`Response` pairs for the handler, and writes its bytes.

Each stream is an :class:`_Exchange`: it collects the request body, runs the handler as soon as
the request is complete (so the streams of a connection are handled concurrently: an async
handler per stream), and is what ``resp.write`` talks to. A streamed or file body waits for the
client's flow-control window (at most one write queued per stream) and for the transport.

How a connection becomes HTTP/2 (see :func:`take_over`): over TLS when ALPN picked ``h2``; on
cleartext when its first bytes are the client preface (prior knowledge).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ..http.request import Request
from ..http.response import Response
from ..http.status import STATUS_LINES
from ..http2 import frames
from ..http2.connection import H2Connection, Limits
from ..http2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamReset,
    WindowOpened,
)
from .send_watchdog import SendWatchdog
from .state import ServerState

log = logging.getLogger("peregrine.error")
access_log = logging.getLogger("peregrine.access")

_FILE_CHUNK = 64 * 1024
# Fields a handler may set that mean nothing (or harm) in HTTP/2 (RFC 9113 §8.2.2).
_HTTP1_ONLY = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_PREFACE = frames.PREFACE


def limits_from(config: Any) -> Limits:
    """The sans-IO connection's limits, from the server's :class:`Config`."""
    return Limits(
        max_concurrent_streams=config.http2_max_concurrent_streams,
        stream_window=config.http2_stream_window,
        max_header_list_size=config.max_header_size,
        max_header_count=config.max_header_count,
        max_resets=config.http2_max_resets,
        max_control_frames=config.http2_max_control_frames,
    )


def sniff_preface(conn: Any, data: bytes) -> bytes:
    """Called by the HTTP/1 connection with its first bytes while they may be the h2c preface.

    Returns the bytes the HTTP/1 parser should see (none while the preface is still possible,
    or after the connection went to HTTP/2).
    """
    seen: bytes = conn.h2_preface + data
    n = min(len(seen), len(_PREFACE))
    if seen[:n] != _PREFACE[:n]:
        conn.h2_preface = None
        return seen
    if n < len(_PREFACE):
        conn.h2_preface = seen  # part of the preface so far: wait for the rest
        return b""
    conn.h2_preface = None
    take_over(conn, seen)
    return b""


def take_over(conn: Any, data: bytes) -> None:
    """Move an HTTP/1 connection's transport to a new :class:`Http2Connection`.

    The same hand-over as an upgrade: the HTTP/1 object stops, leaves ``state.connections``,
    and the HTTP/2 protocol gets the transport and the bytes read so far.
    """
    transport = conn.transport
    conn.closed = conn.upgraded = True
    if conn.send_watchdog is not None:
        conn.send_watchdog.stop()
    conn.state.connections.discard(conn)
    conn.deadline_kind = 0
    if conn.timer is not None:
        conn.timer.cancel()
        conn.timer = None
    protocol = Http2Connection(conn.state)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if data:
        protocol.data_received(data)


def negotiated_h2(transport: asyncio.BaseTransport) -> bool:
    """True when TLS ALPN picked ``h2`` on this transport."""
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"


class _Exchange:
    """One stream: its request as it arrives, its response as it leaves.

    It is the ``Response``'s connection (``resp.write`` calls :meth:`write_stream_chunk`).
    """

    __slots__ = (
        "conn",
        "stream_id",
        "event",
        "body",
        "body_size",
        "request",
        "response",
        "task",
        "streaming_response",
        "waiter",
        "reset",
        "start",
    )

    def __init__(self, conn: Http2Connection, event: RequestReceived) -> None:
        self.conn = conn
        self.stream_id = event.stream_id
        self.event: RequestReceived | None = event
        self.body: list[bytes] = []
        self.body_size = 0
        self.request: Request | None = None
        self.response: Response | None = None
        self.task: asyncio.Task[None] | None = None
        self.streaming_response: Response | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.reset = False
        self.start = 0.0

    async def write_stream_chunk(self, response: Response, chunk: bytes | str) -> None:
        """Send one part of a streamed body (see :meth:`Response.write`)."""
        await self.conn.write_stream_chunk(self, response, chunk)

    def wake(self, exc: BaseException | None = None) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)


class Http2Connection(asyncio.Protocol):
    """Serves HTTP/2 on one connection (see the module docstring)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.config = state.config
        self.loop = state.loop
        self.handle = state.handler.handle_request
        self.transport: asyncio.Transport | None = None
        self.h2 = H2Connection(limits_from(self.config))
        self.exchanges: dict[int, _Exchange] = {}
        self.closed = False
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.trusted_proxy = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.send_watchdog: SendWatchdog | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.last_read = 0.0
        self.idle_since = 0.0
        self.requests_seen = 0
        self.closing = False  # GOAWAY sent for shutdown: close once the streams are done

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        state.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (peer[0], peer[1])
            if state.is_trusted_proxy is not None:
                self.trusted_proxy = state.is_trusted_proxy(peer[0])
        elif state.is_trusted_proxy is not None:
            self.trusted_proxy = state.is_trusted_proxy("unix")
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        config = self.config
        self.transport.set_write_buffer_limits(  # type: ignore[union-attr]
            config.write_buffer_high, config.write_buffer_low
        )
        self.h2.initiate()
        self._flush()
        self.last_read = self.loop.time()
        self._arm_timer(self.last_read + config.header_timeout)
        if state.draining:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_read = self.loop.time()
        h2 = self.h2
        for event in h2.receive(data):
            kind = event.__class__
            if kind is RequestReceived:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is DataReceived:
                self._on_data(event)  # type: ignore[arg-type]
            elif kind is WindowOpened:
                exchange = self.exchanges.get(event.stream_id)  # type: ignore[attr-defined]
                if exchange is not None:
                    exchange.wake()
            elif kind is StreamReset:
                self._on_reset(event)  # type: ignore[arg-type]
            elif kind is ConnectionTerminated:
                self._on_terminated(event)  # type: ignore[arg-type]
        self._flush()

    def eof_received(self) -> bool | None:
        # The client will send nothing more, WINDOW_UPDATEs included: a stream waiting for
        # window would wait forever. HTTP/2 clients do not half-close to wait for answers
        # (END_STREAM says a request is complete), so this is the end of the connection.
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        gone = ConnectionResetError("the client has gone")
        for exchange in self.exchanges.values():
            exchange.reset = True
            exchange.wake(gone)
        self._wake_writers()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None and not self.closed:
            # the client is not reading our answers: stop reading its requests (and its PINGs)
            self.transport.pause_reading()
        self._watch_sending()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        self._wake_writers()

    # --- events -------------------------------------------------------------------------------

    def _on_request(self, event: RequestReceived) -> None:
        exchange = _Exchange(self, event)
        self.exchanges[event.stream_id] = exchange
        self.requests_seen += 1
        config = self.config
        if event.error:
            self._send_error(exchange, event.error)
        elif len(event.path) > config.max_request_line:
            self._send_error(exchange, 414)
        elif event.content_length > config.max_body_size:
            self._send_error(exchange, 413)
        elif event.end_stream:
            self._start(exchange)
        else:
            if (b"expect", b"100-continue") in event.headers:
                # the client waits for this before sending its body (RFC 9110 §10.1.1)
                self.h2.send_headers(event.stream_id, 100, [])
            self._ensure_timer(self.last_read + config.body_timeout)

    def _on_data(self, event: DataReceived) -> None:
        exchange = self.exchanges.get(event.stream_id)
        h2 = self.h2
        if exchange is None or exchange.event is None:
            h2.acknowledge_data(event.stream_id, event.flow_length)  # answered already: dropped
            return
        data = event.data
        if data:
            exchange.body_size += len(data)
            if exchange.body_size > self.config.max_body_size:
                h2.acknowledge_data(event.stream_id, event.flow_length)
                self._send_error(exchange, 413)
                return
            exchange.body.append(data)
            # the body is kept whole for the handler, bounded by max_body_size: the window can
            # be given back at once
            h2.acknowledge_data(event.stream_id, event.flow_length)
        if event.end_stream:
            self._start(exchange)

    def _on_reset(self, event: StreamReset) -> None:
        exchange = self.exchanges.pop(event.stream_id, None)
        if exchange is None:
            return
        exchange.reset = True
        exchange.wake(ConnectionResetError("stream reset"))
        if exchange.task is not None and event.remote:
            exchange.task.cancel()  # the client gave up on it: stop the work (rapid reset)
        self._maybe_close()

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        if not event.remote or event.error_code != frames.NO_ERROR:
            if not event.remote:
                log.info(
                    "HTTP/2 connection error %s: %s",
                    frames.ERROR_NAMES.get(event.error_code, event.error_code),
                    event.detail,
                )
            self._close()
            return
        # the client's graceful GOAWAY: finish what is in flight, then close
        self.closing = True
        self._maybe_close()

    # --- running handlers ---------------------------------------------------------------------

    def _start(self, exchange: _Exchange) -> None:
        event = exchange.event
        assert event is not None
        exchange.event = None
        body = exchange.body
        raw_path, _, query = event.path.partition(b"?")
        request = Request(
            _METHODS.get(event.method) or event.method.decode("latin-1"),
            raw_path,
            query,
            "2",
            event.headers,
            body[0] if len(body) == 1 else b"".join(body),
            self.client,
            True,
            self.scheme,
        )
        exchange.body = []
        exchange.request = request
        if self.trusted_proxy and self.state.apply_proxy_headers is not None:
            self.state.apply_proxy_headers(request)
        response = Response(exchange, request)
        exchange.response = response
        exchange.start = self.loop.time() if self.config.access_log else 0.0
        try:
            result = self.handle(request, response)
        except Exception:
            self._handler_failed(exchange)
            return
        if result is not None and not hasattr(result, "__await__"):
            result = None
        if result is not None or response._unusual:
            task = self.loop.create_task(self._respond_later(exchange, response, result))
            exchange.task = task
            self.state.tasks.add(task)
            task.add_done_callback(self.state.tasks.discard)
            return
        self._send_response(exchange, response)

    async def _respond_later(self, exchange: _Exchange, response: Response, result: Any) -> None:
        """Finish a response that needs awaiting: an async handler, a stream or a file."""
        try:
            if result is not None:
                await result
            if response.upgrade_factory is not None:
                log.error("Response.upgrade() is not available over HTTP/2")
                self._send_error(exchange, 500)
                return
            if response.stream_source is not None:
                async for chunk in response.stream_source:
                    await self.write_stream_chunk(exchange, response, chunk)
            if exchange.reset or self.closed:
                return
            if response.file is not None:
                await self._send_file(exchange, response)
            elif exchange.streaming_response is response:
                self._end_stream(exchange)
            else:
                self._send_response(exchange, response)
        except asyncio.CancelledError:
            if not exchange.reset:
                raise
        except ConnectionError:
            if not (exchange.reset or self.closed):
                self._handler_failed(exchange)
        except Exception:
            self._handler_failed(exchange)
        finally:
            if response.file is not None:
                response.file[0].close()
            exchange.task = None

    def _head_fields(self, response: Response, length: int | None) -> list[tuple[bytes, bytes]]:
        state = self.state
        fields = [(f[2], f[1]) for f in response._fields if f[2] not in _HTTP1_ONLY]
        if not response._has_date:
            fields.append((b"date", state.date_line[6:-2]))
        if not response._has_server and state.server_line:
            fields.append((b"server", state.server_line[8:-2]))
        if length is not None:
            fields.append((b"content-length", b"%d" % length))
        return fields

    def _send_response(self, exchange: _Exchange, response: Response) -> None:
        """Send a response whose body is complete (bytes)."""
        if exchange.reset or self.closed:
            return
        request = exchange.request
        assert request is not None
        status = response.status
        if status not in STATUS_LINES or status < 200:
            log.error("invalid status code %r for an HTTP/2 response", status)
            self._handler_failed(exchange)
            return
        body = response.body
        no_body = status == 204 or status == 304
        h2 = self.h2
        stream_id = exchange.stream_id
        fields = self._head_fields(response, None if no_body else len(body))
        if no_body or not body or request.method == "HEAD":
            h2.send_headers(stream_id, status, fields, end_stream=True)
        else:
            h2.send_headers(stream_id, status, fields)
            h2.send_data(stream_id, bytes(body), end_stream=True)
        self._finished(exchange, response)

    def _finished(self, exchange: _Exchange, response: Response) -> None:
        self.state.requests += 1
        self.exchanges.pop(exchange.stream_id, None)
        if self.config.access_log and exchange.request is not None:
            self._log_access(exchange.request, response, exchange.start)
        if exchange.task is not None:
            self._flush()  # outside data_received: nobody else will
        self._maybe_close()

    def _log_access(self, request: Request, response: Response, start: float) -> None:
        client = request.client
        access_log.info(
            '%s - "%s %s HTTP/%s" %d %.2fms',
            f"{client[0]}:{client[1]}" if client else "-",
            request.method,
            request.url,
            request.version,
            response.status,
            (self.loop.time() - start) * 1000,
        )

    # --- streamed and file bodies ---------------------------------------------------------------

    async def write_stream_chunk(
        self, exchange: _Exchange, response: Response, chunk: bytes | str
    ) -> None:
        """Send one part of a streamed body; waits for the client's window and the transport."""
        if exchange.reset or self.closed:
            raise ConnectionResetError("the client has gone")
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        h2 = self.h2
        stream_id = exchange.stream_id
        request = exchange.request
        assert request is not None
        no_body = request.method == "HEAD" or response.status in (204, 304)
        if exchange.streaming_response is not response:
            if response.status not in STATUS_LINES or response.status < 200:
                raise ValueError(f"invalid status code {response.status!r}")
            h2.send_headers(stream_id, response.status, self._head_fields(response, None))
            exchange.streaming_response = response
        if chunk and not no_body:
            h2.send_data(stream_id, bytes(chunk))
        self._flush()
        await self._wait_sent(exchange)

    async def _wait_sent(self, exchange: _Exchange) -> None:
        """Wait until the stream's queued bytes went out and the transport takes more."""
        while self.h2.queued(exchange.stream_id) and not (exchange.reset or self.closed):
            waiter = exchange.waiter = self.loop.create_future()
            await waiter
        if exchange.reset or self.closed:
            raise ConnectionResetError("the client has gone")
        if self.write_paused:
            waiter = self.loop.create_future()
            self.drain_waiters.append(waiter)
            await waiter

    def _end_stream(self, exchange: _Exchange) -> None:
        self.h2.send_data(exchange.stream_id, b"", end_stream=True)
        assert exchange.response is not None
        self._finished(exchange, exchange.response)

    async def _send_file(self, exchange: _Exchange, response: Response) -> None:
        assert response.file is not None and exchange.request is not None
        file, offset, count = response.file
        h2 = self.h2
        stream_id = exchange.stream_id
        status = response.status
        if status not in STATUS_LINES or status < 200:
            raise ValueError(f"invalid status code {status!r}")
        no_body = exchange.request.method == "HEAD" or status in (204, 304) or not count
        h2.send_headers(
            stream_id,
            status,
            self._head_fields(response, None if status in (204, 304) else count),
            end_stream=no_body,
        )
        fd = file.fileno()
        while not no_body and count > 0:
            piece = os.pread(fd, min(_FILE_CHUNK, count), offset)
            if not piece:
                # the file shrank below the announced length: the stream cannot end honestly
                log.warning("file shrank while being sent for %s", exchange.request.url)
                h2.reset_stream(stream_id, frames.INTERNAL_ERROR)
                exchange.reset = True
                self.exchanges.pop(stream_id, None)
                self._flush()
                return
            offset += len(piece)
            count -= len(piece)
            h2.send_data(stream_id, piece, end_stream=count == 0)
            self._flush()
            if count:
                await self._wait_sent(exchange)
        self._finished(exchange, response)

    # --- errors ---------------------------------------------------------------------------------

    def _handler_failed(self, exchange: _Exchange) -> None:
        request = exchange.request
        log.exception(
            "handler failed on %s %s",
            request.method if request else "?",
            request.url if request else "?",
        )
        if exchange.streaming_response is not None:
            self.h2.reset_stream(exchange.stream_id, frames.INTERNAL_ERROR)
            exchange.reset = True
            self.exchanges.pop(exchange.stream_id, None)
            self._flush()
            self._maybe_close()
        else:
            self._send_error(exchange, 500)

    def _send_error(self, exchange: _Exchange, status: int) -> None:
        """A plain-text error response on one stream; the connection goes on."""
        if exchange.reset or self.closed:
            return
        exchange.event = None  # any further body bytes are dropped
        exchange.body = []
        body = STATUS_LINES[status][9:-2] + b"\n"
        state = self.state
        fields = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            (b"date", state.date_line[6:-2]),
        ]
        if state.server_line:
            fields.append((b"server", state.server_line[8:-2]))
        h2 = self.h2
        h2.send_headers(exchange.stream_id, status, fields)
        h2.send_data(exchange.stream_id, body, end_stream=True)
        state.requests += 1
        self.exchanges.pop(exchange.stream_id, None)
        self._flush()
        self._maybe_close()

    # --- writing and closing -------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.h2.closed and not self.closed:
            self._close()

    def _wake_writers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if self.closed:
                    waiter.set_exception(ConnectionResetError("the client has gone"))
                else:
                    waiter.set_result(None)

    def _maybe_close(self) -> None:
        if self.exchanges or self.closed:
            return
        self.idle_since = now = self.loop.time()
        self._ensure_timer(now + self.config.keep_alive_timeout)
        if self.closing or self.state.draining:
            if self.state.draining and not self.h2.goaway_sent:
                self.h2.close()
                self._flush()
            self._close()

    def _close(self) -> None:
        """Close after what is buffered has been sent."""
        self.closed = True
        self._flush_final()
        for exchange in self.exchanges.values():
            exchange.reset = True
            exchange.wake(ConnectionResetError("the connection is closing"))
            if exchange.task is not None:
                exchange.task.cancel()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size():
                self._watch_sending()
            transport.close()

    def _flush_final(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _watch_sending(self) -> None:
        if self.transport is None:
            return
        watchdog = self.send_watchdog
        if watchdog is None:
            watchdog = self.send_watchdog = SendWatchdog(
                self.loop, self.transport, self.config.send_timeout, self._abort
            )
        watchdog.start()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- timeouts -------------------------------------------------------------------------------

    def _arm_timer(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self._on_timer)
        self.timer_at = when

    def _ensure_timer(self, when: float) -> None:
        """Make the timer fire no later than ``when`` (later deadlines are found when it fires)."""
        if self.timer is None or self.timer_at > when:
            self._arm_timer(when)

    def _on_timer(self) -> None:
        """One timer for all read timeouts, re-armed for whatever is due next.

        Idle (no stream in flight): keep_alive_timeout after the last byte, then GOAWAY and
        close (header_timeout until the first request). Streams waiting for their body:
        body_timeout without a byte gets them 408. Handlers running: no read deadline.
        """
        self.timer = None
        if self.closed:
            return
        config = self.config
        now = self.loop.time()
        waiting = [e for e in self.exchanges.values() if e.event is not None]
        if waiting:
            due = self.last_read + config.body_timeout
            if now >= due:
                for exchange in waiting:
                    self._send_error(exchange, 408)
                due = now + config.body_timeout
        elif self.exchanges:
            due = now + min(config.keep_alive_timeout, config.body_timeout)
        else:
            idle = config.keep_alive_timeout if self.requests_seen else config.header_timeout
            due = max(self.last_read, self.idle_since) + idle
            if now >= due:
                self.h2.close()
                self._close()
                return
        if not self.closed:
            self._arm_timer(due)

    # --- graceful shutdown ----------------------------------------------------------------------

    def is_idle(self) -> bool:
        """True when no stream is in flight and nothing waits to be sent."""
        return not self.exchanges and (
            self.transport is None or not self.transport.get_write_buffer_size()
        )

    def awaits_first_request(self) -> bool:
        """True while the client has not opened a stream yet (shutdown gives it a grace)."""
        return self.requests_seen == 0 and self.h2.highest_stream_id == 0

    def shutdown(self) -> None:
        """GOAWAY now (naming the last stream we answer); close once in-flight streams finish."""
        if self.closed:
            return
        self.closing = True
        self.h2.close()
        self._flush()
        self._maybe_close()
