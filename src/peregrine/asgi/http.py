"""One ASGI HTTP request/response cycle over an exchange of the connection core.

``receive()`` hands the body over as it arrives (``http.request`` messages, ``more_body`` while
more is coming), then ``http.disconnect`` once the response is complete or the client has gone.
``send()`` turns ``http.response.*`` messages into a response: a body sent in one message goes
out as one write with its Content-Length; a body in several messages is streamed (with the
application's Content-Length when it set one, else chunked on HTTP/1.1 and close-delimited on
HTTP/1.0), and ``send()`` waits while the client is not reading.

Errors follow the spec and what a client can tell apart: an exception (or no response at all)
before anything was sent is a 500; after the head went out the connection is cut, so a truncated
response never looks complete. ``send()`` once the client has gone raises
:class:`ClientDisconnected` (an ``OSError``, ASGI 2.4); an application that lets it propagate
ends quietly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from .._build import mypyc_attr
from ..http.framing import framed_response
from ..http.response import Response

if TYPE_CHECKING:
    from ..aio.exchange import AnyExchange

log: Final = logging.getLogger("peregrine.error")

# where a cycle is
_START: Final = 0
_STARTED: Final = 1
_STREAMING: Final = 2
_DONE: Final = 3

_DISCONNECT: Final = "http.disconnect"


@mypyc_attr(native_class=False)  # mypyc cannot make a native subclass of a built-in exception
class ClientDisconnected(ConnectionResetError):
    """``send()`` was called after the client went away (an ``OSError``, as ASGI 2.4 asks)."""


class HttpCycle:
    """Runs the application for one request (see the module docstring)."""

    __slots__ = ("exchange", "stage", "response", "length", "body_sent_whole")

    def __init__(self, exchange: AnyExchange) -> None:
        self.exchange = exchange
        self.stage = _START
        self.response: Response | None = None
        #: the Content-Length the application declared, if any
        self.length: int | None = None
        #: the request body's last message has been handed over
        self.body_sent_whole = False

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        """Call the application and see the response through; never raises."""
        exchange = self.exchange
        conn = exchange.conn
        try:
            await app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass  # our own "the client has gone", let through by the application
        except Exception:
            if exchange.client_gone:
                log.debug("ASGI application failed after the client left", exc_info=True)
            elif self.stage < _STREAMING:
                self._refuse_body()
                conn._handler_failed(exchange.request, exchange.start)  # logs, answers 500
                self.stage = _DONE
            else:
                log.exception(
                    "ASGI application failed mid-response on %s %s",
                    exchange.request.method,
                    exchange.request.url,
                )
                exchange.abort()  # the head is out: cut, so the response cannot look complete
        else:
            if self.stage != _DONE and not exchange.client_gone:
                body = exchange.body
                if self.stage == _STREAMING:
                    log.error(
                        "ASGI application returned mid-response (more_body was never False)"
                        " on %s %s",
                        exchange.request.method,
                        exchange.request.url,
                    )
                    exchange.abort()
                elif body is not None and body.failed:
                    pass  # the body broke off: the connection answers with the error queued
                else:
                    log.error(
                        "ASGI application returned without a response on %s %s",
                        exchange.request.method,
                        exchange.request.url,
                    )
                    self._refuse_body()
                    conn._send_error(500, exchange.request, exchange.start)
        finally:
            exchange.release()
            conn.exchange_done(exchange)

    def _refuse_body(self) -> None:
        # An error answer closes the connection: no need to read the rest of the body.
        body = self.exchange.body
        if body is not None and not body.complete:
            body.discard()

    # --- receive ------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next ``http.request`` piece, or ``http.disconnect``."""
        exchange = self.exchange
        body = exchange.body
        assert body is not None
        if self.stage == _DONE:
            return {"type": _DISCONNECT}  # the spec's answer once the response is complete
        if not self.body_sent_whole:
            if not (body.chunks or body.complete or body.failed or body.discarding):
                if exchange.client_gone:
                    return {"type": _DISCONNECT}
                await body.wait()
            if body.failed or body.discarding:
                self.body_sent_whole = True
                return {"type": _DISCONNECT}
            data = body.take()
            more = not body.complete
            if not more:
                self.body_sent_whole = True
            return {"type": "http.request", "body": data, "more_body": more}
        # The whole body is the application's: all that can come now is the disconnect, which
        # the spec also sends once the response is complete.
        if self.stage != _DONE:
            await exchange.wait_client_gone()
        return {"type": _DISCONNECT}

    # --- send ---------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Act on one ``http.response.*`` message."""
        kind = message["type"]
        exchange = self.exchange
        if kind == "http.response.body":
            if self.stage == _START:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            if self.stage == _DONE:
                if exchange.client_gone:
                    raise ClientDisconnected("the client has gone")
                raise RuntimeError("ASGI: http.response.body after the response was complete")
            if exchange.client_gone:
                raise ClientDisconnected("the client has gone")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            response = self.response
            assert response is not None
            if self.stage == _STARTED:
                if not more and (self.length is None or self.length == len(body)):
                    # The whole body in one message, the common case: one write.
                    response.body = body
                    self.stage = _DONE
                    exchange.respond(response)
                    exchange.release()
                    return
                exchange.begin_stream(response, self.length)
                self.stage = _STREAMING
            if body:
                await exchange.write(body)
            if not more:
                self.stage = _DONE
                exchange.end()
                exchange.release()
        elif kind == "http.response.start":
            if self.stage != _START:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self._start(message)
        elif kind == "http.response.pathsend":
            if self.stage != _STARTED:
                raise RuntimeError("ASGI: http.response.pathsend must follow http.response.start")
            if exchange.client_gone:
                raise ClientDisconnected("the client has gone")
            response = self.response
            assert response is not None
            response.send_file(message["path"])
            assert response.file is not None
            file, _offset, count = response.file
            if self.length is not None and self.length != count:
                file.close()
                raise RuntimeError("ASGI: Content-Length does not match the file's size")
            self.stage = _DONE
            await exchange.send_file(response)
            exchange.release()
        else:
            raise RuntimeError(f"ASGI: unexpected message type {kind!r} on an HTTP connection")

    def _start(self, message: dict[str, Any]) -> None:
        status = message["status"]
        if status.__class__ is not int or not 200 <= status <= 599:
            # informational answers are the server's (100 Continue) or an upgrade's business
            raise RuntimeError(f"ASGI: invalid status {status!r} in http.response.start")
        # ValueError for CR, LF or NUL in a field, TypeError for a field that is not bytes: a 500
        self.response, self.length = framed_response(
            self.exchange.request, status, message.get("headers", ()), bytes
        )
        self.stage = _STARTED
