"""The health-check path, answered by the server itself before the application.

A load balancer polls ``Config.health_path`` (often every 100-500 ms, on every host): the answer
must be cheap and must tell the truth about this worker, so it never reaches the application.
``200`` while the worker serves; ``503`` while it is starting (``ServerState.serving`` not yet
set) or draining, which is how a balancer learns that a host is leaving before it stops
accepting connections (see ``drain_delay``). Only ``GET`` and ``HEAD`` of exactly the path (any
query string ignored) are answered here; other methods on it go to the application as usual.
"""

from __future__ import annotations

from typing import Any

from ..http.request import Request

_OK_BODY = b"ok\n"
_DOWN_BODY = b"draining\n"
_STARTING_BODY = b"starting\n"


class HealthCheck:
    """Recognises health-check requests and writes their answer (one instance per worker)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        #: the path as it arrives on the wire (ASCII, so encoding it is exact)
        self.path = path.encode("ascii")

    def answer(self, conn: Any, request: Request) -> bool:
        """Answer ``request`` on ``conn`` if it is a health check; False lets the app have it.

        ``conn`` is the :class:`~peregrine.aio.connection.HttpConnection` whose turn it is to
        respond (so answers stay in request order). A draining worker answers with
        ``Connection: close`` and closes, as every response does then.
        """
        if request.raw_path != self.path or request.method not in ("GET", "HEAD"):
            return False
        state = conn.state
        if state.draining:
            status, body = b"503 Service Unavailable", _DOWN_BODY
        elif not state.serving:
            status, body = b"503 Service Unavailable", _STARTING_BODY
        else:
            status, body = b"200 OK", _OK_BODY
        keep_alive = request.keep_alive and not state.draining
        if not keep_alive:
            connection = b"Connection: close\r\n"
        elif request.version == "1.0":
            connection = state.keep_alive_line
        else:
            connection = b""
        head = b"".join(
            (
                b"HTTP/1.1 ",
                status,
                b"\r\n",
                state.date_line,
                state.server_line,
                b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n",
                b"Content-Length: %d\r\n" % len(body),
                connection,
                b"\r\n",
            )
        )
        state.requests += 1
        transport = conn.transport
        transport.write(head if request.method == "HEAD" else head + body)
        if not keep_alive:
            conn.close()
        return True
