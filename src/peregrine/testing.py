"""Test an application without a network: ``peregrine.testing.Client(app)``.

The client drives requests through Peregrine's real code, the parser, the connection protocol
(:class:`~peregrine.aio.connection.HttpConnection`) with its limits, timeouts and error answers,
and the WebSocket protocol after an upgrade, over an in-memory transport instead of a socket::

    from peregrine.testing import Client

    with Client(Handler) as client:
        response = client.get("/items", params={"page": "2"})
        assert response.status == 200
        assert response.json() == {"page": 2}

        with client.websocket("/ws") as ws:
            ws.send("hello")
            assert ws.receive() == "hello"

Entering the client makes the handler (as a worker does), and for an ASGI application runs its
lifespan startup; leaving it runs the lifespan shutdown and calls a native handler's ``close()``.
``app`` is anything :class:`peregrine.Server` serves: a native handler, an ASGI 3 or a WSGI
application. Server options are keyword arguments (``Client(app, max_body_size=100)``).

Each request opens a fresh in-memory connection, sends the request as bytes, and runs the
client's own event loop until the response is complete. The client is synchronous: call it from
plain test functions, not from inside a running event loop.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import os
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

from .aio.connection import HttpConnection
from .aio.state import ServerState
from .app import app_factory
from .config import Config
from .http.headers import Headers
from .ws.frames import FrameParser, Opcode, parse_close_payload, serialize_frame

__all__ = ["Client", "TestResponse", "WebSocketSession", "WebSocketClosed", "WebSocketRejected"]

#: the peer address the application sees in ``req.client``
CLIENT_ADDRESS = ("127.0.0.1", 50000)
_DEFAULT_TIMEOUT = 10.0

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | None


class TestResponse:
    """A response as the client received it: ``status``, ``headers``, ``content``, ``text``."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, status: int, reason: str, headers: Headers, content: bytes) -> None:
        #: the status code
        self.status = status
        #: the reason phrase of the status line
        self.reason = reason
        #: the header fields (case-insensitive ``get``/``getall``, ``[]``)
        self.headers = headers
        #: the body, de-chunked
        self.content = content

    @property
    def text(self) -> str:
        """The body decoded with the charset of Content-Type (UTF-8 when none is given)."""
        charset = "utf-8"
        for part in (self.headers.get("content-type") or "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        return self.content.decode(charset, "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status} {self.reason}>"


class WebSocketRejected(Exception):
    """The server answered the WebSocket handshake with something other than 101."""

    def __init__(self, response: TestResponse) -> None:
        super().__init__(f"the handshake was answered {response.status} {response.reason}")
        #: the answer the server gave instead
        self.response = response


class WebSocketClosed(Exception):
    """The server closed the WebSocket: ``code`` and ``reason`` of its close frame."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"the server closed the WebSocket with {code} {reason!r}")
        self.code = code
        self.reason = reason


class _MemoryTransport(asyncio.Transport):
    """The server side's transport: writes go to the client's buffer, the client feeds reads.

    It honours what the connection code relies on: pausing reading (data fed meanwhile is held
    back, then given to whichever protocol is current when reading resumes: the WebSocket
    protocol after an upgrade), closing (``connection_lost`` comes on the next loop turn, as on a
    socket), and the extra info ``peername``/``sockname``/``sslcontext``/``socket``.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, peer: _Peer
    ) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._peer = peer
        self._closing = False
        self._lost = False
        self._reading = True
        self._held: list[bytes] = []
        self._extra = {
            "peername": CLIENT_ADDRESS,
            "sockname": ("127.0.0.1", 80),
            "sslcontext": None,
            "socket": None,  # no real socket: the connection copies files through write()
        }

    # what the server side calls

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._peer.received(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._peer.ended()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._peer.ended()
        self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        if self._held:
            self._loop.call_soon(self._deliver_held)

    def is_reading(self) -> bool:
        return self._reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # the client takes every write at once: the buffer is always empty

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # what the client calls

    def feed(self, data: bytes) -> None:
        """Bytes from the client, given to the protocol now (or when reading resumes)."""
        if self._lost or not data:
            return
        if not self._reading or self._held:
            self._held.append(data)
            return
        self._protocol.data_received(data)

    def hang_up(self) -> None:
        """The client closes its end: the server sees the connection lost."""
        self._closing = True
        self._connection_lost()

    def _deliver_held(self) -> None:
        while self._held and self._reading and not self._lost:
            self._protocol.data_received(self._held.pop(0))

    def _connection_lost(self) -> None:
        if not self._lost:
            self._lost = True
            self._protocol.connection_lost(None)


class _Peer:
    """The client's end of one in-memory connection: what the server wrote, and whether it ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.data = bytearray()
        self.ended_by_server = False
        self._waiter: asyncio.Future[None] | None = None

    def received(self, data: bytes) -> None:
        self.data += data
        self._wake()

    def ended(self) -> None:
        self.ended_by_server = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def until(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        """Run the loop until ``ready()`` gives something other than None; return it."""
        deadline = self.loop.time() + timeout
        while True:
            result = ready()
            if result is not None:
                return result
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout}s")
            self._waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, remaining)
            except asyncio.TimeoutError:
                pass


def _parse_response(data: bytearray, ended: bool, method: str) -> tuple[TestResponse, int] | None:
    """One complete response at the start of ``data`` and its length in bytes, or None yet."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(data[:end]).decode("latin-1").split("\r\n")
    _, status_text, *reason = head[0].split(" ", 2)
    status = int(status_text)
    raw = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        raw.append((name.strip().encode("latin-1"), value.strip().encode("latin-1")))
    headers = Headers(raw)
    start = end + 4
    if method == "HEAD" or status < 200 or status in (204, 304):
        body, used = b"", start
    elif "chunked" in (headers.get("transfer-encoding") or "").lower():
        chunked = _dechunk(data, start)
        if chunked is None:
            return None
        body, used = chunked
    elif headers.get("content-length") is not None:
        used = start + int(headers["content-length"])
        if len(data) < used:
            return None
        body = bytes(data[start:used])
    else:  # delimited by the end of the connection (HTTP/1.0 streaming)
        if not ended:
            return None
        body, used = bytes(data[start:]), len(data)
    return TestResponse(status, reason[0] if reason else "", headers, body), used


def _dechunk(data: bytearray, position: int) -> tuple[bytes, int] | None:
    body = bytearray()
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(data[position:line_end]).split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n", position)  # no trailers are sent: an empty line
            return (bytes(body), trailer_end + 2) if trailer_end >= 0 else None
        if len(data) < position + size + 2:
            return None
        body += data[position : position + size]
        position += size + 2


class Client:
    """Sends requests to ``app`` through Peregrine's own protocol code (see the module docstring).

    ``app`` is anything :class:`peregrine.Server` takes. ``headers`` are sent with every request;
    ``options`` are :class:`~peregrine.Config` fields (limits, timeouts, ``access_log``...).
    """

    __test__ = False

    def __init__(
        self,
        app: Any,
        *,
        headers: HeadersLike = None,
        timeout: float = _DEFAULT_TIMEOUT,
        **options: Any,
    ) -> None:
        self.app = app
        self.config = Config(**options)
        self.default_headers = _header_list(headers)
        self.timeout = timeout
        # The factory Server uses: native handlers, and the ASGI and WSGI adapters (whose
        # serve_exchange the connection calls) work here as they do in a worker.
        self._make_handler = app_factory(app, self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: ServerState | None = None

    # --- life -------------------------------------------------------------------------------

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Make the handler, as a worker does when it starts (entering ``with`` does this)."""
        if self._state is not None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        handler = self._make_handler()
        startup = getattr(handler, "startup", None)
        if startup is not None:
            # an ASGI application's lifespan startup, as a worker runs it before accepting
            # (its shutdown is the adapter's close(), run by close() below)
            try:
                loop.run_until_complete(startup())
            except BaseException:
                loop.close()
                self._loop = None
                raise
        self._state = ServerState(self.config, handler, loop)
        self._state.start_clock()

    def close(self) -> None:
        """Call the handler's ``close()`` and end the client's event loop (leaving ``with``)."""
        state, loop = self._state, self._loop
        if state is None or loop is None:
            return
        self._state = self._loop = None
        try:
            close = getattr(state.handler, "close", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    loop.run_until_complete(result)
            tasks = [t for t in state.tasks if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            state.stop_clock()
            loop.close()

    def _running(self) -> tuple[asyncio.AbstractEventLoop, ServerState]:
        if self._state is None:
            self.start()  # used without ``with``: started on first use, closed by close()
        assert self._loop is not None and self._state is not None
        return self._loop, self._state

    # --- HTTP -------------------------------------------------------------------------------

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        """``GET url``; see :meth:`request` for the keyword arguments."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: HeadersLike = None,
        content: bytes | str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        version: str = "1.1",
    ) -> TestResponse:
        """Send one request and return the complete response.

        ``params`` are added to the query string; the body is ``content`` (bytes or text),
        ``json`` (serialised, with ``Content-Type: application/json``) or ``data`` (a form,
        ``application/x-www-form-urlencoded``).
        """
        body, body_headers = _body(content, json, data)
        raw = self._request_bytes(method, url, params, headers, body, body_headers, version)
        loop, state = self._running()
        return loop.run_until_complete(self._exchange(state, raw, method))

    def send_raw(self, data: bytes) -> bytes:
        """Send ``data`` as it is on a fresh connection; return every byte the server sent.

        For protocol-level tests: malformed requests, pipelining. Returns once the server
        closes the connection or has been quiet for a moment.
        """
        loop, state = self._running()
        return loop.run_until_complete(self._raw_exchange(state, data))

    async def _exchange(self, state: ServerState, raw: bytes, method: str) -> TestResponse:
        peer, transport = self._connect(state)
        try:
            transport.feed(raw)
            response, _ = await peer.until(
                lambda: _parse_response(peer.data, peer.ended_by_server, method),
                self.timeout,
                f"complete response to {method}",
            )
            return response  # type: ignore[no-any-return]
        finally:
            transport.hang_up()
            await asyncio.sleep(0)

    async def _raw_exchange(self, state: ServerState, data: bytes) -> bytes:
        peer, transport = self._connect(state)
        try:
            transport.feed(data)
            quiet = 0
            while not peer.ended_by_server and quiet < 3:
                before = len(peer.data)
                await asyncio.sleep(0.01)
                quiet = quiet + 1 if len(peer.data) == before else 0
            return bytes(peer.data)
        finally:
            transport.hang_up()
            await asyncio.sleep(0)

    def _connect(self, state: ServerState) -> tuple[_Peer, _MemoryTransport]:
        peer = _Peer(state.loop)
        connection = HttpConnection(state)
        transport = _MemoryTransport(state.loop, connection, peer)
        connection.connection_made(transport)
        return peer, transport

    def _request_bytes(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
        headers: HeadersLike,
        body: bytes,
        body_headers: list[tuple[str, str]],
        version: str,
    ) -> bytes:
        parts = urlsplit(url)
        target = parts.path or "/"
        query = parts.query
        if params:
            items = params.items() if isinstance(params, Mapping) else params
            extra = urlencode([(k, str(v)) for k, v in items])
            query = f"{query}&{extra}" if query else extra
        if query:
            target += "?" + query
        fields = [("Host", parts.netloc or "testserver"), *self.default_headers]
        fields += _header_list(headers)
        given = {name.lower() for name, _ in fields}
        fields += [(n, v) for n, v in body_headers if n.lower() not in given]
        if body or method in ("POST", "PUT", "PATCH"):
            if "content-length" not in given and "transfer-encoding" not in given:
                fields.append(("Content-Length", str(len(body))))
        lines = [f"{method} {target} HTTP/{version}", *(f"{n}: {v}" for n, v in fields)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    # --- WebSocket --------------------------------------------------------------------------

    def websocket(
        self,
        url: str,
        *,
        subprotocols: Iterable[str] = (),
        headers: HeadersLike = None,
    ) -> WebSocketSession:
        """A WebSocket session with ``url``: use it as ``with client.websocket("/ws") as ws:``."""
        return WebSocketSession(self, url, list(subprotocols), _header_list(headers))


class WebSocketSession:
    """One WebSocket connection made by :meth:`Client.websocket`.

    ``send`` a str (text message) or bytes (binary message), ``receive`` the next message (str or
    bytes); a close from the server raises :class:`WebSocketClosed` from ``receive``. Leaving the
    ``with`` block closes with 1000 and waits for the server's answer.
    """

    def __init__(
        self, client: Client, url: str, subprotocols: list[str], headers: list[tuple[str, str]]
    ) -> None:
        self.client = client
        self.url = url
        self.subprotocols = subprotocols
        self.headers = headers
        #: the handshake's 101 response (its headers name the subprotocol chosen)
        self.response: TestResponse | None = None
        self.closed: WebSocketClosed | None = None
        self._peer: _Peer | None = None
        self._transport: _MemoryTransport | None = None
        self._frames = FrameParser(max_payload=1 << 62, require_mask=False)
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

    def __enter__(self) -> WebSocketSession:
        loop, state = self.client._running()
        loop.run_until_complete(self._open(state))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _open(self, state: ServerState) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
            *self.headers,
        ]
        if self.subprotocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        raw = self.client._request_bytes("GET", self.url, None, headers, b"", [], "1.1")
        peer, transport = self.client._connect(state)
        self._peer, self._transport = peer, transport
        transport.feed(raw)
        response, used = await peer.until(
            lambda: _parse_response(peer.data, peer.ended_by_server, "GET"),
            self.client.timeout,
            "answer to the WebSocket handshake",
        )
        del peer.data[:used]
        self.response = response
        if response.status != 101:
            transport.hang_up()
            raise WebSocketRejected(response)

    def send(self, message: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message."""
        if isinstance(message, str):
            self._send_frame(Opcode.TEXT, message.encode("utf-8"))
        else:
            self._send_frame(Opcode.BINARY, bytes(message))

    def send_json(self, value: Any) -> None:
        """Send ``value`` as JSON in a text message."""
        self.send(jsonlib.dumps(value))

    def receive(self) -> str | bytes:
        """The next message from the server (str for text, bytes for binary)."""
        loop, _ = self.client._running()
        return loop.run_until_complete(self._receive())

    def receive_json(self) -> Any:
        """The next message, parsed as JSON."""
        return jsonlib.loads(self.receive())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (``code``, ``reason``) and wait for the server's close frame."""
        transport = self._transport
        if transport is None or transport._lost:
            return
        loop, _ = self.client._running()
        try:
            if self.closed is None:
                from .ws.frames import serialize_close_payload

                self._send_frame(Opcode.CLOSE, serialize_close_payload(code, reason))
                try:
                    loop.run_until_complete(self._until_closed())
                except TimeoutError:
                    pass  # the server did not answer: hang up anyway
        finally:
            transport.hang_up()
            loop.run_until_complete(asyncio.sleep(0))

    async def _until_closed(self) -> None:
        while self.closed is None:
            try:
                await self._receive()
            except WebSocketClosed:
                return

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self._transport is None:
            raise RuntimeError("use the session in a with block: with client.websocket(...)")
        if self.closed is not None:
            raise self.closed
        loop, _ = self.client._running()
        self._transport.feed(serialize_frame(opcode, payload, mask=os.urandom(4)))
        loop.run_until_complete(asyncio.sleep(0))  # let the server take it in

    async def _receive(self) -> str | bytes:
        peer = self._peer
        assert peer is not None
        while True:
            if self.closed is not None:
                raise self.closed
            frame = await peer.until(self._next_frame, self.client.timeout, "WebSocket message")
            if frame.opcode == Opcode.PING:
                self._send_frame(Opcode.PONG, frame.payload)
                continue
            if frame.opcode == Opcode.PONG:
                continue
            if frame.opcode == Opcode.CLOSE:
                code, reason = parse_close_payload(frame.payload) if frame.payload else (1005, "")
                self.closed = WebSocketClosed(code, reason)
                if self._transport is not None and not self._transport._lost:
                    self._transport.feed(
                        serialize_frame(Opcode.CLOSE, frame.payload[:2], mask=os.urandom(4))
                    )
                raise self.closed
            if frame.opcode != Opcode.CONT:
                self._fragment_opcode = frame.opcode
            self._fragments.append(frame.payload)
            if not frame.fin:
                continue
            payload = b"".join(self._fragments)
            self._fragments.clear()
            if self._fragment_opcode == Opcode.TEXT:
                return payload.decode("utf-8")
            return payload

    def _next_frame(self) -> Any:
        peer = self._peer
        assert peer is not None
        if peer.data:
            self._frames.feed(bytes(peer.data))
            peer.data.clear()
        frame = self._frames.next_frame()
        if frame is None and peer.ended_by_server and self.closed is None:
            self.closed = WebSocketClosed(1006, "the connection ended without a close frame")
            raise self.closed
        return frame


def _header_list(headers: HeadersLike) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), str(value)) for name, value in items]


def _body(
    content: bytes | str | None, json: Any, data: Mapping[str, Any] | None
) -> tuple[bytes, list[tuple[str, str]]]:
    given = sum(x is not None for x in (content, json, data))
    if given > 1:
        raise TypeError("give one of content=, json= or data=")
    if json is not None:
        return jsonlib.dumps(json).encode("utf-8"), [("Content-Type", "application/json")]
    if data is not None:
        form = urlencode([(k, str(v)) for k, v in data.items()]).encode("ascii")
        return form, [("Content-Type", "application/x-www-form-urlencoded")]
    if isinstance(content, str):
        return content.encode("utf-8"), [("Content-Type", "text/plain; charset=utf-8")]
    return content or b"", []
