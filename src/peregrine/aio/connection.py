"""One asyncio protocol per HTTP connection.

It owns the transport, the parser, the timers and flow control, and hands each request to the
application: a native handler is called here (a synchronous one on the hot path, with no object
made besides the request and response), and an adapter of another interface (ASGI, WSGI) is given
an :class:`~peregrine.aio.exchange.Exchange`, through which it reads the body as it arrives and
sends the response. Everything that belongs to one response lives in that exchange. Three
rules keep the connection correct:

1. Responses leave in request order. Parsed requests (and parse errors, which become error
   responses) wait in ``queue``; only one is handled at a time.
2. Every close goes through ``_close`` or ``_abort``; ``connection_lost`` cancels every timer, so
   none outlives the connection.
3. One lazy timer serves all read timeouts (header, body, keep-alive): moving a deadline is an
   attribute write, not a new timer per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Final, cast

from ..http.errors import ProtocolError
from ..http.handler_response import Response as HandlerResponse
from ..http.parser import HEAD, IDLE, RequestParser
from ..http.request import Request
from ..http.response import Response, serialize_head
from ..http.status import STATUS_LINES
from .body import EMPTY_BODY, RequestBody
from .exchange import Exchange, keep_alive
from .h2preface import negotiated_h2, sniff_preface, take_over
from .linger import Lingerer
from .send_watchdog import SendWatchdog
from .state import ServerState, peer_address

log: Final = logging.getLogger("peregrine.error")

# what a read deadline means when it passes
_KEEP_ALIVE: Final = 1
_HEADER: Final = 2
_BODY: Final = 3


#: the class of the responses native handlers fill in, as a constant: a C static in the compiled
#: build, where the imported name is looked up in the module's dict at each use (~160 instructions)
_HANDLER_RESPONSE: Final = HandlerResponse

#: ``bodies`` of every native handler's connection: only an adapter's parser yields body pieces
#: (``_route_events``), so nothing is ever added to it
_NO_BODIES: Final[list[RequestBody]] = []


def error_response(status: int, date_line: bytes, server_line: bytes) -> bytes:
    """A complete, closing plain-text error response."""
    body = STATUS_LINES[status][9:-2] + b"\n"
    return b"".join(
        (
            STATUS_LINES[status],
            date_line,
            server_line,
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            b"Connection: close\r\n\r\n",
            body,
        )
    )


class HttpConnection(asyncio.Protocol):
    """Serves HTTP/1.0 and HTTP/1.1 on one connection (see the module docstring)."""

    __slots__ = (
        "state",
        "config",
        "loop",
        "handle_request",
        "transport",
        "parser",
        "queue",
        "busy",
        "closed",
        "scheme",
        "trusted_proxy",
        "write_paused",
        "drain_waiter",
        "send_watchdog",
        "deadline",
        "deadline_kind",
        "timer_number",
        "timer_at",
        "answered_at",
        "adapter",
        "exchange",
        "receiving",
        "bodies",
        "adapter_data",
        "reading_paused",
        "eof",
        "upgraded",
        "h2_preface",
        "accepted_peer",
    )

    def __init__(self, state: ServerState, accepted_peer: Any = None) -> None:
        self.state = state
        #: the peer address the acceptor got from ``accept()``, until connection_made uses it
        self.accepted_peer = accepted_peer
        self.config = state.config
        self.loop = state.loop
        handler = state.handler
        #: an interface adapter (ASGI, WSGI): ``serve_exchange(exchange)`` runs the application
        self.adapter = getattr(handler, "serve_exchange", None)
        # a complete request head goes to the native handler (_handle) when handle_request is
        # set, else to the adapter (_start_exchange): a branch at each, rather than one bound
        # method kept per connection (64 bytes each)
        if self.adapter is None:
            self.handle_request = state.handle_request or handler.handle_request
        else:
            self.handle_request = None
        self.transport: asyncio.Transport | None = None
        self.parser: RequestParser | None = None
        # lists, not deques: an empty deque holds a 64-slot block (760 bytes on an idle
        # connection, twice), an empty list nothing; at most max_pipelined items wait here
        self.queue: list[Request | ProtocolError] = []
        #: a response is in progress outside data_received (async handler, stream, file, adapter)
        self.busy = False
        #: the exchange in progress, when the response is not sent straight from data_received
        self.exchange: Exchange | None = None
        #: with an adapter: the body of the latest request whose head arrived, until it is whole
        self.receiving: RequestBody | None = None
        #: with an adapter: the bodies of the requests waiting in ``queue``, in order (a native
        #: handler's connection shares one empty list it never adds to: 56 bytes less each)
        self.bodies: list[RequestBody] = [] if self.adapter is not None else _NO_BODIES
        #: what an adapter keeps for the life of the connection (e.g. the ASGI scope's fixed part)
        self.adapter_data: Any = None
        self.closed = False
        self.scheme = "http"
        self.trusted_proxy = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.send_watchdog: SendWatchdog | None = None
        self.deadline = 0.0
        self.deadline_kind = 0
        # the read timer, on the worker's shared timer queue (a loop timer each would cost ~600
        # bytes): the number of its entry there, 0 when none is set (see aio/timers.py)
        self.timer_number = 0
        self.timer_at = 0.0  # when that timer fires
        #: the response's end read on the loop's clock by _handle in this data_received, else 0.0
        self.answered_at = 0.0
        self.reading_paused = False
        self.eof = False
        self.upgraded = False
        #: the first bytes while they may still be the HTTP/2 preface (None: not looking)
        self.h2_preface: bytes | None = None

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = self.transport = cast(asyncio.Transport, transport)
        state = self.state
        state.connections.add(self)
        config = self.config
        if len(state.connections) > config.max_connections:
            if state.metrics is not None:
                state.metrics.refused(503)
            transport.write(error_response(503, state.date_line, state.server_line))
            if state.access_log is not None:
                state.access_log.error(503, transport.get_extra_info("peername"))
            self.close()
            return
        accepted, self.accepted_peer = self.accepted_peer, None  # (the parser keeps the pair)
        client, self.trusted_proxy, self.scheme = state.describe_peer(transport, accepted)
        self.parser = self._new_parser(client)
        state.parking.hold(self)  # dropped once idle (aio/parking.py)
        transport.set_write_buffer_limits(config.write_buffer_high, config.write_buffer_low)
        self.deadline = self.loop.time() + config.header_timeout
        self.deadline_kind = _HEADER
        self._start_timer(self.deadline)
        if config.http2:
            if self.scheme == "http":
                self.h2_preface = b""  # prior knowledge: data_received looks at the first bytes
            elif negotiated_h2(transport):
                take_over(self, b"")  # ALPN picked h2

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)``, asked of the transport each time (once per parser, so
        once per idle spell): kept on every idle connection, the tuple, its host string and its
        port would cost ~150 bytes. None for a unix socket, or once the peer has gone."""
        return peer_address(self.transport) if self.transport is not None else None

    def _new_parser(self, client: tuple[str, int] | None) -> RequestParser:
        config = self.config
        return RequestParser(
            config.max_request_line,
            config.max_header_size,
            config.max_header_count,
            config.max_body_size,
            client,
            self.scheme,
            stream_bodies=self.adapter is not None,
            max_chunk_extensions=config.max_chunk_extensions,
        )

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.closed:
            if self.closed:
                return  # refused at connection_made, or handed over in an upgrade
            parser = self._unpark_parser()  # the first byte after an idle spell
        if self.h2_preface is not None:
            data = sniff_preface(self, data)  # the HTTP/2 preface goes to aio/h2connection.py
            if not data:
                return
        begun = parser.begun
        self.answered_at = 0.0  # set by _handle: only a read made in this call is "now"
        try:
            parser.feed(data)
        except ProtocolError as exc:
            if parser.events:
                self._route_events(parser)
            if self.receiving is not None:
                self.receiving.fail()  # that body will never be whole
                self.receiving = None
            self.queue.extend(parser.requests)
            parser.requests.clear()
            self.queue.append(exc)
            self._pause_reading()  # the stream is out of sync: nothing after this is read
        else:
            routed = False
            if parser.events:  # an adapter's parser: heads and body pieces, in order
                self._route_events(parser)
                routed = True
            requests = parser.requests
            if requests:
                parser.requests = []
                if len(requests) == 1 and not (self.busy or self.write_paused or self.queue):
                    # the common case: no queue needed
                    if self.handle_request is not None:
                        self._handle(requests[0])
                    else:
                        self._start_exchange(requests[0])
                else:
                    self.queue.extend(requests)
            elif (
                parser.phase == IDLE
                and parser.begun == begun
                and parser.upgrade_data is None
                and not routed
            ):
                return  # empty lines only: no progress, so no fresh deadline either
            if parser.upgrade_data is not None:
                self._pause_reading()  # the rest belongs to the next protocol
        new_message = parser.begun != begun
        if self.busy or (self.write_paused and self.queue):
            # Behind: a handler is running, or the client is not reading our answers. Let TCP
            # push back rather than parse (and answer) ever more requests into memory; the same
            # when an application leaves too much of a streamed body unread.
            receiving = self.receiving
            if (
                self.write_paused
                or len(self.queue) >= self.config.max_pipelined
                or (receiving is not None and receiving.over_high_water)
            ):
                self._pause_reading()
            self._arm_read_deadline(new_message)
        elif self.queue or parser.upgrade_data is not None:
            self._process_queue(new_message)
        elif self.closed:
            return
        elif parser.phase == IDLE and not (self.reading_paused or self.eof):
            # The commonest end of a feed: a request answered, the connection waits for the next.
            # _arm_read_deadline's keep-alive case, _set_deadline included, inlined: this runs
            # once per request; calling even _set_deadline alone costs ~400 instructions (~1% per
            # request on CPython 3.11 to 3.13, bench/README.md). The timer usually
            # stays as it is (it fires no later than the new deadline): two attribute writes.
            # With metrics on, the response's end was just read on the loop's clock: no second
            # read (~250 instructions), for a native handler's response and an adapter's sent
            # whole in this call (WSGI --threads 0) alike.
            deadline = (self.answered_at or self.state.loop_time()) + self.state.keep_alive_timeout
            self.deadline = deadline
            self.deadline_kind = _KEEP_ALIVE
            if not self.timer_number or self.timer_at > deadline:
                self._start_timer(deadline)
        else:
            self._arm_read_deadline(new_message)

    def eof_received(self) -> bool | None:
        # A half-closed client may still read the responses to what it sent: keep writing them,
        # then close (see _arm_read_deadline).
        self.eof = True
        if self.exchange is not None:
            # An application waiting to hear that the client went away (ASGI http.disconnect)
            # hears it now: a client that stops sending is gone as far as requests go.
            self.exchange.client_left()
        if self.busy or self.queue:
            return True
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self.state.parking.forget(self)
        self.deadline_kind = 0
        if self.timer_number:
            self.state.timers.cancel(self)
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        self.queue.clear()
        if self.parser is not None:
            self.parser.release()  # freed now, not by a pass of the cyclic GC
        self._wake_writer()
        if self.exchange is not None:
            self.exchange.client_left()
        if self.receiving is not None:
            self.receiving.fail()
            self.receiving = None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._watch_sending()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        self._wake_writer()
        if self.queue and not self.busy and not self.closed:
            self._process_queue()  # requests held back while the client was not reading

    # --- the request queue ----------------------------------------------------------------------

    def _process_queue(self, new_message: bool = False) -> None:
        queue = self.queue
        while queue and not (self.busy or self.closed or self.write_paused):
            item = queue.pop(0)
            if isinstance(item, ProtocolError):
                self._send_error(item.status)
                return
            if self.handle_request is not None:
                self._handle(item)
            else:
                self._start_exchange(item)
        if self.closed:
            return
        if self.busy:
            self._arm_read_deadline(new_message)  # drops a deadline meant for the idle connection
            return
        if queue:  # stopped because the client is not reading: resume_writing carries on
            self._pause_reading()
            return
        parser = self.parser
        assert parser is not None
        if parser.upgrade_data is not None:
            # The handler did not take up the upgrade: go on speaking HTTP with what followed.
            leftover = parser.upgrade_data
            parser.release()
            self.parser = self._new_parser(self.client)
            self._resume_reading()
            if leftover:
                self.data_received(leftover)
                return
        if self.reading_paused:
            self._resume_reading()
        self._arm_read_deadline(new_message)

    def _arm_read_deadline(self, new_message: bool) -> None:
        """Point the read timer at what the connection now waits for."""
        parser = self.parser
        assert parser is not None
        phase = parser.phase
        if self.reading_paused:
            self.deadline_kind = 0  # we are not reading: the client cannot be late
        elif phase == IDLE:
            if self.busy or self.queue:
                self.deadline_kind = 0  # a handler is running: no read timeout meanwhile
            elif self.eof:
                self.close()  # the client sent all it will send and has its answers
            else:
                # answered_at: the end read of a response sent in this call, when the metrics
                # made one on the loop's clock (see exchange_done): "now" without a second read
                self._set_deadline(_KEEP_ALIVE, self.config.keep_alive_timeout, self.answered_at)
        elif phase == HEAD:
            # Measured from the first byte of the head, not reset by each packet (slowloris).
            if new_message or self.deadline_kind != _HEADER:
                self._set_deadline(_HEADER, self.config.header_timeout)
        elif parser.expect_continue:
            if self.busy or self.queue:
                self.deadline_kind = 0  # the client waits for our 100 Continue, held back for now
            else:
                self._send_continue()
                self._set_deadline(_BODY, self.config.body_timeout)
        else:
            self._set_deadline(_BODY, self.config.body_timeout)  # a gap between body packets

    def _handle(
        self, request: Request, response: Response | None = None, start: float = 0.0
    ) -> None:
        """Run the native handler on ``request``, then send the response it filled in.

        Given a ``response``, only send it whole: an exchange does so once what the handler left
        to await is done, and the adapters for a complete body. (One method for both rather than
        a second one called from here: this is the per-request hot path, and that call costs
        ~1.0% of its instructions on CPython 3.11, ~0.6% on 3.12 and 3.13; bench/README.md.)

        Sets ``answered_at`` to the clock read at the response's end when the metrics read one
        on the loop's clock (``ServerState.loop_clock``), for the keep-alive deadline that
        follows in data_received.
        """
        if response is None:
            if self.trusted_proxy and self.state.apply_proxy_headers is not None:
                self.state.apply_proxy_headers(request)
            health = self.state.health
            if (
                health is not None
                and request.raw_path == health.path
                and health.answer(self, request)
            ):
                return  # a load balancer's health check, answered without the handler
            # (made without arguments, then attached: a class call with arguments packs them
            # in a tuple for __init__ to parse, ~300 instructions in the compiled build; typed
            # as the compiled base, so that the two fields are set in its C struct)
            made: Response = _HANDLER_RESPONSE()  # takes the handler's own attributes
            made._conn = self
            made._request = request
            response = made
            if not request.keep_alive and request.method == "CONNECT":
                # Peregrine tunnels nothing: 501 unless the handler takes CONNECT and says so
                # (tested only for closing requests, which every CONNECT is: off the hot path)
                response.status = 501
            start = 0.0
            if self.state.timed:
                clock = self.state.clock  # then called: an attribute read, not a method lookup
                start = clock()
            try:
                result = self.handle_request(request, response)
            except Exception:
                self._handler_failed(request, start)
                return
            if result is not None and not hasattr(result, "__await__"):
                result = None  # e.g. "return resp": nothing to wait for
            if result is not None or (
                response._stream_file_or_upgrade and response.upgrade_factory is None
            ):
                exchange = Exchange(self, request, response, None, start)
                if (
                    result is None
                    and response.file is not None
                    and response.stream_source is None
                    and not self.closed
                    and exchange.send_file_now(response)
                ):
                    return  # a file sent whole with one sendfile: no task needed
                self.exchange = exchange
                self.busy = True
                self._run(self._respond_later(exchange, result))
                return
        # send a response whose body is complete (bytes)
        if self.closed:
            return
        state = self.state
        state.requests += 1
        if response._stream_file_or_upgrade and response.upgrade_factory is not None:
            self._upgrade(response)
        else:
            alive = keep_alive(request, response, state.draining)
            body = response.body
            size = len(body)  # read once: bytes, bytearray or memoryview (a generic len)
            status = response.status
            try:
                head = serialize_head(
                    response,
                    size,
                    alive,
                    request.version == "1.0",
                    state.date_line,
                    state.server_line,
                    keep_alive_line=state.keep_alive_line,
                )
            except ValueError:
                self._handler_failed(request, start)
                return
            transport = self.transport
            assert transport is not None
            # has_no_body(status), inlined: this is the per-request hot path
            if (
                not body
                or request.method == "HEAD"
                or status < 200
                or status == 204
                or status == 304
            ):
                transport.write(head)  # no body: HEAD, 1xx, 204, 304 (RFC 9110 §6.4.1)
            elif size < 1024 or type(body) is not bytes:
                # Copied: cheaper than a second buffer for a small body, and a must for a mutable
                # one (a bytearray assigned to resp.body): uvloop queues what it cannot send yet
                # without copying, so a handler reusing its buffer would change queued answers.
                transport.write(head + body)
            else:
                # no copy: uvloop sends both in one writev (~700 instructions fewer than
                # write(head + body) for a 6 KB body, measured on a socketpair; ~200 more at 6 B)
                transport.writelines((head, body))
            if not alive:
                self.close()
            if state.timed:
                metrics = state.metrics
                if metrics is not None:
                    clock = state.clock
                    end = clock()
                    pending = metrics.pending  # None when compiled: count now, a C call
                    if pending is None:
                        metrics.count(request.method, status, end - start, len(request.body), size)
                    else:  # interpreted: counted in a batch by publish (~2.3k instructions less)
                        pending.extend(
                            (request.method, status, end - start, len(request.body), size)
                        )
                    if state.access_log is None and clock is state.loop_clock:
                        self.answered_at = end  # also "now" for the keep-alive deadline
                if state.access_log is not None:
                    self._log_access(request, response, start)
            return
        if state.timed:
            self._observe(request, response, start)

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task that graceful shutdown waits for."""
        task = self.loop.create_task(coroutine)
        tasks = self.state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _respond_later(self, exchange: Exchange, result: Any) -> None:
        """Finish a native response that needs awaiting: an async handler, a stream or a file."""
        request, response = exchange.request, exchange.response
        assert response is not None
        try:
            if result is not None:
                await result
            if response.stream_source is not None:
                async for chunk in response.stream_source:
                    await exchange.write(chunk)
            if self.closed:
                pass  # the client left while the handler ran: nothing to send it
            elif response.file is not None:
                await exchange.send_file(response)
            elif exchange.streaming:
                exchange.end()
            else:
                self._handle(request, response, exchange.start)  # sends it
        except ConnectionError:
            if not self.closed:  # the handler's own connection failed, not the client's
                self._handler_failed(request, exchange.start)
            self.abort()
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            self._handler_failed(request, exchange.start)
        finally:
            if response.file is not None:
                response.file[0].close()
        self.exchange_done(exchange)

    # --- the exchanges of interface adapters --------------------------------------------------

    def _route_events(self, parser: RequestParser) -> None:
        """Move what a streaming parser reported: heads to ``parser.requests``, body pieces to
        the body of the latest head."""
        events = parser.events
        parser.events = []
        requests = parser.requests
        count = len(events)
        index = 0
        while index < count:
            event = events[index]
            index += 1
            if event is None:
                receiving = self.receiving
                assert receiving is not None
                self.receiving = None
                receiving.finish()
            elif type(event) is bytes:
                assert self.receiving is not None
                self.receiving.feed(event)
            elif index < count and events[index] is None:
                # a head and its end at once: no body, so the shared empty one (aio/body.py)
                index += 1
                self.bodies.append(EMPTY_BODY)
                requests.append(event)  # type: ignore[arg-type]
            else:
                body = self.receiving = RequestBody(self._body_wanted)
                self.bodies.append(body)
                requests.append(event)  # type: ignore[arg-type]

    def _start_exchange(self, request: Request) -> None:
        """Hand ``request`` to the interface adapter (ASGI, WSGI)."""
        if self.trusted_proxy and self.state.apply_proxy_headers is not None:
            self.state.apply_proxy_headers(request)
        health = self.state.health
        if (
            health is not None
            and request.raw_path == health.path
            and self.bodies[0].complete
            and not self.bodies[0].unread
            and health.answer(self, request)
        ):
            self.bodies.pop(0)  # empty: a health check with a body goes to the application
            return
        start = self.state.clock() if self.state.timed else 0.0
        exchange = self.exchange = Exchange(self, request, None, self.bodies.pop(0), start)
        self.busy = True
        assert self.adapter is not None
        self.adapter(exchange)

    def exchange_done(self, exchange: Exchange, answered_now: bool = False) -> None:
        """The application is finished with ``exchange``: go on with the next request.

        ``answered_now``: the caller sent its response whole just before, in the same call
        (:meth:`Exchange.respond`, which clears ``answered_at`` first), so the end read the
        metrics made then may serve as "now" for the keep-alive deadline; otherwise that read
        is from an earlier call (or none) and is dropped.
        """
        if not answered_now:
            self.answered_at = 0.0
        if self.exchange is exchange:
            self.exchange = None
        body = exchange.body
        if body is not None and not body.complete:
            if body.failed:
                if exchange.response is not None and not self.closed:
                    # Answered, but its body broke off (bad framing, timeout): the stream is out
                    # of sync, and the error queued for it would answer nothing. Close.
                    self.close()
            else:
                body.discard()  # read and dropped as it arrives: keep-alive stays in sync
        self.busy = False
        if not self.closed:
            self._process_queue()

    def _body_wanted(self, body: RequestBody) -> None:
        """An application waits for ``body`` or has taken what was buffered: read on."""
        if self.closed or body is not self.receiving:
            return
        parser = self.parser
        assert parser is not None
        exchange = self.exchange
        if parser.expect_continue and exchange is not None and exchange.body is body:
            self._send_continue()
        if (
            self.reading_paused
            and not body.over_high_water
            and not self.queue
            and parser.upgrade_data is None
        ):
            self._resume_reading()
        self._arm_read_deadline(False)

    def response_sent(self, request: Request, response: Response, start: float) -> None:
        """Count a response whose last byte is written, and log it."""
        state = self.state
        state.requests += 1
        if state.timed:  # _observe, inlined: once per response of an adapter or async handler
            metrics = state.metrics
            if metrics is not None:
                metrics.response(request, response, start, state.clock())
            if state.access_log is not None:
                self._log_access(request, response, start)

    def _observe(self, request: Request, response: Response, start: float) -> None:
        """A response is out: the metrics and the access log line, whichever are on."""
        if self.state.metrics is not None:
            self.state.metrics.response(request, response, start, self.state.clock())
        if self.state.access_log is not None:
            self._log_access(request, response, start)

    def _log_access(self, request: Request, response: Response, start: float) -> None:
        assert self.state.access_log is not None  # set whenever config.access_log is
        self.state.access_log.response(request, response, start)

    # --- streamed bodies ------------------------------------------------------------------------

    async def write_stream_chunk(self, response: Response, chunk: bytes | str) -> None:
        """Send one part of a streamed body (see :meth:`Response.write`)."""
        exchange = self.exchange
        if exchange is None or exchange.response is not response:
            if self.closed:
                raise ConnectionResetError("the client has gone")
            raise RuntimeError("Response.write() is for async handlers, while they run")
        await exchange.write(chunk)

    def is_streaming(self, response: Response) -> bool:
        """True once the head of ``response``'s streamed body has been sent."""
        exchange = self.exchange
        return exchange is not None and exchange.response is response and exchange.streaming

    async def drain(self) -> None:
        """Wait until the client has read enough of what is buffered (or raise if it left)."""
        if self.closed:
            raise ConnectionResetError("the client has gone")
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.loop.create_future()
        await waiter

    def _wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                if self.closed:
                    waiter.set_exception(ConnectionResetError("the client has gone"))
                else:
                    waiter.set_result(None)

    # --- upgrades -----------------------------------------------------------------------------

    def let_go(self) -> None:
        """Step aside for another protocol taking this transport (an upgrade, HTTP/2).

        This object stops for good: no watchdog, no timer, out of ``state.connections``; the
        caller sets the new protocol on the transport.
        """
        self.closed = self.upgraded = True
        if self.send_watchdog is not None:
            self.send_watchdog.stop()
        self.state.connections.discard(self)
        self.state.parking.forget(self)
        self.deadline_kind = 0
        if self.timer_number:
            self.state.timers.cancel(self)
        if self.parser is not None:
            self.parser.release()  # (read no more: what followed the head is handed over)

    def _upgrade(self, response: Response) -> None:
        transport = self.transport
        parser = self.parser
        assert transport is not None and parser is not None and response.upgrade_factory is not None
        if response.status != 101:
            log.error("Response.upgrade() needs status 101, got %s", response.status)
            self._send_error(500)
            return
        transport.write(
            serialize_head(
                response,
                content_length=None,
                keep_alive=True,
                http10=False,
                date_line=self.state.date_line,
                server_line=self.state.server_line,
            )
        )
        leftover = parser.upgrade_data or b""
        self.let_go()
        protocol = response.upgrade_factory(transport, self.state)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        transport.resume_reading()
        if leftover:
            protocol.data_received(leftover)

    # --- errors and closing ----------------------------------------------------------------------

    def _handler_failed(self, request: Request, start: float = 0.0) -> None:
        log.exception("handler failed on %s %s", request.method, request.url)
        exchange = self.exchange
        if exchange is not None and exchange.streaming:
            self.abort()  # the head is out: a 500 can no longer be sent
        else:
            self._send_error(500, request, start)

    def _send_error(self, status: int, request: Request | None = None, start: float = 0.0) -> None:
        if self.closed:
            return
        assert self.transport is not None
        self.state.requests += 1
        if self.state.metrics is not None:
            self.state.metrics.refused(status)
        self.transport.write(error_response(status, self.state.date_line, self.state.server_line))
        if self.state.access_log is not None:
            self.state.access_log.error(status, self.client, request, start)
        if self.eof or not self.config.lingering_timeout or self.transport.is_closing():
            self.close()  # nothing of the client's can be left unread (or lingering is off)
        else:
            # For this protocol the connection ends here (timers, exchange, queue: as when the
            # transport is lost); a Lingerer takes the transport over and closes it without a
            # reset (see linger.py).
            self.connection_lost(None)
            Lingerer(self.transport, self.state).start()

    def _send_continue(self) -> None:
        assert self.transport is not None and self.parser is not None
        self.parser.expect_continue = False
        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def close(self) -> None:
        """Close after what is buffered has been sent (the one orderly way out)."""
        self.closed = True  # nothing more is handled or written on this connection
        self.queue.clear()
        self.deadline_kind = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size():
                self._watch_sending()  # the flush must not wait forever on a non-reader
            transport.close()

    def abort(self) -> None:
        """Drop the connection now, discarding buffered output."""
        self.closed = True
        self.queue.clear()
        if self.transport is not None:
            self.transport.abort()

    def _watch_sending(self) -> None:
        watchdog = self.send_watchdog
        if watchdog is None:
            watchdog = self.send_watchdog = SendWatchdog(
                self.loop, self.transport, self.config.send_timeout, self.abort
            )
        watchdog.start()

    def _pause_reading(self) -> None:
        # not once closed: after an upgrade the transport belongs to the new protocol
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.deadline_kind = 0  # unread data cannot be late; deadlines restart on resume
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    # --- read timeouts ------------------------------------------------------------------------

    def _set_deadline(self, kind: int, seconds: float, now: float = 0.0) -> None:
        # now: a read on the loop's clock, or 0 (then read here, through the bound loop.time)
        deadline = (now or self.state.loop_time()) + seconds
        self.deadline = deadline
        self.deadline_kind = kind
        if not self.timer_number or self.timer_at > deadline:
            self._start_timer(deadline)

    def _start_timer(self, deadline: float) -> None:
        # The one timer fires at the earliest deadline; a later one is picked up by on_timer.
        self.state.timers.call_at(deadline, self)
        self.timer_at = deadline

    def on_timer(self) -> None:
        """The read timer is due (called by ``state.timers``): a deadline passed, or moved."""
        kind = self.deadline_kind
        if not kind or self.closed:
            return
        if self.loop.time() < self.deadline:
            self._start_timer(self.deadline)  # moved later since the timer was set
            return
        self.deadline_kind = 0
        if kind == _KEEP_ALIVE:
            self.close()
        else:
            # A slow or stalled request (slowloris): 408 once earlier responses are out.
            if self.receiving is not None:
                self.receiving.fail()  # an application waiting for that body hears of it
                self.receiving = None
            self.queue.append(ProtocolError(408, "request timeout"))
            self._pause_reading()
            if not self.busy:
                self._process_queue()

    def park_if_quiet(self, quiet_since: float) -> bool:
        """Drop the parser if the connection is idle and its last request was answered by
        ``quiet_since`` (called by ``state.parking``'s sweep); True if it was dropped."""
        parser = self.parser
        if (
            self.deadline_kind == _KEEP_ALIVE  # idle (the only time this deadline is set)
            and self.deadline - self.state.keep_alive_timeout <= quiet_since
            and parser is not None
            and parser.phase == IDLE
            and not (parser.requests or parser.events or self.busy or self.queue)
            and parser.upgrade_data is None
            and self.h2_preface is None
        ):
            parser.release()
            self.parser = None
            return True
        return False

    def _unpark_parser(self) -> RequestParser:
        """A new parser for the next request of a parked connection, swept again by
        ``state.parking`` (once per idle spell, so not a cost per request)."""
        parser = self.parser = self._new_parser(self.client)
        self.state.parking.hold(self)
        return parser

    # --- graceful shutdown ----------------------------------------------------------------------

    def is_idle(self) -> bool:
        """True when no request is in flight, partly received, or still being flushed."""
        return (
            not self.busy
            and not self.queue
            and (self.parser is None or self.parser.phase == IDLE)
            and (self.transport is None or not self.transport.get_write_buffer_size())
        )

    def awaits_first_request(self) -> bool:
        """True while no byte of a first request has arrived (shutdown gives those a grace)."""
        return self.parser is not None and self.parser.begun == 0

    def shutdown(self) -> None:
        """Close now when idle; otherwise the response in flight closes the connection."""
        if self.is_idle():
            self.close()
