"""One request and its response on an HTTP/1 connection.

An :class:`Exchange` is made for every response that is not sent straight from a synchronous
native handler: async handlers, streamed bodies, files, and every request of the ASGI and WSGI
interfaces. It holds what belongs to one response (whether its head is out, chunked or
length-delimited, how much of a declared length is left) and the body of its request while it
streams in, so that the connection keeps only what belongs to the connection. The adapters of
the application interfaces talk to the connection through this object only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .._build import mypyc_attr
from ..http.request import Request
from ..http.response import Response, serialize_head
from ..http.status import has_no_body
from .body import RequestBody
from .files import FileShrank, copy_file, send_now

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from .._build import COMPILING
    from .connection import HttpConnection

    # What the interface adapters (ASGI, WSGI) are handed: this Exchange, or an HTTP/2 stream
    # (h2connection.H2Exchange), which offers the same interface without sharing the class. The
    # type checker checks the adapters against Exchange; the compiled build must accept both, and
    # a compiled function checks that an argument typed Exchange is one, so there it is Any.
    if COMPILING:
        AnyExchange: TypeAlias = Any
    else:
        AnyExchange: TypeAlias = "Exchange"

log = logging.getLogger("peregrine.error")


@mypyc_attr(native_class=False)  # mypyc cannot make a native subclass of a built-in exception
class ContentLengthExceeded(ValueError):
    """A streamed body went past the Content-Length its head declared (nothing of the chunk
    was sent): the response cannot be completed honestly, the connection must be cut."""


def keep_alive(request: Request, response: Response, draining: bool) -> bool:
    """Whether the connection stays open after ``response``: the one place this is decided.

    The request must allow it (HTTP/1.1 without ``Connection: close``, or HTTP/1.0 asking for
    keep-alive), the response must not ask to close, and the server must not be shutting down.
    """
    return request.keep_alive and not response.close_connection and not draining


class Exchange:
    """One request/response exchange (see the module docstring)."""

    __slots__ = (
        "conn",
        "request",
        "response",
        "body",
        "start",
        "streaming",
        "chunked",
        "keep_alive",
        "left",
        "_gone",
    )

    def __init__(
        self,
        conn: HttpConnection,
        request: Request,
        response: Response | None = None,
        body: RequestBody | None = None,
        start: float = 0.0,
    ) -> None:
        self.conn = conn
        self.request = request
        self.response = response
        #: the request body as it arrives (interfaces that stream bodies), else None
        self.body = body
        #: when the request was dispatched (for the access log; 0 when it is off)
        self.start = start
        #: True once the head of a streamed body is out
        self.streaming = False
        self.chunked = False
        self.keep_alive = False
        #: bytes still owed of a length the application declared, or None
        self.left: int | None = None
        self._gone: asyncio.Future[None] | None = None

    # --- state --------------------------------------------------------------------------------

    @property
    def client_gone(self) -> bool:
        """True once nothing more can be sent to the client."""
        return self.conn.closed

    async def wait_client_gone(self) -> None:
        """Wait until the client disconnects (returns at once if it has)."""
        if self.conn.closed:
            return
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        await self._gone

    def client_left(self) -> None:
        """Called by the connection when the transport is gone."""
        if self.body is not None:
            self.body.fail()
        self.release()

    def release(self) -> None:
        """Wake whoever waits in :meth:`wait_client_gone`: the response is complete, or the
        client has gone (the ASGI spec ends a pending ``receive()`` either way)."""
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    # --- sending ------------------------------------------------------------------------------

    def respond(self, response: Response) -> None:
        """Send ``response`` whole: its body is ``response.body`` (bytes)."""
        self.response = response
        conn = self.conn
        conn.answered_at = 0.0  # then set by _handle only: the caller may lend it (exchange_done)
        conn._handle(self.request, response, self.start)

    def begin_stream(self, response: Response, length: int | None = None) -> None:
        """Send the head of a body that follows in pieces (:meth:`write`, then :meth:`end`).

        With ``length`` the head carries that Content-Length and exactly that many bytes must
        follow; without, the body is chunked on HTTP/1.1 and ends with the connection on 1.0.
        """
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("the client has gone")
        request = self.request
        self.response = response
        http10 = request.version == "1.0"
        no_body = has_no_body(response.status)
        if length is not None or no_body:
            self.chunked = False
            self.left = None if no_body else length
            self.keep_alive = keep_alive(request, response, conn.state.draining)
        else:
            # HTTP/1.0 has no chunked coding: the body ends when the connection does.
            self.chunked = not http10
            self.keep_alive = self.chunked and keep_alive(request, response, conn.state.draining)
        state = conn.state
        assert conn.transport is not None
        conn.transport.write(
            serialize_head(
                response,
                content_length=None if no_body else length,
                keep_alive=self.keep_alive,
                http10=http10,
                date_line=state.date_line,
                server_line=state.server_line,
                chunked=self.chunked,
                keep_alive_line=state.keep_alive_line,
            )
        )
        self.streaming = True

    async def write(self, chunk: bytes | bytearray | memoryview | str) -> None:
        """Send one piece of a streamed body; waits while the client is not reading."""
        conn = self.conn
        if conn.closed:
            raise ConnectionResetError("the client has gone")
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        elif chunk.__class__ is not bytes:
            chunk = bytes(chunk)  # also a must: uvloop queues what it cannot send uncopied
        response = self.response
        assert response is not None
        if not self.streaming:
            self.begin_stream(response)
        if chunk and self.request.method != "HEAD" and not has_no_body(response.status):
            response._bytes_streamed += len(chunk)  # for the access log
            transport = conn.transport
            assert transport is not None
            left = self.left
            if left is not None:
                if len(chunk) > left:
                    raise ContentLengthExceeded("more body than the declared Content-Length")
                self.left = left - len(chunk)
                transport.write(chunk)
            elif self.chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
        if conn.write_paused:
            await conn.drain()

    def end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Finish a streamed body (sending the head first if nothing was written).

        ``trailers`` (checked fields, see ``http.framing.trailer_fields``) go in the last chunk
        of a chunked body; a body framed otherwise (a Content-Length, HTTP/1.0, HEAD) has no
        place for them, and they are dropped.
        """
        conn = self.conn
        if conn.closed:
            return
        response = self.response
        assert response is not None
        if not self.streaming:
            self.begin_stream(response)
        if self.left and self.request.method != "HEAD":
            # Fewer bytes than the head promised: cutting the connection is the only honest end
            # (the client sees a short body, not a complete-looking one).
            log.warning(
                "response to %s %s ended %d bytes short of its Content-Length",
                self.request.method,
                self.request.url,
                self.left,
            )
            conn.abort()
            return
        if self.chunked and self.request.method != "HEAD":
            assert conn.transport is not None
            if trailers:
                lines = [b"%b: %b\r\n" % field for field in trailers]
                conn.transport.write(b"".join([b"0\r\n", *lines, b"\r\n"]))
            else:
                conn.transport.write(b"0\r\n\r\n")
        conn.response_sent(self.request, response, self.start)
        if not self.keep_alive:
            conn.close()

    def send_file_now(self, response: Response) -> bool:
        """Send the head and as much of ``response``'s file as the socket takes without waiting.

        True when the response is complete (or the client has gone) and the file is closed;
        False when some of the body is left for :meth:`send_file` to send, which then carries on
        where this stopped. A file that fits into the socket's send buffer (most of them: the
        kernel grows it to megabytes on a fast connection) is thus sent with no task, no
        coroutine and no wake-up: one write for the head, one ``sendfile`` for the body.
        """
        assert response.file is not None
        file, offset, count = response.file
        conn = self.conn
        self.response = response
        try:
            self.begin_stream(response, count)
        except ValueError:
            return False  # an invalid status: send_file meets it again and answers 500
        try:
            if self.request.method != "HEAD" and not has_no_body(response.status) and count:
                try:
                    sent = send_now(conn, file.fileno(), offset, count)
                except FileShrank:
                    self._file_shrank()
                    sent = count
                except ConnectionResetError:
                    sent = count  # aborted: nothing more to send
                if sent < count:
                    self.left = count - sent
                    return False
            self.left = 0
            self.end()
        except BaseException:
            file.close()
            raise
        file.close()
        return True

    async def send_file(self, response: Response) -> None:
        """Send ``response`` whose body is the file set by ``Response.send_file``.

        After :meth:`send_file_now` sent part of it, only the rest (``left`` bytes) is sent.
        """
        assert response.file is not None
        conn = self.conn
        file, offset, count = response.file
        request = self.request
        self.response = response
        try:
            if not self.streaming:
                self.begin_stream(response, count)
            elif self.left is not None:  # the head and count - left bytes are out already
                offset += count - self.left
                count = self.left
            if request.method != "HEAD" and not has_no_body(response.status) and count:
                try:
                    await copy_file(conn, file.fileno(), offset, count)
                except FileShrank:
                    self._file_shrank()
                    return
            self.left = 0
            self.end()
        finally:
            file.close()

    def _file_shrank(self) -> None:
        request = self.request
        log.warning("file shrank while being sent for %s %s", request.method, request.url)
        self.conn.abort()

    def abort(self) -> None:
        """Cut the connection (after an error once the head is out)."""
        self.conn.abort()

    def __repr__(self) -> str:
        return f"<Exchange {self.request.method} {self.request.url}>"


__all__ = ["Exchange", "RequestBody", "keep_alive"]
