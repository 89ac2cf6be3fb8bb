"""One worker: an event loop serving the listening sockets with one handler instance.

A worker runs in the server's own process (``workers=1``) or in a child of the supervisor. Its
life: make the handler, serve, and on SIGINT/SIGTERM (or :meth:`Worker.stop`) shut down
gracefully: stop accepting, close idle connections, let requests in flight finish within
``graceful_timeout``, then call the handler's ``close()``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import ssl
import threading
from typing import Any, Callable, Optional

from ..aio.connection import HttpConnection
from ..aio.loop import loop_factory
from ..aio.state import ServerState
from ..config import Config

log = logging.getLogger("peregrine")

# accept() failures that mean "out of resources for now", not "broken"
_ACCEPT_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Worker:
    """Serves ``sockets`` on a new event loop until told to stop."""

    def __init__(
        self,
        config: Config,
        handler_factory: Callable[[], Any],
        sockets: list[socket.socket],
        ssl_context: Optional[ssl.SSLContext] = None,
        on_request_limit: Optional[Callable[[], None]] = None,
    ) -> None:
        self.config = config
        self.handler_factory = handler_factory
        self.sockets = sockets
        self.ssl_context = ssl_context
        self.on_request_limit = on_request_limit
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.state: Optional[ServerState] = None
        self.stopping: Optional[asyncio.Event] = None
        self._interrupts = 0
        self.request_limit = 0

    # --- public -------------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> None:
        """Serve until stopped; returns once everything is closed."""
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

    def stop(self) -> None:
        """Begin a graceful shutdown; safe to call from any thread or a signal handler."""
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
        handler = self.handler_factory()
        state = ServerState(self.config, handler, loop)
        self.state = state
        self.stopping = asyncio.Event()
        proxy_hook = _proxy_hooks(self.config)
        if proxy_hook is not None:
            state.is_trusted_proxy, state.apply_proxy_headers = proxy_hook  # type: ignore[attr-defined]
        state.start_clock()
        if install_signals:
            self._install_signals(loop)
        loop.set_exception_handler(_exception_handler)
        servers = []
        try:
            for sock in self.sockets:
                servers.append(await loop.create_server(
                    lambda: HttpConnection(state), sock=sock, ssl=self.ssl_context,
                    backlog=self.config.backlog,
                    ssl_handshake_timeout=self.config.tls_handshake_timeout if self.ssl_context else None,
                ))
            if self.config.max_requests:
                self._watch_request_count()
            await self.stopping.wait()
        finally:
            await self._shutdown(servers)
            state.stop_clock()
            close = getattr(handler, "close", None)
            if close is not None:
                try:
                    result = close()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("handler close() failed")

    async def _shutdown(self, servers: list[asyncio.AbstractServer]) -> None:
        state = self.state
        assert state is not None
        state.draining = True
        for server in servers:
            server.close()
        for conn in list(state.connections):
            conn.shutdown()
        deadline = state.loop.time() + self.config.graceful_timeout
        while (state.tasks or any(not c.is_idle() for c in state.connections)) \
                and state.loop.time() < deadline:
            await asyncio.sleep(0.05)
            for conn in list(state.connections):
                if conn.is_idle():
                    conn.shutdown()
        for task in list(state.tasks):
            task.cancel()
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        for server in servers:
            await server.wait_closed() if not state.connections else None
        await asyncio.sleep(0)

    def _begin_stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_interrupt() -> None:
            self._interrupts += 1
            if self._interrupts > 1:
                log.warning("second interrupt: exiting at once")
                os._exit(1)
            log.info("shutting down gracefully (Ctrl+C again to force)")
            self._begin_stop()

        def on_term() -> None:
            log.info("shutting down gracefully")
            self._begin_stop()

        try:
            loop.add_signal_handler(signal.SIGINT, on_interrupt)
            loop.add_signal_handler(signal.SIGTERM, on_term)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread, or a platform without loop signal handlers

    def _watch_request_count(self) -> None:
        state = self.state
        assert state is not None and self.loop is not None
        if self.request_limit == 0:
            self.request_limit = self.config.max_requests
        if state.requests >= self.request_limit:
            log.info("served %d requests: recycling this worker", state.requests)
            if self.on_request_limit is not None:
                self.on_request_limit()
            self._begin_stop()
            return
        self.loop.call_later(0.2, self._watch_request_count)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _proxy_hooks(config: Config) -> Any:
    if not config.forwarded_allow_ips:
        return None
    try:
        from ..http.forwarded import make_proxy_hooks
    except ImportError:
        return None
    return make_proxy_hooks(config.forwarded_allow_ips)


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS:
        # Out of file descriptors and similar: the loop retries accepting; say so, don't die.
        log.error("accept failed (%s); retrying", exc)
        return
    loop.default_exception_handler(context)
