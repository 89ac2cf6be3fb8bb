"""One request run by the application in a pool thread (``--threads N``, the default).

The loop dispatches a :class:`ThreadedCall` to the pool; the thread builds the environ, calls
the application and consumes its iterable; what the connection must do is posted back to the
loop through the handler's inbox (one batched wake-up, see ``pool.py``):

- ``_start_output``: the first body chunk was pushed, or the application returned. The loop
  then sends the body whole if the application has finished meanwhile, or starts streaming it
  (``output.pump``);
- ``_send_file``: the application returned a ``wsgi.file_wrapper`` over a regular file;
- ``_fail``: the application raised before any output (500), or its request body broke off.

Each path ends with exactly one ``conn.exchange_done(exchange)``, on the loop. The iterable's
``close()`` is always called (by the thread, or by the loop after a file was sent).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from ..aio.exchange import Exchange
from ..http.response import Response
from ..http.status import has_no_body
from .failure import response_failed
from .files import FileWrapper
from .input import BodyIncomplete
from .output import ClientGone, OutputChannel, pump
from .start import StartResponse, body_bytes

if TYPE_CHECKING:
    from ..aio.exchange import AnyExchange
    from ..http.request import Request
    from .handler import WsgiHandler

log = logging.getLogger("peregrine.error")


class ThreadedCall(StartResponse):
    """One request's trip through an application thread (see the module docstring); it is
    also the request's ``start_response``, and its :meth:`write` the PEP's ``write()``."""

    __slots__ = (
        "handler",
        "exchange",
        "input",
        "sockname",
        "channel",
        "result",
        "error",
        "body",
    )

    def __init__(
        self,
        handler: WsgiHandler,
        exchange: AnyExchange,
        request: Request,
        wsgi_input: Any,
        sockname: Any,
    ) -> None:
        super().__init__(request)
        self.handler = handler
        self.exchange = exchange
        self.input = wsgi_input
        #: the address the connection arrived on, for a request without Host (HTTP/1.0)
        self.sockname = sockname
        #: made at the first output: the body on its way to the loop
        self.channel: OutputChannel | None = None
        #: the application's iterable (kept for a file the loop sends, then closes)
        self.result: Any = None
        #: what the application raised
        self.error: BaseException | None = None
        #: the whole body, when the application returned a list or tuple
        self.body = b""

    # --- in the application thread ------------------------------------------------------------

    def run(self) -> None:
        """Call the application and hand its response to the loop."""
        handler = self.handler
        result = None
        try:
            environ = handler.environ.build(self.request, self.input, self.sockname)
            result = handler.app(environ, self)
            kind = type(result)
            if kind is _FILE_WRAPPER and self.channel is None and self.response is not None:
                sendable = result.sendable(self.length)
                if sendable is not None:
                    self.result = result  # closed by the loop once the file is sent
                    self.head_sent = True
                    handler.inbox.post(_send_file, (self, sendable))
                    return
            if (kind is list or kind is tuple) and self.channel is None:
                # The whole body is here already: one hand-off, with a Content-Length, and no
                # channel (its lock and condition cost more than the rest of the hand-off).
                if self.response is None:
                    raise RuntimeError("the application returned before calling start_response()")
                body = result[0] if len(result) == 1 else b"".join(map(body_bytes, result))
                self.body = body_bytes(body)
                self.head_sent = True
            else:
                for chunk in result:
                    if chunk:
                        self.write(chunk)
        except ClientGone:
            pass  # the loop stopped taking the body: it has ended the exchange
        except BaseException as exc:  # noqa: B036 - reported on the loop (500 or a cut)
            self.error = exc
        finally:
            if result is not None and self.result is None:
                self._close(result)
        channel = self.channel
        if channel is None and self.error is None and self.response is None:
            self.error = RuntimeError("the application returned without calling start_response()")
        if channel is None:
            handler.inbox.post(_FAIL if self.error is not None else _START_OUTPUT, self)
        else:
            channel.end(failed=self.error is not None)

    def write(self, chunk: bytes) -> None:
        """Send ``chunk`` (also the PEP's ``write()`` callable): the first one sends the head."""
        if self.response is None:
            raise RuntimeError("the application sent body data before calling start_response()")
        if type(chunk) is not bytes:
            chunk = body_bytes(chunk)
        channel = self.channel
        if channel is None:
            self.head_sent = True
            channel = self.channel = OutputChannel(self.handler.inbox.post)
            channel.push(chunk)
            self.handler.inbox.post(_start_output, self)
        else:
            channel.push(chunk)

    def _close(self, result: Any) -> None:
        if type(result) is list or type(result) is tuple:
            return  # no close(); getattr would raise and catch an AttributeError to say so
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:  # noqa: B036 - the request's first error wins
                if self.error is None:
                    self.error = exc


# --- on the loop --------------------------------------------------------------------------------


def _start_output(call: ThreadedCall) -> None:
    """Send the head and what there is of the body: whole if the application is done."""
    exchange = call.exchange
    response = call.response
    assert response is not None
    channel = call.channel
    if channel is None:  # the application finished: its whole body, if any, is in call.body
        if type(exchange) is Exchange:
            _respond_http1(exchange, response, call.length, call.body)
            return
        chunks: list[bytes] = [call.body] if call.body else []
        ended = True
        failed = False
    else:
        chunks, ended = channel.take()
        failed = channel.failed
    if ended and failed:
        channel.close()  # type: ignore[union-attr]
        _fail(call)  # nothing is on the wire yet: a 500 is still possible
        return
    if ended:
        if channel is not None:
            channel.close()
        try:
            respond_whole(exchange, response, call.length, chunks)
        except Exception as exc:  # the body disagrees with its declared Content-Length
            response_failed(exchange, exc, call.length)
        exchange.conn.exchange_done(exchange)
        return
    assert channel is not None
    exchange.conn._run(_stream(call, channel, chunks))


def _respond_http1(exchange: Exchange, response: Response, length: int | None, body: bytes) -> None:
    # _start_output's whole body, on the usual HTTP/1 exchange: typed as its class, so that
    # compiled, the calls on it are direct; and no list made for the one body
    whole = length is None or length == len(body)
    if whole:
        response.body = body
        try:
            exchange.respond(response)
        except Exception as exc:
            response_failed(exchange, exc, length)
    else:
        try:
            respond_whole(exchange, response, length, [body] if body else [])
        except Exception as exc:  # the body disagrees with its declared Content-Length
            response_failed(exchange, exc, length)
    exchange.conn.exchange_done(exchange, answered_now=whole)  # sent by respond() just now


def respond_whole(
    exchange: AnyExchange, response: Response, length: int | None, chunks: list[bytes]
) -> None:
    """Send a response whose whole body is ``chunks``.

    Raises ValueError (nothing sent) when the body disagrees with the application's
    Content-Length, except for HEAD and bodiless statuses, where an empty body is expected.
    """
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if length is None or length == len(body):
        response.body = body
        exchange.respond(response)
    elif not body and (exchange.request.method == "HEAD" or has_no_body(response.status)):
        exchange.begin_stream(response, length)  # the head says the length of the GET body
        exchange.end()
    else:
        raise ValueError(
            f"the application declared Content-Length {length} and sent {len(body)} bytes"
        )


async def _stream(call: ThreadedCall, channel: OutputChannel, first: list[bytes]) -> None:
    exchange = call.exchange
    assert call.response is not None
    try:
        exchange.begin_stream(call.response, call.length)
        await pump(exchange, channel, first)
        if channel.failed:
            _report(call)
    except Exception as exc:
        response_failed(exchange, exc, call.length)
    finally:
        channel.close()
        exchange.conn.exchange_done(exchange)


async def _send_file_task(call: ThreadedCall, file: Any, offset: int, count: int) -> None:
    exchange = call.exchange
    response = call.response
    assert response is not None
    try:
        response.send_file(file, offset, count)
        await exchange.send_file(response)
    except Exception as exc:
        response_failed(exchange, exc, call.length)
    finally:
        call._close(call.result)
        if call.error is not None:
            _report(call)
        exchange.conn.exchange_done(exchange)


def _send_file(item: tuple[ThreadedCall, tuple[Any, int, int]]) -> None:
    call, (file, offset, count) = item
    call.exchange.conn._run(_send_file_task(call, file, offset, count))


def _fail(call: ThreadedCall) -> None:
    """The application failed before its head went out: 500, unless the body broke off."""
    exchange = call.exchange
    error = call.error
    if error is None or not isinstance(error, BodyIncomplete):
        _report(call)
    # A broken-off body: the connection answers it itself (408, 400) or the client is gone.
    exchange.conn.exchange_done(exchange)


# what ThreadedCall.run refers to on every request, as Final names: compiled, C statics read
# directly, where a module-level name is a lookup in the module's dict
_FILE_WRAPPER: Final = FileWrapper
_START_OUTPUT: Final = _start_output
_FAIL: Final = _fail


def _report(call: ThreadedCall) -> None:
    """Answer the application's error as ``failure.response_failed`` says (500, or a cut once
    the head is out), raised here again so that the log has its traceback."""
    try:
        if call.error is not None:
            raise call.error
        raise RuntimeError("the application's response was invalid")
    except BaseException as exc:
        response_failed(call.exchange, exc, call.length)
