"""ASGI 3: serving FastAPI, Starlette, Django, Litestar and Quart applications.

:class:`AsgiHandler` is what a worker holds for an ASGI application: the connection core calls
its ``serve_exchange`` for every request (see ``peregrine.aio.exchange``), and the worker runs
its ``startup`` before accepting and ``close`` when it stops (the lifespan protocol). The HTTP
and WebSocket cycles live in :mod:`.http` and :mod:`.websocket`; scopes are built in :mod:`.scope`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from ..aio.exchange import Exchange
from ..config import Config
from ..ws.handshake import HandshakeError, check_request
from .http import ClientDisconnected, HttpCycle
from .lifespan import Lifespan, LifespanFailure
from .scope import connection_scope, http_scope, websocket_scope
from .websocket import WebSocketCycle

__all__ = ["AsgiHandler", "ClientDisconnected", "LifespanFailure"]

# Python 3.12+ can start a task eagerly: its first step runs now, with the task as the current
# one, so an application that answers without awaiting anything costs no trip through the event
# loop. (Running the coroutine outside any task would be cheaper still, but frameworks built on
# anyio, FastAPI's sync endpoints among them, need a current task from their first step.)
_EAGER: dict[str, Any] = {"eager_start": True} if sys.version_info >= (3, 12) else {}

#: the name of every request's task: a task made without one is named "Task-<n>" at creation on
#: Python 3.11, a string formatted per request (~1,450 instructions, bench/README.md)
TASK_NAME = "peregrine-asgi"


class AsgiHandler:
    """A worker's handler for an ASGI 3 application (see the module docstring)."""

    def __init__(self, app: Any, config: Config) -> None:
        self.app = app
        self.config = config
        self.root_path = config.root_path
        self.lifespan = Lifespan(app, config.lifespan)
        # a done future of the loop serving requests: what send() returns when done at the call
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sent: asyncio.Future[None] | None = None

    async def startup(self) -> None:
        """Run the lifespan startup; raises :class:`LifespanFailure` to stop the worker."""
        await self.lifespan.startup()

    async def close(self) -> None:
        """Run the lifespan shutdown (called by the worker as it stops)."""
        await self.lifespan.shutdown()

    def serve_exchange(self, exchange: Exchange) -> None:
        """Start the application on one request (called by the connection, on the loop)."""
        request = exchange.request
        conn = exchange.conn
        template = conn.adapter_data
        if template is None:
            template = conn.adapter_data = self._connection_scope(conn)
        parser = conn.parser
        if parser is not None and parser.upgrade_data is not None and _is_websocket(request):
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
            cycle: Any = WebSocketCycle(exchange, accepted)
            _start(conn, cycle.run(self.app, scope))
            return
        loop = conn.loop
        sent = self._sent
        if loop is not self._loop or sent is None:
            self._loop = loop
            sent = self._sent = loop.create_future()
            sent.set_result(None)
        http = HttpCycle(exchange, sent)
        task = asyncio.Task(
            http.run(self.app, http_scope(template, request, self.lifespan.state)),
            loop=loop,
            name=TASK_NAME,
            **_EAGER,
        )
        if not task.done():
            conn.state.tasks.add(task)
            http.task = task  # run() takes it out of the set as it ends

    def _connection_scope(self, conn: Any) -> dict[str, Any]:
        transport = conn.transport
        server = transport.get_extra_info("sockname")
        server = server[:2] if isinstance(server, tuple) else None  # None: a unix socket
        extensions: dict[str, Any] = {"http.response.pathsend": {}, "http.response.trailers": {}}
        if conn.scheme == "https":
            extensions["tls"] = _tls_extension(transport)
        return connection_scope(conn.scheme, conn.client, server, self.root_path, extensions)


def _start(conn: Any, coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.Task(coroutine, loop=conn.loop, name=TASK_NAME, **_EAGER)
    tasks = conn.state.tasks
    if not task.done():
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _is_websocket(request: Any) -> bool:
    for name, value in request.raw_headers:
        if len(name) == 7 and name.lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


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
