"""One ASGI HTTP request/response cycle over an exchange of the connection core.

``receive()`` hands the body over as it arrives (``http.request`` messages, ``more_body`` while
more is coming), then ``http.disconnect`` once the response is complete or the client has gone.
``send()`` turns ``http.response.*`` messages into a response: a body sent in one message goes
out as one write with its Content-Length; a body in several messages is streamed (with the
application's Content-Length when it set one, else chunked on HTTP/1.1 and close-delimited on
HTTP/1.0), and ``send()`` waits while the client is not reading.

Trailers (the ``http.response.trailers`` extension): a response started with ``trailers: True``
ends with the fields of its ``http.response.trailers`` messages, in the last chunk on HTTP/1.1
(chunked whatever Content-Length the application set) and in a trailing HEADERS frame on
HTTP/2, when the request said ``TE: trailers`` as the extension asks. Otherwise they are
dropped and the response is framed and sent as if none were announced.

Errors follow the spec and what a client can tell apart: an exception (or no response at all)
before anything was sent is a 500; after the head went out the connection is cut, so a truncated
response never looks complete. ``send()`` once the client has gone raises
:class:`ClientDisconnected` (an ``OSError``, ASGI 2.4); an application that lets it propagate
ends quietly.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from .._build import mypyc_attr
from ..aio.exchange import Exchange
from ..http.framing import HeadCache, accepts_trailers, trailer_fields
from ..http.request import Request
from ..http.response import Response
from .scope import ScopeTemplate, http_scope

if TYPE_CHECKING:
    from ..aio.exchange import AnyExchange

log: Final = logging.getLogger("peregrine.error")

# where a cycle is (_TRAILERS: the body is out, its trailers are awaited)
_START: Final = 0
_STARTED: Final = 1
_STREAMING: Final = 2
_TRAILERS: Final = 3
_DONE: Final = 4
# what happens to trailers the application announced: none announced, dropped, sent
_NO_TRAILERS: Final = 0
_DROP_TRAILERS: Final = 1
_SEND_TRAILERS: Final = 2

_DISCONNECT: Final = "http.disconnect"

# Python 3.12+ can start a task eagerly: its first step runs now, with the task as the current
# one, so an application that answers without awaiting anything costs no trip through the event
# loop. (Running the coroutine outside any task would be cheaper still, but frameworks built on
# anyio, FastAPI's sync endpoints among them, need a current task from their first step.)
EAGER: Final[dict[str, Any]] = {"eager_start": True} if sys.version_info >= (3, 12) else {}

#: the name of every request's task: a task made without one is named "Task-<n>" at creation on
#: Python 3.11, a string formatted per request (~1,450 instructions, bench/README.md)
TASK_NAME: Final = "peregrine-asgi"

#: asyncio's Task class, kept here: compiled, a module global is read in place, where
#: ``asyncio.Task`` is an attribute looked up on the module at every request
_Task: Final = asyncio.Task
_copy_context: Final = contextvars.copy_context


class ConnectionStart:
    """What every request of one connection starts from (the connection's ``adapter_data``).

    ``context`` is the context the connection's first request arrived in: the server's, as the
    event loop calls protocols. A task copies the context it is made in, and a request is
    started either from a protocol callback (no task current: the copy is of the server's
    context) or, pipelined, from the end of the previous request's task, whose copy would hold
    the context variables that request set. Those are made in a copy of ``context`` instead
    (see ``HttpStarter.ending``).
    """

    __slots__ = ("template", "context")

    def __init__(self, template: ScopeTemplate, context: contextvars.Context) -> None:
        #: the scope's fixed part (``.scope.connection_scope``)
        self.template = template
        self.context = context


#: the ASGI interface's checked heads (statuses are ints, checked before; fields bytes pairs)
_HEADS: Final = HeadCache(bytes, int)


class HttpStarter:
    """Starts the application on each request: what the connection calls (``AsgiHandler``'s
    ``serve_exchange``).

    Compiled with this module, so the per-request start (the scope, the cycle, its task) runs
    no interpreted code; an upgrade to WebSocket goes to ``upgrade``, the handler's own.
    """

    __slots__ = ("app", "lifespan", "connection_scope", "upgrade", "ending", "_loop", "_sent")

    def __init__(
        self,
        app: Any,
        lifespan: Any,
        connection_scope: Callable[[Any], ScopeTemplate],
        upgrade: Callable[[Any, ScopeTemplate, contextvars.Context | None], None],
    ) -> None:
        self.app = app
        #: the lifespan runner: its ``state`` (None until startup set one) goes into each scope
        self.lifespan = lifespan
        #: makes the scope's fixed part from a connection, once per connection
        self.connection_scope = connection_scope
        #: serves a WebSocket handshake request: ``upgrade(exchange, scope template, context)``
        #: (``context``: what its task runs in a copy of, or None for the current one)
        self.upgrade = upgrade
        #: True while a request's task is ending (``HttpCycle.run``), which may start the
        #: next pipelined request: its task is then made in a copy of the connection's
        #: context (see ConnectionStart), not of the ending task's
        self.ending = False
        # a done future of the loop serving requests: what send() returns when done at the call
        self._loop: Any = None
        self._sent: Any = None

    def __call__(self, exchange: AnyExchange) -> None:
        """Start the application on ``exchange``'s request (called by the connection)."""
        if isinstance(exchange, Exchange):
            # HTTP/1, the common case: narrowed to its compiled class (and its connection's),
            # what is read and called below is reached directly, not looked up by name
            conn = exchange.conn
            request = exchange.request
            start: ConnectionStart | None = conn.adapter_data
            if start is None:
                start = conn.adapter_data = ConnectionStart(
                    self.connection_scope(conn), _copy_context()
                )
            parser = conn.parser
            if parser is not None and parser.upgrade_data is not None and is_websocket(request):
                self.upgrade(exchange, start.template, start.context if self.ending else None)
                return
            loop = conn.loop
            tasks = conn.state.tasks
        else:
            # an HTTP/2 stream: its connection (``H2Exchange.conn``) has no parser, no upgrade
            port = exchange.conn
            request = exchange.request
            start = port.adapter_data
            if start is None:
                start = port.adapter_data = ConnectionStart(
                    self.connection_scope(port), _copy_context()
                )
            loop = port.loop
            tasks = port.state.tasks
        sent = self._sent
        if loop is not self._loop or sent is None:
            self._loop = loop
            sent = self._sent = loop.create_future()
            sent.set_result(None)
        cycle = HttpCycle(exchange, request, sent, self)
        coroutine = cycle.run(self.app, http_scope(start.template, request, self.lifespan.state))
        if self.ending:
            # started by the end of the previous request's task (see ConnectionStart): made in
            # a copy, which the task copies in turn (``context=`` needs 3.11; and a context
            # cannot be entered twice, as an eager start on 3.12 would nest this)
            task = start.context.copy().run(new_task, coroutine, loop)
        elif EAGER:
            task = _Task(coroutine, loop=loop, name=TASK_NAME, **EAGER)
        else:
            # (not **EAGER: even an empty one is a keyword dict merged, ~600 instructions)
            task = _Task(coroutine, loop=loop, name=TASK_NAME)
        if EAGER and task.done():
            return  # finished in its eager first step (Python 3.12+)
        tasks.add(task)
        cycle.task = task  # run() takes it out of the set as it ends
        cycle.tasks = tasks


def new_task(coroutine: Coroutine[Any, Any, None], loop: Any) -> asyncio.Task[None]:
    """A request's task for ``coroutine`` (eager where Python has it), in the current context."""
    return _Task(coroutine, loop=loop, name=TASK_NAME, **EAGER)


def is_websocket(request: Any) -> bool:
    """Whether ``request`` asks to upgrade to WebSocket (checked in full by the handshake)."""
    for name, value in request.raw_headers:
        if len(name) == 7 and name.lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


@mypyc_attr(native_class=False)  # mypyc cannot make a native subclass of a built-in exception
class ClientDisconnected(ConnectionResetError):
    """``send()`` was called after the client went away (an ``OSError``, as ASGI 2.4 asks)."""


class HttpCycle:
    """Runs the application for one request (see the module docstring)."""

    __slots__ = (
        "exchange",
        "request",
        "stage",
        "response",
        "length",
        "body_sent_whole",
        "trailers",
        "fields",
        "sent",
        "task",
        "tasks",
        "starter",
    )

    def __init__(
        self,
        exchange: AnyExchange,
        request: Request,
        sent: Awaitable[None],
        starter: HttpStarter | None = None,
    ) -> None:
        self.exchange = exchange
        #: the exchange's request (kept here: read natively, whatever the exchange's class)
        self.request = request
        #: what send() returns when it has nothing to wait for: a done future of the loop
        self.sent = sent
        #: the task running the application, which run() takes out of the server's set (None
        #: when the application finished in the task's eager first step, Python 3.12+)
        self.task: asyncio.Task[None] | None = None
        #: the server's set of running tasks, which holds ``task`` while it runs
        self.tasks: set[asyncio.Task[Any]] | None = None
        #: what started this cycle, told while the cycle's end may start the next (``ending``;
        #: None for a WebSocket denial's cycle, which sends through this one but never runs)
        self.starter = starter
        self.stage = _START
        self.response: Response | None = None
        #: the Content-Length the application declared, if any
        self.length: int | None = None
        #: the request body's last message has been handed over
        self.body_sent_whole = False
        #: _NO_TRAILERS, or what becomes of the trailers the application announced
        self.trailers = _NO_TRAILERS
        #: the trailer fields received so far (``more_trailers``); None before the first
        self.fields: list[tuple[bytes, bytes]] | None = None

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        """Call the application and see the response through; never raises."""
        exchange = self.exchange
        try:
            # the cycle itself is ``send`` (see __call__): no bound method made per request
            await app(scope, self.receive, self)
        except ClientDisconnected:
            pass  # our own "the client has gone", let through by the application
        except Exception:
            if exchange.client_gone:
                log.debug("ASGI application failed after the client left", exc_info=True)
            elif self.stage < _STREAMING:
                self._refuse_body()
                exchange.conn._handler_failed(self.request, exchange.start)  # logs, answers 500
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
                if self.stage >= _STREAMING:
                    log.error(
                        "ASGI application returned mid-response (more_body or more_trailers"
                        " was never False) on %s %s",
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
                    exchange.conn._send_error(500, self.request, exchange.start)
        finally:
            # exchange_done may start the next pipelined request, here in this task's context
            starter = self.starter
            assert starter is not None
            ending = starter.ending  # (True if this task was started eagerly by another's end)
            starter.ending = True
            try:
                if isinstance(exchange, Exchange):
                    # HTTP/1: narrowed to its compiled class, these are direct calls
                    exchange.release()
                    exchange.conn.exchange_done(exchange)
                else:
                    exchange.release()
                    exchange.conn.exchange_done(exchange)
            finally:
                starter.ending = ending
            tasks = self.tasks
            if tasks is not None:
                # (rather than a done callback: each costs a trip through the loop's queue)
                tasks.discard(self.task)

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

    def __call__(self, message: dict[str, Any]) -> Awaitable[None]:
        """The application's ``send``: :meth:`send`. Handing the application the cycle rather
        than its bound ``send`` saves making a method object per request, and compiled, the
        call reaches the method without one in between."""
        return self.send(message)

    def send(self, message: dict[str, Any]) -> Awaitable[None]:
        """Act on one ``http.response.*`` message (the ``send`` awaitable callable).

        The start and a body in one message, the common case, are acted on at the call, which
        returns a done future: no coroutine made and run per message. The rest goes through
        :meth:`_send`, which may wait for the client.
        """
        kind = message["type"]
        if kind == "http.response.start":
            if self.stage != _START:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self._start(message)
            return self.sent
        if (
            kind == "http.response.body"
            and self.stage == _STARTED
            and not message.get("more_body", False)
            and self.trailers != _SEND_TRAILERS
        ):
            exchange = self.exchange
            body = message.get("body", b"")
            if self.length is None or self.length == len(body):
                # The whole body in one message: one write.
                response = self.response
                assert response is not None
                if isinstance(exchange, Exchange):
                    # HTTP/1: narrowed to its compiled class, these are direct calls
                    if not exchange.conn.closed:
                        response.body = body
                        self.stage = _DONE
                        exchange.respond(response)
                        exchange.release()
                        return self.sent
                elif not exchange.client_gone:
                    response.body = body
                    self.stage = _DONE
                    exchange.respond(response)
                    exchange.release()
                    return self.sent
        return self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
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
                length = self.length
                if self.trailers == _SEND_TRAILERS and exchange.request.version != "2":
                    length = None  # HTTP/1.1 has trailers in chunked bodies only
                exchange.begin_stream(response, length)
                self.stage = _STREAMING
            elif self.stage == _TRAILERS:
                raise RuntimeError("ASGI: http.response.body after the last body message")
            if body:
                await exchange.write(body)
            if not more:
                if self.trailers == _SEND_TRAILERS:
                    self.stage = _TRAILERS  # ended by the http.response.trailers message
                    return
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
            if self.trailers == _SEND_TRAILERS:
                self.trailers = _DROP_TRAILERS  # the file path ends the response itself
            await exchange.send_file(response)
            exchange.release()
        elif kind == "http.response.trailers":
            self._trailers(message)
        else:
            raise RuntimeError(f"ASGI: unexpected message type {kind!r} on an HTTP connection")

    def _start(self, message: dict[str, Any]) -> None:
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            # informational answers are the server's (100 Continue) or an upgrade's business
            raise RuntimeError(f"ASGI: invalid status {status!r} in http.response.start")
        request = self.request
        # ValueError for CR, LF or NUL in a field, TypeError for a field that is not bytes: a 500
        self.response, self.length = _HEADS.framed(request, status, message.get("headers", ()))
        if message.get("trailers"):
            self.trailers = _SEND_TRAILERS if accepts_trailers(request) else _DROP_TRAILERS
        self.stage = _STARTED

    def _trailers(self, message: dict[str, Any]) -> None:
        trailers = self.trailers
        if trailers == _NO_TRAILERS:
            raise RuntimeError(
                "ASGI: http.response.trailers without trailers=True in http.response.start"
            )
        stage = self.stage
        if trailers == _DROP_TRAILERS and stage == _DONE:
            return  # the client did not ask for trailers: the response ended with its body
        if stage != _TRAILERS:
            if stage == _DONE and self.exchange.client_gone:
                raise ClientDisconnected("the client has gone")
            raise RuntimeError(
                "ASGI: http.response.trailers before the last body message or after the end"
            )
        exchange = self.exchange
        if exchange.client_gone:
            raise ClientDisconnected("the client has gone")
        # ValueError/TypeError for a field that could split the response: the head is out, so
        # the connection is cut (never a trailer section that looks complete but is not)
        fields = trailer_fields(message.get("headers", ()))
        if self.fields is not None:
            fields = self.fields + fields
        if message.get("more_trailers", False):
            self.fields = fields
            return
        self.stage = _DONE
        exchange.end(fields)
        exchange.release()
