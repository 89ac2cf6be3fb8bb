"""What all the connections of one worker share."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..accesslog import AccessLog
from ..config import Config
from ..http.dates import date_line
from ..http.request import Request
from ..metrics.recorder import MetricsRecorder
from .health import HealthCheck
from .parking import ParserParking
from .timers import TimerQueue

if TYPE_CHECKING:
    # imported when a connection upgrades (open_websocket): a server start need not load the
    # WebSocket modules
    from ..ws.deflate import DeflateParams
    from .websocket import WebSocketConnection


class ServedConnection(Protocol):
    """What every connection protocol in ``ServerState.connections`` (HTTP or WebSocket) offers
    the worker that shuts it down (``docs/internals.md``)."""

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport once made (the worker aborts what is left at the end)."""

    def shutdown(self) -> None:
        """Begin a graceful close."""

    def is_idle(self) -> bool:
        """True when no request or message is in flight."""

    def awaits_first_request(self) -> bool:
        """True while the connection has not received a byte of its first request."""


def peer_address(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """The ``(host, port)`` of a TCP transport's peer; None for a unix socket or a gone peer."""
    return address_pair(transport.get_extra_info("peername"))


def address_pair(peer: Any) -> tuple[str, int] | None:
    """The ``(host, port)`` of a socket address (``accept()``'s or ``getpeername()``'s); None for
    a unix socket's (a path) or none."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        # uvloop makes a new (host, port) tuple per call: keep it rather than a copy
        return peer if len(peer) == 2 else (peer[0], peer[1])
    return None


def loop_reads_monotonic_clock(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop.time()`` reads the clock ``time.perf_counter`` reads, CLOCK_MONOTONIC (on
    Linux: asyncio's own ``time()`` is ``time.monotonic``; uvloop's is libuv's, the same clock
    or its coarse variant, which lags it by at most a tick and is cut to whole milliseconds, so
    a deadline taken from ``perf_counter`` is at most that much later than from the loop)."""
    if not sys.platform.startswith("linux"):
        return False
    loop_type = type(loop)
    if loop_type.__module__.startswith("uvloop"):
        return True
    return getattr(loop_type, "time", None) is asyncio.BaseEventLoop.time


class ServerState:
    """The per-worker context handed to every connection (see ``docs/internals.md``)."""

    def __init__(self, config: Config, handler: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        #: the worker's handler instance
        self.handler = handler
        #: the native handler's ``handle_request``, bound once: one bound method per connection
        #: would cost 64 bytes each
        self.handle_request: Callable[..., Any] | None = getattr(handler, "handle_request", None)
        self.loop = loop
        #: live connection protocols (HTTP and WebSocket)
        self.connections: set[ServedConnection] = set()
        #: tasks running async handlers and streamed bodies; shutdown waits for them
        self.tasks: set[asyncio.Task[Any]] = set()
        #: True once graceful shutdown began: responses then close their connection, and the
        #: health path answers 503 (see ``drain_delay``)
        self.draining = False
        #: True once the worker accepts connections and its handler is ready (set by the worker;
        #: a startup step such as an ASGI lifespan may hold it back): health says 200 only then
        self.serving = False
        #: answers ``Config.health_path`` before the handler; None when no path is configured
        self.health: HealthCheck | None = (
            HealthCheck(config.health_path) if config.health_path is not None else None
        )
        #: callbacks (plain or async) run once the drain is over and the requests in flight have
        #: finished, before the handler's ``close()``: the place for an ASGI lifespan shutdown
        self.after_drain: list[Callable[[], Any]] = []
        #: counts requests for the supervisor's metrics (``metrics_port``); None when off
        self.metrics: MetricsRecorder | None = None
        #: a response's duration is wanted (access log or metrics): one check per request
        self.timed = config.access_log
        #: the clock durations are read on, at the handler's call and the response's hand-over
        #: (an attribute, so that tests can hand in their own; in the compiled build also a
        #: C field, cheaper to reach than a module global)
        self.clock: Callable[[], float] = time.perf_counter
        #: ``clock`` when it reads the event loop's own clock (same epoch, finer resolution), so
        #: that a response's end read for the metrics also serves as "now" for the keep-alive
        #: deadline that follows (one clock read fewer per request); None when it does not
        self.loop_clock: Callable[[], float] | None = (
            time.perf_counter if loop_reads_monotonic_clock(loop) else None
        )
        #: ``loop.time``, bound once: calling it costs ~150 instructions less per request than
        #: looking the method up on the loop each time (the keep-alive deadline reads it)
        self.loop_time: Callable[[], float] = loop.time
        #: requests answered by this worker (for max_requests)
        self.requests = 0
        #: the read timers of the HTTP/1 connections, on one loop timer (see aio/timers.py)
        self.timers = TimerQueue(loop)
        #: the HTTP/1 connections holding a parser, swept for idle ones (see aio/parking.py)
        self.parking = ParserParking(self.timers, loop)
        #: ``host -> bool``: may this peer set X-Forwarded-* / Forwarded? None trusts nobody
        self.is_trusted_proxy: Callable[[str], bool] | None = None
        #: rewrites ``client``/``scheme`` of a request from a trusted proxy's headers
        self.apply_proxy_headers: Callable[[Request], None] | None = None
        #: the wall clock the Date line is read from (an attribute, so that tests can hand in
        #: their own: the compiled build does not see a patched module global)
        self.wall_clock: Callable[[], float] = time.time
        #: pre-formatted ``Date`` line, refreshed every second by :meth:`start_clock`
        self.date_line = date_line(time.time())
        self.server_line = b"Server: peregrine\r\n" if config.server_header else b""
        #: ``config.keep_alive_timeout``, read here on every request: in the compiled build this
        #: class is native and Config is not, so this read skips a dictionary lookup
        self.keep_alive_timeout: float = config.keep_alive_timeout
        #: for HTTP/1.0 clients that asked to keep the connection: how long we will keep it
        self.keep_alive_line = b"Connection: keep-alive\r\nKeep-Alive: timeout=%d\r\n" % max(
            1, int(config.keep_alive_timeout)
        )
        #: the access log, None when it is off
        self.access_log = (
            AccessLog(config.access_log_format, config.access_log_json)
            if config.access_log
            else None
        )
        self._ticker: asyncio.TimerHandle | None = None

    def describe_peer(
        self, transport: asyncio.BaseTransport, accepted: Any = None
    ) -> tuple[tuple[str, int] | None, bool, str]:
        """``(client, trusted_proxy, scheme)`` of a new connection (HTTP/1 and HTTP/2 alike).

        ``accepted``: the peer address ``accept()`` returned with the connection, when known;
        else the transport is asked (uvloop: a ``getsockname`` and a ``getpeername``)."""
        client = address_pair(accepted) if accepted is not None else peer_address(transport)
        trusted = False
        if self.is_trusted_proxy is not None:
            trusted = self.is_trusted_proxy(client[0] if client is not None else "unix")
        scheme = "https" if transport.get_extra_info("sslcontext") is not None else "http"
        return client, trusted, scheme

    def start_clock(self) -> None:
        """Refresh ``date_line`` every second (formatting a date per response would cost more)."""
        self.date_line = date_line(self.wall_clock())
        self._ticker = self.loop.call_at(self.loop.time() + 1.0, self.start_clock)

    def stop_clock(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def open_websocket(
        self, request: Request, subprotocol: str | None, deflate: DeflateParams | None
    ) -> WebSocketConnection:
        """The protocol a connection switches to after ``peregrine.ws.upgrade`` accepted a
        handshake (the asyncio side of that upgrade: ``peregrine.ws.Handoff`` calls this)."""
        from .websocket import WebSocketConnection

        return WebSocketConnection(self, request, subprotocol, deflate)
