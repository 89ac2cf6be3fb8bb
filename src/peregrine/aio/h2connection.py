"""One asyncio protocol per HTTP/2 connection, serving the same handler API as HTTP/1.

The protocol work (frames, HPACK, stream states, flow control, flood limits) is the sans-IO
:class:`peregrine.http2.connection.H2Connection`; this module feeds it the socket's bytes, turns
its events into :class:`Request`/:class:`Response` pairs for the handler, and writes its bytes.

Each stream is an :class:`H2Exchange`, the HTTP/2 twin of ``aio/exchange.py``'s ``Exchange``,
with the same interface: a native handler runs as soon as its request is complete (its body
collected whole), an interface adapter (ASGI, WSGI: ``serve_exchange``) as soon as the head
arrives (its body streamed through a ``RequestBody``, window given back as the application reads
it). Streams of a connection are handled concurrently: a task per stream that needs one. A
streamed or file body waits for the client's flow-control window (at most one write queued per
stream) and for the transport.

How a connection becomes HTTP/2 (see :func:`take_over`): over TLS when ALPN picked ``h2``; on
cleartext when its first bytes are the client preface (prior knowledge). ``aio/h2preface.py``
notices both and imports this module only then.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any

from ..http.handler_response import Response as HandlerResponse
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
from .body import RequestBody
from .exchange import ContentLengthExceeded
from .h2timing import count_response, start_time
from .send_watchdog import SendWatchdog
from .state import ServerState

_STREAM_GONE = "the stream was reset or the client has gone"

log = logging.getLogger("peregrine.error")

_FILE_CHUNK = 64 * 1024
# Fields a handler may set that mean nothing (or harm) in HTTP/2 (RFC 9113 §8.2.2).
_HTTP1_ONLY = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
# content-length fields by length: bodies often have the same few sizes
_LENGTH_FIELDS: dict[int, tuple[bytes, bytes]] = {}


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


def take_over(conn: Any, data: bytes) -> None:
    """Move an HTTP/1 connection's transport to a new :class:`Http2Connection`.

    The same hand-over as an upgrade: the HTTP/1 object stops, leaves ``state.connections``,
    and the HTTP/2 protocol gets the transport and the bytes read so far.
    """
    transport = conn.transport
    conn.let_go()
    protocol = Http2Connection(conn.state)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if data:
        protocol.data_received(data)


class H2Exchange:
    """One stream: its request as it arrives, its response as it leaves.

    The interface of ``peregrine.aio.exchange.Exchange`` (what the ASGI/WSGI adapters use:
    ``respond``, ``begin_stream``, ``write``, ``end``, ``send_file``, ``abort``, ``body``,
    ``client_gone``...), and the ``Response``'s connection for the native API (``resp.write``
    calls :meth:`write_stream_chunk`). ``abort`` resets this stream only.
    """

    __slots__ = (
        "h2conn",
        "stream_id",
        "event",
        "chunks",
        "body_size",
        "unacked",
        "request",
        "response",
        "body",
        "task",
        "streaming",
        "left",
        "waiter",
        "reset",
        "done",
        "start",
        "expect_continue",
        "lingering",
        "_port",
        "_gone",
    )

    def __init__(self, h2conn: Http2Connection, event: RequestReceived) -> None:
        self.h2conn = h2conn
        self.stream_id = event.stream_id
        #: the request head until the request is dispatched (body bytes are collected till then)
        self.event: RequestReceived | None = event
        self.chunks: list[bytes] = []
        self.body_size = 0
        #: flow-controlled bytes received but not yet given back (adapters: until read)
        self.unacked = 0
        self.request: Request | None = None
        self.response: Response | None = None
        #: the request body as it arrives (interface adapters), else None
        self.body: RequestBody | None = None
        self.task: asyncio.Task[None] | None = None
        #: True once the head of a streamed body is out
        self.streaming = False
        #: bytes still owed of a length the application declared, or None
        self.left: int | None = None
        self.waiter: asyncio.Future[None] | None = None
        #: the stream is over for us: reset (by either side) or the connection is gone
        self.reset = False
        #: the response is complete
        self.done = False
        self.start = 0.0
        #: the client waits for 100 Continue before sending the body (adapters: sent on reading)
        self.expect_continue = (
            not event.end_stream and (b"expect", b"100-continue") in event.headers
        )
        #: reset while its application runs: counted in ``Limits.lingering`` till it ends
        self.lingering = False
        self._port: _StreamPort | None = None
        self._gone: asyncio.Future[None] | None = None

    # --- what the adapters see ------------------------------------------------------------------

    @property
    def conn(self) -> _StreamPort:
        """The connection as the adapters use it (``transport``, ``scheme``, ``exchange_done``...)."""
        port = self._port
        if port is None:
            port = self._port = _StreamPort(self)
        return port

    @property
    def config(self) -> Any:
        """The server's Config (what ``peregrine.ws`` looks up through ``resp._conn``)."""
        return self.h2conn.config

    @property
    def client_gone(self) -> bool:
        """True once nothing more can be sent on this stream."""
        return self.reset or self.h2conn.closed

    async def wait_client_gone(self) -> None:
        """Wait until the stream is reset or the client disconnects (or the response is done)."""
        if self.client_gone:
            return
        if self._gone is None:
            self._gone = self.h2conn.loop.create_future()
        await self._gone

    def client_left(self) -> None:
        """The stream is gone (reset, connection lost): wake everyone waiting on it."""
        self.reset = True
        if self.body is not None:
            self.body.fail()
        self.wake(ConnectionResetError(_STREAM_GONE))
        self.release()

    def release(self) -> None:
        """Wake whoever waits in :meth:`wait_client_gone`."""
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    def respond(self, response: Response) -> None:
        """Send ``response`` whole: its body is ``response.body`` (bytes)."""
        self.h2conn.send_whole(self, response)

    def begin_stream(self, response: Response, length: int | None = None) -> None:
        """Send the head of a body that follows in pieces (with ``length``: that content-length)."""
        if self.client_gone:
            raise ConnectionResetError(_STREAM_GONE)
        self.response = response
        self.h2conn.send_head(self, response, length)
        self.left = length if self.h2conn.has_body(self, response) else None
        self.streaming = True

    async def write(self, chunk: bytes | bytearray | memoryview | str) -> None:
        """Send one piece of a streamed body; waits for the client's window and the transport."""
        if self.client_gone:
            raise ConnectionResetError(_STREAM_GONE)
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        elif chunk.__class__ is not bytes:
            chunk = bytes(chunk)
        response = self.response
        assert response is not None
        if not self.streaming:
            self.begin_stream(response)
        if chunk and self.h2conn.has_body(self, response):
            left = self.left
            if left is not None:
                if len(chunk) > left:
                    raise ContentLengthExceeded("more body than the declared Content-Length")
                self.left = left - len(chunk)
            response._bytes_streamed += len(chunk)  # for the access log
            self.h2conn.send_body(self, chunk)
            await self.h2conn.wait_sent(self)

    def end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Finish a streamed body (sending the head first if nothing was written); with
        ``trailers`` (checked fields), in a trailing HEADERS frame that ends the stream."""
        if self.client_gone or self.done:
            return
        response = self.response
        assert response is not None
        if not self.streaming:
            self.begin_stream(response)
        if self.left:
            log.warning(
                "response to %s ended %d bytes short of its content-length", self, self.left
            )
            self.abort()  # a short body must not look complete
            return
        self.h2conn.end_body(self, trailers)

    async def send_file(self, response: Response) -> None:
        """Send ``response`` whose body is the file set by ``Response.send_file``."""
        try:
            await self.h2conn.send_file(self, response)
        finally:
            assert response.file is not None
            response.file[0].close()

    def abort(self) -> None:
        """Reset this stream (after an error once the head is out): the others go on."""
        self.h2conn.reset_stream(self, frames.INTERNAL_ERROR)

    # --- what a native Response sees ------------------------------------------------------------

    async def write_stream_chunk(self, response: Response, chunk: bytes | str) -> None:
        """Send one part of a streamed body (see :meth:`Response.write`)."""
        if self.response is not response:
            raise RuntimeError("Response.write() is for async handlers, while they run")
        await self.write(chunk)

    def is_streaming(self, response: Response) -> bool:
        """True once the head of ``response``'s streamed body has been sent."""
        return self.streaming and self.response is response

    # --- flow control -------------------------------------------------------------------------

    def wake(self, exc: BaseException | None = None) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    def body_wanted(self, body: RequestBody) -> None:
        """The application took what was buffered (or waits for more): give the window back."""
        if self.expect_continue and self.response is None and not self.client_gone:
            self.expect_continue = False
            self.h2conn.h2.send_headers(self.stream_id, 100, [])
            self.h2conn.flush_later()
        if not body.unread and self.unacked and not self.client_gone:
            self.h2conn.h2.acknowledge_data(self.stream_id, self.unacked)
            self.unacked = 0
            self.h2conn.flush_later()

    def __repr__(self) -> str:
        request = self.request
        what = f"{request.method} {request.url}" if request is not None else "?"
        return f"<H2Exchange stream {self.stream_id} {what}>"


class _StreamPort:
    """What an adapter reaches through ``exchange.conn``, for one stream of a connection.

    The HTTP/1 connection offers these itself; here they act on the one stream.
    """

    __slots__ = ("exchange",)

    def __init__(self, exchange: H2Exchange) -> None:
        self.exchange = exchange

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.exchange.h2conn.transport

    @property
    def scheme(self) -> str:
        return self.exchange.h2conn.scheme

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.exchange.h2conn.loop

    @property
    def state(self) -> ServerState:
        return self.exchange.h2conn.state

    @property
    def closed(self) -> bool:
        return self.exchange.client_gone

    @property
    def client(self) -> tuple[str, int] | None:
        return self.exchange.h2conn.client

    @property
    def parser(self) -> None:
        """No HTTP/1 parser: nothing on an HTTP/2 stream is an upgrade (WebSocket) request."""
        return None

    @property
    def adapter_data(self) -> Any:
        """What an adapter keeps per connection (shared by the connection's streams)."""
        return self.exchange.h2conn.adapter_data

    @adapter_data.setter
    def adapter_data(self, value: Any) -> None:
        self.exchange.h2conn.adapter_data = value

    def exchange_done(self, exchange: H2Exchange) -> None:
        """The application is finished with this stream."""
        self.exchange.h2conn.exchange_done(exchange)

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task that graceful shutdown waits for."""
        h2conn = self.exchange.h2conn
        task = h2conn.loop.create_task(coroutine)
        tasks = h2conn.state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    def _handler_failed(self, request: Request | None = None, start: float = 0.0) -> None:
        self.exchange.h2conn.handler_failed(self.exchange)

    def _send_error(self, status: int, request: Request | None = None, start: float = 0.0) -> None:
        self.exchange.h2conn.send_error(self.exchange, status)


class Http2Connection(asyncio.Protocol):
    """Serves HTTP/2 on one connection (see the module docstring)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.config = state.config
        self.loop = state.loop
        handler = state.handler
        #: an interface adapter (ASGI, WSGI): ``serve_exchange(exchange)`` runs the application
        self.adapter = getattr(handler, "serve_exchange", None)
        #: what an adapter keeps for the life of the connection (e.g. the ASGI scope's fixed part)
        self.adapter_data: Any = None
        self.handle_request = handler.handle_request if self.adapter is None else None
        self.transport: asyncio.Transport | None = None
        self.h2 = H2Connection(limits_from(self.config))
        self.exchanges: dict[int, H2Exchange] = {}
        #: a flush is due (scheduled, or done at the end of data_received)
        self.flush_pending = False
        self.in_receive = False
        self._date_line = b""
        self._date_field = (b"date", b"")
        self.closed = False
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.trusted_proxy = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.send_watchdog: SendWatchdog | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        #: what ``last_read`` is read with: the duration clock when durations are timed (metrics
        #: or access log) on the loop's own clock (same epoch, finer resolution), so that a read's
        #: streams start their durations at that read, one clock read for all of them
        self.reads_on_clock = state.timed and state.clock is state.loop_clock
        self.read_clock = state.clock if self.reads_on_clock else self.loop.time
        self.last_read = 0.0
        self.idle_since = 0.0
        self.requests_seen = 0
        self.closing = False  # GOAWAY sent for shutdown: close once the streams are done

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        state.connections.add(self)
        self.client, self.trusted_proxy, self.scheme = state.describe_peer(transport)
        config = self.config
        self.transport.set_write_buffer_limits(  # type: ignore[union-attr]
            config.write_buffer_high, config.write_buffer_low
        )
        self.h2.initiate()
        self._flush()
        self.last_read = self.read_clock()
        self._arm_timer(self.last_read + config.header_timeout)
        if state.draining:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_read = self.read_clock()
        h2 = self.h2
        self.flush_pending = True  # whatever the events queue goes out in the one write below
        try:
            events = h2.receive(data)
        except Exception:
            # a bug in the protocol code must cost this connection, never the worker
            log.exception("HTTP/2 protocol failure; closing the connection")
            self.h2.close(frames.INTERNAL_ERROR)
            self._close()
            return
        self.in_receive = True
        try:
            self._dispatch(events)
        finally:
            self.in_receive = False
        self._flush()

    def _dispatch(self, events: list[Any]) -> None:
        for event in events:
            kind = event.__class__
            if kind is RequestReceived:
                self._on_request(event)
            elif kind is DataReceived:
                self._on_data(event)
            elif kind is WindowOpened:
                exchange = self.exchanges.get(event.stream_id)
                if exchange is not None:
                    exchange.wake()
            elif kind is StreamReset:
                self._on_reset(event)
            elif kind is ConnectionTerminated:
                self._on_terminated(event)

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
        for exchange in list(self.exchanges.values()):
            exchange.client_left()
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
        exchange = H2Exchange(self, event)
        self.exchanges[event.stream_id] = exchange
        self.requests_seen += 1
        config = self.config
        if event.error:
            self.send_error(exchange, event.error)
        elif len(event.path) > config.max_request_line:
            self.send_error(exchange, 414)
        elif event.content_length > config.max_body_size:
            self.send_error(exchange, 413)
        elif self.adapter is not None:
            body = exchange.body = RequestBody(exchange.body_wanted)
            if event.end_stream:
                body.finish()
            else:
                self._ensure_timer(self.last_read + config.body_timeout)
            self._start_exchange(exchange)
        elif event.end_stream:
            self._start(exchange)
        else:
            if exchange.expect_continue:
                # the client waits for this before sending its body (RFC 9110 §10.1.1); the
                # handler needs the body, so it is wanted at once
                exchange.expect_continue = False
                self.h2.send_headers(event.stream_id, 100, [])
            self._ensure_timer(self.last_read + config.body_timeout)

    def _on_data(self, event: DataReceived) -> None:
        exchange = self.exchanges.get(event.stream_id)
        h2 = self.h2
        body = exchange.body if exchange is not None else None
        if exchange is None or (exchange.event is None and (body is None or body.discarding)):
            h2.acknowledge_data(event.stream_id, event.flow_length)  # answered already: dropped
            return
        data = event.data
        if data:
            exchange.body_size += len(data)
            if exchange.body_size > self.config.max_body_size:
                h2.acknowledge_data(event.stream_id, event.flow_length)
                if body is not None:
                    body.fail()
                if exchange.response is None:
                    self.send_error(exchange, 413)
                else:
                    self.reset_stream(exchange, frames.CANCEL)
                return
            if body is not None:
                # streamed to the application: the window comes back as it reads (body_wanted)
                exchange.unacked += event.flow_length
                body.feed(data)
            else:
                # kept whole for the handler, bounded by max_body_size: window back at once
                exchange.chunks.append(data)
                h2.acknowledge_data(event.stream_id, event.flow_length)
        if event.end_stream:
            if body is not None:
                body.finish()
            else:
                self._start(exchange)

    def _on_reset(self, event: StreamReset) -> None:
        exchange = self.exchanges.get(event.stream_id)
        if exchange is None:
            return
        self._linger(exchange)
        del self.exchanges[event.stream_id]
        exchange.client_left()
        if exchange.task is not None and event.remote:
            # The client gave up on it: stop the work (rapid reset). An interface adapter's
            # application is not cancelled: it hears of the reset as it would of a closed
            # HTTP/1 connection (ASGI: http.disconnect from receive(), an OSError from send()),
            # and keeps its place among the concurrent streams until it returns.
            exchange.task.cancel()
        self._maybe_close()

    def _linger(self, exchange: H2Exchange) -> None:
        """``exchange``'s stream is ending (reset, or answered by us: a 413 mid-body, or the
        application's own complete response) while its application runs: until that returns
        (:meth:`exchange_done`), the stream still counts against max_concurrent_streams, so a
        client ending streams cannot have more applications running than the limit. (An answer
        still waiting for the client's window keeps its stream open too: it counts twice until
        sent, which only the client's own window can prolong.)

        Running: a native handler's task, or an adapter's application, which holds its place
        in ``exchanges`` until ``exchange_done`` (called before a reset takes it out)."""
        if exchange.lingering:
            return
        if exchange.task is not None or (
            exchange.body is not None and self.exchanges.get(exchange.stream_id) is exchange
        ):
            exchange.lingering = True
            self.h2.limits.lingering += 1

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

    # --- dispatching ----------------------------------------------------------------------------

    def _make_request(self, exchange: H2Exchange, body: bytes) -> Request:
        event = exchange.event
        assert event is not None
        exchange.event = None
        raw_path, _, query = event.path.partition(b"?")
        request = Request(
            _METHODS.get(event.method) or event.method.decode("latin-1"),
            raw_path,
            query,
            "2",
            event.headers,
            body,
            self.client,
            True,
            self.scheme,
        )
        exchange.request = request
        if self.trusted_proxy and self.state.apply_proxy_headers is not None:
            self.state.apply_proxy_headers(request)
        state = self.state
        if state.timed:
            # the read that brought the request in, when read on the duration clock: the
            # duration then runs from the request's arrival (the handler's call, and any wait
            # behind the streams before it in that read, included) to its hand-over
            if self.in_receive and self.reads_on_clock:
                exchange.start = self.last_read
            else:
                exchange.start = start_time(state)
        return request

    def _start_exchange(self, exchange: H2Exchange) -> None:
        """Hand the stream to the interface adapter (ASGI, WSGI) as soon as its head is here."""
        self._make_request(exchange, b"")
        assert self.adapter is not None
        try:
            self.adapter(exchange)
        except Exception:
            self.handler_failed(exchange)
            self.exchange_done(exchange)  # the adapter will not call it

    def _start(self, exchange: H2Exchange) -> None:
        """Run the native handler on a complete request."""
        chunks = exchange.chunks
        request = self._make_request(exchange, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        exchange.chunks = []
        response = HandlerResponse(exchange, request)  # takes the handler's own attributes
        exchange.response = response
        try:
            result = self.handle_request(request, response)  # type: ignore[misc]
        except Exception:
            self.handler_failed(exchange)
            return
        if result is not None and not hasattr(result, "__await__"):
            result = None
        if result is not None or response._stream_file_or_upgrade:
            task = self.loop.create_task(self._respond_later(exchange, response, result))
            exchange.task = task
            self.state.tasks.add(task)
            task.add_done_callback(self.state.tasks.discard)
            return
        self.send_whole(exchange, response)

    async def _respond_later(self, exchange: H2Exchange, response: Response, result: Any) -> None:
        """Finish a native response that needs awaiting: an async handler, a stream or a file."""
        try:
            if result is not None:
                await result
            if response.upgrade_factory is not None:
                log.error("Response.upgrade() is not available over HTTP/2")
                self.send_error(exchange, 500)
                return
            if response.stream_source is not None:
                async for chunk in response.stream_source:
                    await exchange.write(chunk)
            if exchange.client_gone:
                return
            if response.file is not None:
                await exchange.send_file(response)
            elif exchange.streaming:
                exchange.end()
            else:
                self.send_whole(exchange, response)
        except asyncio.CancelledError:
            if not exchange.reset:
                raise
        except ConnectionError:
            if not exchange.client_gone:
                self.handler_failed(exchange)
        except Exception:
            self.handler_failed(exchange)
        finally:
            if response.file is not None:
                response.file[0].close()
            exchange.task = None
            self.exchange_done(exchange)

    def exchange_done(self, exchange: H2Exchange) -> None:
        """The application is finished with ``exchange`` (answered, failed, or gone)."""
        body = exchange.body
        if body is not None and not body.complete and not body.failed:
            body.discard()
        if not exchange.done and not exchange.client_gone:
            # returned without finishing its response: nothing else will end the stream
            self.reset_stream(exchange, frames.INTERNAL_ERROR)
        if exchange.lingering:
            exchange.lingering = False
            self.h2.limits.lingering -= 1
        self.exchanges.pop(exchange.stream_id, None)
        self.flush_later()
        self._maybe_close()

    # --- sending --------------------------------------------------------------------------------

    def has_body(self, exchange: H2Exchange, response: Response) -> bool:
        """Whether ``response`` carries body bytes (not for HEAD, 204, 304)."""
        request = exchange.request
        return not (
            (request is not None and request.method == "HEAD")
            or response.status == 204
            or response.status == 304
        )

    def _head_fields(self, response: Response, length: int | None) -> list[tuple[bytes, bytes]]:
        state = self.state
        # each field is a Checked tuple (http/response.py): name, value, lower-case name, line
        fields = [
            (lname, value)
            for _name, value, lname, _line in response._fields
            if lname not in _HTTP1_ONLY
        ]
        if not response._has_date:
            date_line = state.date_line
            if date_line is not self._date_line:  # a new second: sliced once, not per response
                self._date_line = date_line
                self._date_field = (b"date", date_line[6:-2])
            fields.append(self._date_field)
        if not response._has_server and state.server_line:
            fields.append((b"server", state.server_line[8:-2]))
        if length is not None and response.status != 204 and response.status != 304:
            field = _LENGTH_FIELDS.get(length)
            if field is None:
                field = (b"content-length", b"%d" % length)
                if len(_LENGTH_FIELDS) < 4096:
                    _LENGTH_FIELDS[length] = field
            fields.append(field)
        return fields

    def send_whole(self, exchange: H2Exchange, response: Response) -> None:
        """Send a response whose body is complete (bytes): head and body, stream ended."""
        if exchange.reset or self.closed or exchange.done:
            return
        exchange.response = response
        status = response.status
        if status not in STATUS_LINES or status < 200:
            log.error("invalid status code %r for an HTTP/2 response", status)
            self.handler_failed(exchange)
            return
        body = response.body
        h2 = self.h2
        stream_id = exchange.stream_id
        fields = self._head_fields(response, len(body))
        request = exchange.request
        if (
            not body
            or status == 204
            or status == 304
            or (request is not None and request.method == "HEAD")
        ):
            h2.send_headers(stream_id, status, fields, end_stream=True)
        else:
            h2.send_headers(stream_id, status, fields)
            # a mutable body is copied: the handler may reuse its buffer while this waits
            h2.send_data(stream_id, body if body.__class__ is bytes else bytes(body), True)
        self._response_done(exchange, response)

    def send_head(self, exchange: H2Exchange, response: Response, length: int | None) -> None:
        """The head of a streamed response (``length``: its content-length, if known)."""
        if response.status not in STATUS_LINES or response.status < 200:
            raise ValueError(f"invalid status code {response.status!r}")
        self.h2.send_headers(
            exchange.stream_id, response.status, self._head_fields(response, length)
        )
        self.flush_later()

    def send_body(self, exchange: H2Exchange, chunk: bytes) -> None:
        self.h2.send_data(exchange.stream_id, chunk)
        self.flush_later()

    def end_body(
        self, exchange: H2Exchange, trailers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        if (
            trailers
            and exchange.response is not None
            and self.has_body(exchange, exchange.response)
        ):
            self.h2.send_trailers(exchange.stream_id, trailers)
        else:
            self.h2.send_data(exchange.stream_id, b"", end_stream=True)
        assert exchange.response is not None
        self._response_done(exchange, exchange.response)

    async def wait_sent(self, exchange: H2Exchange) -> None:
        """Wait until the stream's queued bytes went out and the transport takes more."""
        self._flush()
        while self.h2.queued(exchange.stream_id) and not exchange.client_gone:
            waiter = exchange.waiter = self.loop.create_future()
            await waiter
        if exchange.client_gone:
            raise ConnectionResetError(_STREAM_GONE)
        if self.write_paused:
            waiter = self.loop.create_future()
            self.drain_waiters.append(waiter)
            await waiter

    async def send_file(self, exchange: H2Exchange, response: Response) -> None:
        """The file of ``Response.send_file``, read in pieces as the windows allow."""
        assert response.file is not None and exchange.request is not None
        file, offset, count = response.file
        exchange.response = response
        has_body = self.has_body(exchange, response) and count > 0
        exchange.begin_stream(response, count)
        fd = file.fileno()
        while has_body and count > 0:
            piece = os.pread(fd, min(_FILE_CHUNK, count), offset)
            if not piece:
                # the file shrank below the announced length: the stream cannot end honestly
                log.warning("file shrank while being sent for %s", exchange.request.url)
                self.reset_stream(exchange, frames.INTERNAL_ERROR)
                return
            offset += len(piece)
            count -= len(piece)
            await exchange.write(piece)
        exchange.end()

    def _response_done(self, exchange: H2Exchange, response: Response) -> None:
        exchange.done = True
        exchange.release()
        state = self.state
        state.requests += 1
        request = exchange.request
        if state.timed and request is not None:  # the metrics and the access log, when on
            # compiled (aio/h2timing.py): counts the metrics, says whether the log is on
            if count_response(state, request, response, exchange.start):
                self._log_access(request, response, exchange.start)
        if exchange.task is None and exchange.body is None:
            self.exchanges.pop(exchange.stream_id, None)  # a sync handler: nothing else to wait
            self._maybe_close()
        else:
            self._linger(exchange)  # the application may run on after its answer
        self.flush_later()

    def _log_access(self, request: Request, response: Response, start: float) -> None:
        assert self.state.access_log is not None  # set whenever config.access_log is
        self.state.access_log.response(request, response, start)

    # --- errors ---------------------------------------------------------------------------------

    def handler_failed(self, exchange: H2Exchange) -> None:
        """Log the handler's exception; 500 when no head is out yet, else reset the stream."""
        log.exception("handler failed on %r", exchange)
        if exchange.streaming or exchange.done:
            self.reset_stream(exchange, frames.INTERNAL_ERROR)
        else:
            self.send_error(exchange, 500)

    def send_error(self, exchange: H2Exchange, status: int) -> None:
        """A plain-text error response on one stream; the connection goes on."""
        if exchange.client_gone or exchange.done:
            return
        if exchange.streaming:
            self.reset_stream(exchange, frames.CANCEL)  # the head is out: no error answer now
            return
        exchange.event = None  # any further body bytes are dropped
        exchange.chunks = []
        if exchange.body is not None:
            exchange.body.discard()
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
        exchange.done = True
        exchange.release()
        state.requests += 1
        if state.metrics is not None:
            state.metrics.refused(status)  # a limit (400, 408, 413, 414, 431) or 500
        if state.access_log is not None:
            state.access_log.error(status, self.client, exchange.request, exchange.start)
        if exchange.task is None and exchange.body is None:
            self.exchanges.pop(exchange.stream_id, None)
        else:
            self._linger(exchange)  # e.g. 413 mid-body: the application has not returned
        self.flush_later()
        self._maybe_close()

    def reset_stream(self, exchange: H2Exchange, code: int) -> None:
        """RST_STREAM on one stream (its response cannot be completed); the others go on."""
        if not exchange.client_gone:
            self.h2.reset_stream(exchange.stream_id, code)
        exchange.client_left()
        self._linger(exchange)
        if exchange.task is None:
            self.exchanges.pop(exchange.stream_id, None)
        self.flush_later()
        self._maybe_close()

    # --- writing and closing -------------------------------------------------------------------

    def _flush(self) -> None:
        self.flush_pending = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.h2.closed and not self.closed:
            self._close()

    def flush_later(self) -> None:
        """Write what is queued once the current step is over (one write for many frames).

        Inside data_received the flush at its end does it; elsewhere (tasks) a callback soon.
        """
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self._flush)

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
        # idle from now on (inside data_received, last_read is now: no clock read needed)
        now = self.last_read if self.in_receive else self.loop.time()
        self.idle_since = now
        if self.timer is None or self.timer_at > now + self.config.keep_alive_timeout:
            self._arm_timer(now + self.config.keep_alive_timeout)
        if self.closing or self.state.draining:
            if self.state.draining and not self.h2.goaway_sent:
                self.h2.close()
                self._flush()
            self._close()

    def _close(self) -> None:
        """Close after what is buffered has been sent."""
        self.closed = True
        self._flush_final()
        for exchange in list(self.exchanges.values()):
            exchange.client_left()
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
        waiting = [
            e
            for e in self.exchanges.values()
            if e.event is not None or (e.body is not None and not e.body.complete)
        ]
        if waiting:
            due = self.last_read + config.body_timeout
            if now >= due:
                for exchange in waiting:
                    if exchange.body is not None:
                        exchange.body.fail()  # an application waiting for it hears of it
                    self.send_error(exchange, 408)
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
