"""One worker: an event loop serving the listening sockets with one handler instance.

A worker runs in the server's own process (``workers=1``) or in a child of the supervisor. Its
life: make the handler, start accepting, and on SIGINT/SIGTERM (or :meth:`Worker.stop`) shut down
gracefully: stop accepting, close idle connections, let requests in flight finish within
``graceful_timeout``, then call the handler's ``close()``. The signal handlers are in place before
the handler is made, so a stop asked for while it is being built is not lost.

How a worker is built and announced, the same in both process models, is in :mod:`.startup`;
the life of a supervised worker process around it in :mod:`.child`; the signals of a server
without a supervisor in :mod:`.signals`.

Connections are accepted by :class:`~peregrine.process.acceptor.Acceptor` (why not
``loop.create_server``: see that module).
"""

from __future__ import annotations

import array
import asyncio
import gc
import logging
import os
import random
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from ..aio.connection import HttpConnection
from ..aio.loop import loop_factory
from ..aio.state import ServedConnection, ServerState
from ..config import Config
from ..lifecycle import set_draining
from .acceptor import Acceptor
from .signals import SUPERVISOR_SIGNALS
from .watchdog import Heartbeat, heartbeat_interval

try:
    import fcntl
    import termios
except ImportError:  # Windows: no FIONREAD peek; shutdown then closes idle connections blindly
    fcntl = termios = None  # type: ignore[assignment]

log = logging.getLogger("peregrine")

_PARENT_POLL = 1.0
# after graceful_timeout, how long hooks started by the cut-off (disconnect hooks) may still run
_HOOK_GRACE = 1.0
# at shutdown, how long a connection that has not sent its first request yet may still send it
_FIRST_REQUEST_GRACE = 1.0


class Worker:
    """Serves ``sockets`` on a new event loop until told to stop.

    ``on_ready`` is called once every socket is being accepted on; ``on_request_limit`` once
    this worker has answered its share of ``max_requests`` (plus jitter): the supervisor then
    starts a replacement and stops this worker when the replacement is ready, so no request
    meets a closed door. ``parent_pid``: stop when that process is no longer our parent (the
    supervisor died). ``on_heartbeat`` is called from the event loop every few seconds while it
    runs (the supervisor's hung-worker watchdog listens for it; see :mod:`.watchdog`).
    """

    def __init__(
        self,
        config: Config,
        handler_factory: Callable[[], Any],
        sockets: list[socket.socket],
        ssl_context: ssl.SSLContext | None = None,
        on_request_limit: Callable[[], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        parent_pid: int | None = None,
        on_draining: Callable[[], None] | None = None,
        on_heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.handler_factory = handler_factory
        self.sockets = sockets
        self.ssl_context = ssl_context
        self.on_request_limit = on_request_limit
        self.on_ready = on_ready
        self.on_draining = on_draining
        self.on_heartbeat = on_heartbeat
        self.parent_pid = parent_pid
        self.loop: asyncio.AbstractEventLoop | None = None
        self.state: ServerState | None = None
        self.stopping: asyncio.Event | None = None
        self.acceptors: list[Acceptor] = []
        self._interrupts = 0
        #: requests after which this worker asks to be recycled (0 = never)
        self.request_limit = (
            config.max_requests + random.randint(0, config.max_requests_jitter)
            if config.max_requests
            else 0
        )
        self._limit_reported = False
        self._stop_requested = False
        #: True once the handler is made and every socket is accepted on
        self.ready = False
        #: set to end the drain period early (a second SIGTERM/SIGINT)
        self._drain_skipped: asyncio.Event | None = None

    # --- public -------------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> None:
        """Serve until stopped; returns once everything is closed.

        With ``install_signals`` (the worker owns its process: a supervised child, or
        ``workers=1`` in the main thread) the objects left by start-up are frozen out of the
        cyclic collector's reach before the first connection (:func:`freeze_startup_heap`).
        """
        new_loop, _ = loop_factory(self.config.loop)
        loop = new_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(install_signals))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def serve(self) -> None:
        """Serve in the running event loop (which the caller owns, signals included) until stopped."""
        self.loop = asyncio.get_running_loop()
        await self._serve(install_signals=False)

    def stop(self) -> None:
        """Begin a graceful shutdown; safe to call from any thread or a signal handler."""
        self._stop_requested = True  # seen by _serve if the loop is not running yet
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if threading.current_thread() is threading.main_thread() and _in_loop(loop):
            self._begin_stop()
        else:
            loop.call_soon_threadsafe(self._begin_stop)

    # --- serving ------------------------------------------------------------------------------

    async def _serve(self, install_signals: bool) -> None:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self._drain_skipped = asyncio.Event()
        set_draining(False)  # a server started again in this process serves afresh
        if install_signals:
            # before the handler is made (that may take long): a SIGTERM meanwhile is then a
            # graceful stop, not a death that leaves sockets behind
            self._install_signals(loop)
        handler = self.handler_factory()
        startup = getattr(handler, "startup", None)
        if startup is not None:
            # the ASGI lifespan: before the first connection is accepted; failing stops the start
            await startup()
        state = ServerState(self.config, handler, loop)
        self.state = state
        if install_signals:
            freeze_startup_heap()
        proxy_hook = _proxy_hooks(self.config)
        if proxy_hook is not None:
            state.is_trusted_proxy, state.apply_proxy_headers = proxy_hook
        state.start_clock()
        _start_metrics(state)
        loop.set_exception_handler(_exception_handler)
        heartbeat = None
        try:
            for sock in self.sockets:
                acceptor = Acceptor(
                    loop,
                    sock,
                    lambda peer: HttpConnection(state, peer),
                    self.ssl_context,
                    self.config.tls_handshake_timeout,
                    lambda: len(state.connections),
                )
                acceptor.start(self.config.backlog)
                self.acceptors.append(acceptor)
            if self.request_limit:
                self._watch_request_count()
            if self.parent_pid is not None:
                self._watch_parent()
            self.ready = True
            state.serving = True
            if self.on_ready is not None:
                self.on_ready()
            if self.on_heartbeat is not None and self.config.worker_timeout:
                interval = heartbeat_interval(self.config.worker_timeout)
                heartbeat = Heartbeat(loop, interval, self.on_heartbeat)
                heartbeat.start()
            if self._stop_requested:
                self.stopping.set()
            await self.stopping.wait()
        finally:
            await self._shutdown()
            await _run_after_drain(state)
            state.stop_clock()
            _stop_metrics(state)
            close = getattr(handler, "close", None)
            if close is not None:
                try:
                    result = close()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("handler close() failed")
            if heartbeat is not None:
                heartbeat.stop()  # beats through the shutdown: a hung close() is noticed too

    async def _shutdown(self) -> None:
        """Stop accepting now; finish what is in flight within ``graceful_timeout``; close the rest."""
        state = self.state
        assert state is not None
        await self._drain_period(state)
        for acceptor in self.acceptors:
            acceptor.stop()
        if self.on_draining is not None:
            self.on_draining()
        handshakes = [a.pending for a in self.acceptors]
        now = state.loop.time()
        deadline = now + self.config.graceful_timeout
        first_request_deadline = min(now + _FIRST_REQUEST_GRACE, deadline)
        # busy connections hear of the shutdown at once (WebSocket: the close with 1001 that a
        # push loop watches for; HTTP: a no-op, the response in flight closes the connection)
        for conn in list(state.connections):
            if not conn.is_idle():
                conn.shutdown()
        while True:
            now = state.loop.time()
            for conn in list(state.connections):
                if conn.is_idle() and not _waiting_for(conn, now < first_request_deadline):
                    conn.shutdown()
            busy = (
                state.tasks
                or any(handshakes)
                or any(
                    not c.is_idle() or _waiting_for(c, now < first_request_deadline)
                    for c in state.connections
                )
            )
            if not busy or now >= deadline:
                break
            await asyncio.sleep(0.05)
        if state.tasks or any(not c.is_idle() for c in state.connections):
            log.warning(
                "graceful_timeout (%ss) passed: cutting %d connection(s) short",
                self.config.graceful_timeout,
                len(state.connections),
            )
        for pending in handshakes:
            for task in list(pending):
                task.cancel()
        for task in list(state.tasks):
            task.cancel()
        for conn in list(state.connections):
            transport = conn.transport
            if transport is not None:
                transport.abort()
        # Let the aborted transports and cancelled tasks run their callbacks, and the disconnect
        # hooks those start (WebSocket handle_ws_disconn) finish: briefly, the deadline is past.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=_HOOK_GRACE)

    async def _drain_period(self, state: ServerState) -> None:
        """Draining, before accepting stops: let the load balancer see this worker leave.

        For ``drain_delay`` seconds the worker keeps accepting and serving, while the health path
        answers 503 and every response carries ``Connection: close``. Idle keep-alive connections
        stay open: a balancer may be sending its next request on one right now, and closing it
        would lose that request; each is answered once more, then closed. When the delay ends
        (or a second SIGTERM/SIGINT cuts it short), :meth:`_shutdown` stops accepting.
        """
        state.draining = True
        set_draining(True)
        delay = self.config.drain_delay
        if delay <= 0 or self._drain_skipped is None or self._drain_skipped.is_set():
            return
        log.info("draining for %ss before refusing new connections", delay)
        try:
            await asyncio.wait_for(self._drain_skipped.wait(), delay)
        except asyncio.TimeoutError:
            pass

    def _skip_drain(self) -> bool:
        """End the drain period now; False when no drain period is running."""
        if self._drain_skipped is None or self._drain_skipped.is_set():
            return False
        if self.stopping is None or not self.stopping.is_set() or self.config.drain_delay <= 0:
            return False
        self._drain_skipped.set()
        log.info("second stop signal: ending the drain period now")
        return True

    def _begin_stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_interrupt() -> None:
            self._interrupts += 1
            if self._interrupts == 2 and self._skip_drain():
                return  # the next one forces the exit
            if self._interrupts > 1:
                log.warning("second interrupt: exiting at once")
                os._exit(1)
            log.info("shutting down gracefully (Ctrl+C again to force)")
            self._begin_stop()

        def on_term() -> None:
            if self._skip_drain():
                return
            log.info("shutting down gracefully")
            self._begin_stop()

        try:
            loop.add_signal_handler(signal.SIGINT, on_interrupt)
            loop.add_signal_handler(signal.SIGTERM, on_term)
            if self.parent_pid is None:  # no supervisor: its signals must not kill or stop us
                for sig, note in SUPERVISOR_SIGNALS.items():
                    loop.add_signal_handler(sig, log.warning, note)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without loop signal handlers

    def _watch_request_count(self) -> None:
        state = self.state
        assert state is not None and self.loop is not None
        if state.requests >= self.request_limit and not self._limit_reported:
            self._limit_reported = True
            if self.on_request_limit is not None:
                log.info("served %d requests: asking for a replacement", state.requests)
                self.on_request_limit()
            else:
                log.warning("max_requests reached, but recycling needs the supervisor: ignored")
            return
        if not self._limit_reported:
            self.loop.call_later(0.2, self._watch_request_count)

    def _watch_parent(self) -> None:
        # PR_SET_PDEATHSIG covers Linux; this poll covers the rest (and a parent that died
        # before the child could ask for the signal).
        assert self.loop is not None
        if os.getppid() != self.parent_pid:
            log.warning("the supervisor is gone: shutting down")
            self._begin_stop()
            return
        self.loop.call_later(_PARENT_POLL, self._watch_parent)


def _start_metrics(state: ServerState) -> None:
    """Count this worker's requests when the supervisor gave it a block of shared memory."""
    from ..metrics.recorder import installed

    state.metrics = installed()
    if state.metrics is not None:
        state.timed = True
        state.metrics.start(state.loop, state.connections)


def _stop_metrics(state: ServerState) -> None:
    if state.metrics is not None:
        state.metrics.stop()  # the last counts, published before the process exits


async def _run_after_drain(state: ServerState) -> None:
    """Run ``state.after_drain`` (ASGI lifespan shutdown and the like), in order, once each."""
    hooks, state.after_drain = state.after_drain, []
    for hook in hooks:
        try:
            result = hook()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except Exception:
            log.exception("after-drain hook %r failed", hook)


def freeze_startup_heap() -> None:
    """Collect once, then move every object still alive (modules, the application and what it
    built at start-up) into the cyclic collector's permanent generation.

    Those objects live as long as the process, yet every full (generation 2) collection walks
    them all again. Full collections come when many new objects survive, i.e. when many
    connections open at once (each leaves ~20 tracked objects), and stop the loop for their
    whole walk: with the seed app, 1000 new connections set one off over ~45k objects, half of
    them start-up's, a pause every open connection waits for (``bench/README.md``, "The tail
    at 1000 connections"). Frozen, the walk covers only what serving made. Garbage among frozen
    objects is never collected; the collection first keeps that to nothing.
    """
    gc.collect()
    gc.freeze()


def _waiting_for(conn: ServedConnection, first_request_grace: bool) -> bool:
    """Should an idle connection stay open a little longer during shutdown?

    Idle keep-alive connections are closed at once, except when the client's next request is
    already in the socket (it is served: closing would reset it), or when the connection has not
    carried a request yet and the grace for a first request is still running: the client
    connected before the stop, and its request may still be on its way.
    """
    if _has_unread_data(conn):
        return True
    return first_request_grace and conn.awaits_first_request()


def _has_unread_data(conn: ServedConnection) -> bool:
    """True when bytes from the client wait in the kernel for this connection to read."""
    transport = conn.transport
    if fcntl is None or transport is None or transport.is_closing():
        return False
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    except (OSError, ValueError):
        return False
    return buf[0] > 0


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _proxy_hooks(config: Config) -> Any:
    if not config.forwarded_allow_ips:
        return None
    from ..http.forwarded import make_proxy_hooks

    return make_proxy_hooks(config.forwarded_allow_ips, config.forwarded_headers)


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return  # a client hanging up mid-way is routine, not an error of the server
    loop.default_exception_handler(context)
