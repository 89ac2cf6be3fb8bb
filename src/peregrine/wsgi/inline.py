"""One request run by the application on the event loop thread (``--threads 0``).

As with gunicorn's sync workers, one request at a time per worker, but the engine first reads
the whole request (body included, up to ``max_body_size``), so a slow client never holds the
application; and the response iterable is consumed as the client takes the data: each chunk is
written, and the next is asked for only once the connection's send buffer has room. A slow
reader never blocks the loop, and the response is never held whole in memory.

Deviations from the thread pool, both documented in ``docs/wsgi.md``: ``write()`` data is
buffered until the application returns (the loop cannot wait inside the application), and the
first chunk of an iterable without a declared length is held until the second is produced (the
loop is blocked by the application meanwhile anyway), so that a one-chunk body gets a
Content-Length.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from .failure import response_failed
from .files import FileWrapper
from .input import BodyIncomplete, read_whole, whole_input
from .start import StartResponse, body_bytes
from .threaded import respond_whole

if TYPE_CHECKING:
    from ..aio.exchange import AnyExchange, Exchange
    from ..http.request import Request
    from .handler import WsgiHandler


def sockname_if_needed(exchange: AnyExchange, request: Request) -> Any:
    """The connection's local address when ``request`` (``exchange``'s) may lack a Host header
    (HTTP/1.0; the parser refuses HTTP/1.1 requests without one), read on the loop; else None."""
    if request.version != "1.0":
        return None
    transport = exchange.conn.transport
    return transport.get_extra_info("sockname") if transport is not None else None


log = logging.getLogger("peregrine.error")


def serve_inline(handler: WsgiHandler, exchange: AnyExchange) -> None:
    """Run the application on ``exchange`` once its body is whole (on the loop)."""
    body = exchange.body
    if body is None or body.complete:
        run_inline(handler, exchange, whole_input(body.take() if body is not None else b""))
    else:
        exchange.conn._run(_read_then_run(handler, exchange))


def serve_inline_http1(handler: WsgiHandler, exchange: Exchange) -> None:
    """:func:`serve_inline` for an HTTP/1 exchange, the most common by far.

    The same steps, but ``exchange`` is typed as the class it is: compiled, each attribute read
    and method call on it is a direct C access, not a generic lookup (an HTTP/2 exchange is
    another class, so the general path takes it as ``Any``).
    """
    body = exchange.body
    if body is None or body.complete:
        wsgi_input = whole_input(body.take() if body is not None else b"")
        start = call_app(handler, exchange, exchange.request, wsgi_input)
        if start is not None:
            response = start.response
            assert response is not None
            try:
                exchange.respond(response)
            except Exception as exc:
                response_failed(exchange, exc, start.length)
            exchange.conn.exchange_done(exchange, answered_now=True)
    else:
        exchange.conn._run(_read_then_run(handler, exchange))


async def _read_then_run(handler: WsgiHandler, exchange: AnyExchange) -> None:
    assert exchange.body is not None
    try:
        data = await read_whole(exchange.body)
    except BodyIncomplete:
        # the connection answers a broken-off body itself (408, 400), or the client is gone
        exchange.conn.exchange_done(exchange)
        return
    run_inline(handler, exchange, whole_input(data))


class InlineStart(StartResponse):
    """``start_response`` of a request run on the loop: ``write()`` data is kept in
    ``written`` until the application returns (see the module docstring)."""

    __slots__ = ("written",)

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        #: made at the first write(): most applications never call it, and a list per
        #: request they would not use is an allocation and a free for nothing
        self.written: list[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        """Keep ``chunk`` for the response (the PEP's ``write()``)."""
        if self.response is None:
            raise RuntimeError("write() called before start_response()")
        self.head_sent = True
        if self.written is None:
            self.written = []
        self.written.append(body_bytes(chunk))


def run_inline(handler: WsgiHandler, exchange: AnyExchange, wsgi_input: Any) -> None:
    """Call the application and send its response; the iterable is finished in a task when the
    body is streamed."""
    start = call_app(handler, exchange, exchange.request, wsgi_input)
    if start is not None:
        response = start.response
        assert response is not None
        try:
            exchange.respond(response)
        except Exception as exc:
            response_failed(exchange, exc, start.length)
        exchange.conn.exchange_done(exchange)


def call_app(
    handler: WsgiHandler, exchange: AnyExchange, request: Request, wsgi_input: Any
) -> InlineStart | None:
    """Call the application on ``exchange`` (whose request is ``request``).

    Returns the request's ``start_response`` when the response is one bytes body held whole,
    set on ``start.response`` (the most common response of all): the caller sends it and ends
    the exchange. Otherwise returns None, once this function has seen to the rest itself (sent
    the response, started the task streaming it, or answered the failure) and ended the
    exchange or left that to the task.
    """
    start = InlineStart(request)
    result: Any = None
    # All of the application's code for this request (the call, each next(), close()) runs in
    # one context of its own: frameworks set context variables in one step and reset them in a
    # later one (Flask's stream_with_context), which must see the same context. The handler
    # keeps one for the next request: reused while empty, as an empty context cannot be told
    # from a new one (no API hands out the running context itself); a request that leaves a
    # variable set, or whose context lives on in a task, leaves the next a new one.
    context = handler.context
    if len(context):
        context = handler.context = _Context()
    try:
        environ = handler.environ.build(request, wsgi_input, sockname_if_needed(exchange, request))
        result = _CONTEXT_RUN(context, handler.app, environ, start)
        response = start.response
        if response is None:
            raise RuntimeError("the application returned without calling start_response()")
        kind = type(result)
        written = start.written
        body = result[0] if kind is list and len(result) == 1 and written is None else None
        if type(body) is bytes and (start.length is None or start.length == len(body)):
            # the most common body of all, sent as it is: one bytes object in a list
            response.body = body
            return start  # (a list has no close())
        else:
            if kind is FileWrapper and written is None:
                sendable = result.sendable(start.length)
                if sendable is not None:
                    start.head_sent = True
                    handler.context = _Context()  # this one is the task's now
                    exchange.conn._run(_send_file(exchange, start, result, sendable, context))
                    return None
            if written is None:  # (kept on start: a write() while the iterable runs adds here)
                written = start.written = []
            chunks = written
            if kind is list or kind is tuple:
                if len(result) == 1 and type(result[0]) is bytes:
                    if result[0]:
                        chunks.append(result[0])  # one bytes object: no comprehension to run
                else:
                    chunks += [body_bytes(chunk) for chunk in result if chunk]
                result = None  # a list or tuple has no close()
            else:
                iterator = context.run(iter, result)
                # up to two chunks: a body of one chunk is sent whole, with a Content-Length
                produced = 0
                while (chunk := context.run(next, iterator, _END)) is not _END:
                    if chunk:
                        chunks.append(body_bytes(chunk))
                        produced += 1
                        if produced == 2:
                            start.head_sent = True
                            handler.context = _Context()  # this one is the task's now
                            exchange.conn._run(
                                _stream(exchange, start, result, iterator, chunks, context)
                            )
                            result = None  # the task closes it
                            return None
            if result is not None:
                finished, result = result, None
                _close(finished, context)
            respond_whole(exchange, response, start.length, chunks)
    except Exception as exc:
        if result is not None:
            _close(result, context, request)
        response_failed(exchange, exc, start.length)
    exchange.conn.exchange_done(exchange)
    return None


async def _stream(
    exchange: AnyExchange,
    start: StartResponse,
    result: Any,
    iterator: Iterator[Any],
    chunks: list[bytes],
    context: contextvars.Context,
) -> None:
    """Send the head, the chunks so far, then the rest of the iterable as the client reads."""
    assert start.response is not None
    try:
        exchange.begin_stream(start.response, start.length)
        for ready in chunks:
            await exchange.write(ready)
        chunks.clear()
        # next() runs on the loop: this is the --threads 0 contract
        while (chunk := context.run(next, iterator, _END)) is not _END:
            if chunk:
                await exchange.write(body_bytes(chunk))
        exchange.end()
    except Exception as exc:
        response_failed(exchange, exc, start.length)  # the head is out: a cut
    finally:
        _close(result, context, exchange.request)
        exchange.conn.exchange_done(exchange)


async def _send_file(
    exchange: AnyExchange,
    start: StartResponse,
    result: Any,
    sendable: tuple[Any, int, int],
    context: contextvars.Context,
) -> None:
    assert start.response is not None
    response = start.response
    try:
        response.send_file(*sendable)
        await exchange.send_file(response)
    except Exception as exc:
        response_failed(exchange, exc, start.length)
    finally:
        _close(result, context, exchange.request)
        exchange.conn.exchange_done(exchange)


_END: Final = object()  # what next() returns at the end of the iterable
_Context: Final = contextvars.Context  # (Final: compiled, a C static, not a module lookup)
#: ``Context.run`` from the class: compiled, called directly, not looked up on each context
_CONTEXT_RUN: Final = contextvars.Context.run


def _close(result: Any, context: contextvars.Context, request: Any = None) -> None:
    """Call the iterable's ``close()``; an error there is logged (the response may be out)."""
    close = getattr(result, "close", None)
    if close is None:
        return
    if request is None:
        context.run(close)  # raising here lands in the caller's handler, before any output
        return
    try:
        context.run(close)
    except Exception:
        log.exception("close() of the response iterable failed on %s", request)
