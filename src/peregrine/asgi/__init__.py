"""ASGI 3: serving FastAPI, Starlette, Django, Litestar and Quart applications.

:class:`AsgiHandler` is what a worker holds for an ASGI application: the connection core calls
its ``serve_exchange`` for every request (see ``peregrine.aio.exchange``), and the worker runs
its ``startup`` before accepting and ``close`` when it stops (the lifespan protocol). The HTTP
and WebSocket cycles live in :mod:`.http` and :mod:`.websocket`; scopes are built in :mod:`.scope`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine
from typing import Any

from ..aio.exchange import Exchange
from ..config import Config
from ..ws.handshake import HandshakeError, check_request
from .http import ClientDisconnected, HttpStarter, new_task
from .lifespan import Lifespan, LifespanFailure
from .scope import ScopeTemplate, connection_scope, websocket_scope
from .websocket import WebSocketCycle

__all__ = ["AsgiHandler", "ClientDisconnected", "LifespanFailure"]


class AsgiHandler:
    """A worker's handler for an ASGI 3 application (see the module docstring)."""

    def __init__(self, app: Any, config: Config) -> None:
        self.app = app
        self.config = config
        self.root_path = config.root_path
        self.lifespan = Lifespan(app, config.lifespan)
        #: what the connection calls for every request (compiled, in ``.http``): starts the
        #: application's HTTP cycle, or hands a WebSocket handshake to :meth:`_serve_websocket`
        self.serve_exchange = HttpStarter(
            app, self.lifespan, self._connection_scope, self._serve_websocket
        )

    async def startup(self) -> None:
        """Run the lifespan startup; raises :class:`LifespanFailure` to stop the worker."""
        await self.lifespan.startup()

    async def close(self) -> None:
        """Run the lifespan shutdown (called by the worker as it stops)."""
        await self.lifespan.shutdown()

    def _serve_websocket(
        self, exchange: Exchange, template: ScopeTemplate, context: contextvars.Context | None
    ) -> None:
        """Run the application on a WebSocket handshake request (see ``.websocket``)."""
        request = exchange.request
        conn = exchange.conn
        try:
            accepted = check_request(
                request.method,
                request.version,
                request.headers,
                compression=self.config.ws_compression,
                window_bits=self.config.ws_compression_window_bits,
            )
        except HandshakeError as exc:
            _refuse_handshake(exchange, exc)
            conn.exchange_done(exchange)
            return
        scope = websocket_scope(template, request, self.lifespan.state)
        cycle = WebSocketCycle(exchange, accepted)
        _start(conn, cycle.run(self.app, scope), None if context is None else context.copy())

    def _connection_scope(self, conn: Any) -> ScopeTemplate:
        transport = conn.transport
        server = transport.get_extra_info("sockname")
        server = server[:2] if isinstance(server, tuple) else None  # None: a unix socket
        extensions: dict[str, Any] = {"http.response.pathsend": {}, "http.response.trailers": {}}
        if conn.scheme == "https":
            extensions["tls"] = _tls_extension(transport)
        return connection_scope(conn.scheme, conn.client, server, self.root_path, extensions)


def _start(
    conn: Any, coroutine: Coroutine[Any, Any, None], context: contextvars.Context | None
) -> None:
    # (context: None for the current one, or a copy of the connection's, see ConnectionStart)
    loop = conn.loop
    task = new_task(coroutine, loop) if context is None else context.run(new_task, coroutine, loop)
    tasks = conn.state.tasks
    if not task.done():
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _refuse_handshake(exchange: Exchange, exc: HandshakeError) -> None:
    from ..http.response import Response

    response = Response(None, exchange.request)
    response.status = exc.status
    for name, value in exc.headers:
        response.set_header(name, value)
    response.set_header("Content-Type", "text/plain; charset=utf-8")
    response.set_body(exc.message + "\n")
    exchange.respond(response)


def _tls_extension(transport: Any) -> dict[str, Any]:
    """The ``tls`` scope extension: the client certificate chain (PEM) and the TLS version."""
    import ssl

    ssl_object = transport.get_extra_info("ssl_object")
    extension: dict[str, Any] = {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }
    if ssl_object is None:
        return extension
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        extension["client_cert_chain"] = [ssl.DER_cert_to_PEM_cert(der)]
        subject = ssl_object.getpeercert().get("subject", ())
        extension["client_cert_name"] = (
            ", ".join(f"{key}={value}" for rdn in subject for key, value in rdn) or None
        )
    version = ssl_object.version()
    extension["tls_version"] = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(version)
    return extension
