"""One ASGI WebSocket session over the engine's WebSocket connection.

The handshake request arrives as an exchange like any other request. The application first
receives ``websocket.connect``; ``websocket.accept`` sends the 101 answer and hands the socket to
:class:`~peregrine.aio.websocket.WebSocketConnection` (frames, permessage-deflate, ping/pong,
limits and close handshake all the native API's), whose hooks this object provides: messages
and the disconnect are queued for ``receive()``. ``websocket.close`` before accepting answers
403; ``websocket.http.response.*`` (the denial-response extension) sends an ordinary HTTP answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from typing import Any

from ..aio.exchange import Exchange
from ..aio.websocket import WebSocket, make_factory
from ..http.response import Response
from ..ws.handshake import Accepted
from .http import ClientDisconnected, HttpCycle

log = logging.getLogger("peregrine.error")

# where a session is
_CONNECTING, _HANDSHAKE, _OPEN, _CLOSED = 0, 1, 2, 3

#: messages queued for the application above which the connection stops reading frames
_QUEUE_HIGH = 16


class WebSocketCycle:
    """Runs the application for one WebSocket connection (see the module docstring)."""

    __slots__ = ("exchange", "accepted", "stage", "ws", "queue", "waiter", "room", "denial")

    def __init__(self, exchange: Exchange, accepted: Accepted) -> None:
        self.exchange = exchange
        self.accepted = accepted
        self.stage = _CONNECTING
        self.ws: WebSocket | None = None
        self.queue: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        #: resolved when the application has taken enough queued messages (backpressure)
        self.room: asyncio.Future[None] | None = None
        self.denial: HttpCycle | None = None

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        """Call the application and close whatever it leaves open; never raises."""
        exchange = self.exchange
        conn = exchange.conn
        try:
            await app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception:
            if self.stage <= _HANDSHAKE and not exchange.client_gone and not self._denied():
                conn._handler_failed(exchange.request, exchange.start)  # logs, answers 500
            else:
                log.exception("ASGI WebSocket application failed on %s", exchange.request.url)
                self._close(1011)
        else:
            if self.stage <= _HANDSHAKE and not exchange.client_gone and not self._denied():
                self._deny()  # returned without accepting
            else:
                self._close(1000)
        finally:
            if self.stage != _OPEN and self.ws is None:
                self.stage = _CLOSED
                conn.exchange_done(exchange)  # still HTTP: the connection goes on or closes

    def _denied(self) -> bool:
        return self.denial is not None and self.denial.stage != 0

    def _close(self, code: int) -> None:
        ws = self.ws
        if ws is not None and not ws.closed:
            ws.close(code)

    def _deny(self) -> None:
        response = Response(None, self.exchange.request)
        response.status = 403
        response.set_header("Content-Type", "text/plain; charset=utf-8")
        response.body = b"WebSocket connection refused\n"
        self.stage = _CLOSED
        self.exchange.respond(response)

    # --- receive ------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """``websocket.connect`` first, then messages, then ``websocket.disconnect``."""
        if self.stage == _CONNECTING:
            self.stage = _HANDSHAKE
            return {"type": "websocket.connect"}
        queue = self.queue
        while not queue:
            if self.stage == _CLOSED or (self.stage == _HANDSHAKE and self.exchange.client_gone):
                return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            if self.stage == _HANDSHAKE:
                await self.exchange.wait_client_gone()
                continue
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            await waiter
        message = queue.popleft()
        room = self.room
        if room is not None and len(queue) <= _QUEUE_HIGH // 4:
            self.room = None
            if not room.done():
                room.set_result(None)
        return message

    def _push(self, message: dict[str, Any]) -> asyncio.Future[None] | None:
        self.queue.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(self.queue) > _QUEUE_HIGH:
            # Held back: the connection calls no further hook (and soon reads no further frame)
            # until the application has caught up.
            if self.room is None:
                self.room = asyncio.get_running_loop().create_future()
            return self.room
        return None

    # --- hooks of the WebSocket connection ------------------------------------------------------

    def handle_ws_conn(self, ws: WebSocket) -> None:
        self.ws = ws

    def handle_ws_message(self, ws: WebSocket, data: str | bytes) -> asyncio.Future[None] | None:
        if data.__class__ is str:
            return self._push({"type": "websocket.receive", "text": data})
        return self._push({"type": "websocket.receive", "bytes": data})

    def handle_ws_disconn(self, ws: WebSocket, code: int) -> None:
        self.stage = _CLOSED
        reason = ws._conn.protocol.close_reason
        self._push({"type": "websocket.disconnect", "code": code, "reason": reason})

    # --- send ---------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Act on one ``websocket.*`` message."""
        kind = message["type"]
        if kind == "websocket.send":
            ws = self.ws
            if ws is None or self.stage != _OPEN:
                if self.stage == _CLOSED or self.exchange.client_gone:
                    raise ClientDisconnected("the WebSocket connection is closed")
                raise RuntimeError("ASGI: websocket.send before websocket.accept")
            text = message.get("text")
            if text is not None:
                ws.send(text)
            else:
                data = message.get("bytes")
                if data is None:
                    raise RuntimeError("ASGI: websocket.send without text or bytes")
                ws.send(data)
            if ws._conn.write_paused:
                try:
                    await ws.drain()
                except ConnectionResetError:
                    raise ClientDisconnected("the WebSocket connection is closed") from None
        elif kind == "websocket.accept":
            if self.stage != _HANDSHAKE:
                raise RuntimeError("ASGI: websocket.accept out of turn")
            self._accept(message)
        elif kind == "websocket.close":
            if self.stage == _HANDSHAKE and not self._denied():
                if not self.exchange.client_gone:
                    self._deny()
                else:
                    self.stage = _CLOSED
            elif self.stage == _OPEN:
                assert self.ws is not None
                self.ws.close(message.get("code") or 1000, message.get("reason") or "")
            elif self.stage == _CLOSED and self.exchange.client_gone:
                raise ClientDisconnected("the WebSocket connection is closed")
        elif kind in ("websocket.http.response.start", "websocket.http.response.body"):
            if self.stage != _HANDSHAKE:
                raise RuntimeError(f"ASGI: {kind} after the handshake")
            if self.denial is None:
                sent = asyncio.get_running_loop().create_future()
                sent.set_result(None)
                self.denial = HttpCycle(self.exchange, self.exchange.request, sent)
            await self.denial.send({**message, "type": kind[10:]})  # "http.response.*"
        else:
            raise RuntimeError(f"ASGI: unexpected message type {kind!r} on a WebSocket")

    def _accept(self, message: dict[str, Any]) -> None:
        exchange = self.exchange
        if exchange.client_gone:
            raise ClientDisconnected("the client has gone")
        accepted = self.accepted
        subprotocol = message.get("subprotocol")
        if subprotocol != accepted.subprotocol:
            accepted = dataclasses.replace(accepted, subprotocol=subprotocol)
        response = Response(None, exchange.request)
        response.status = 101
        for name, value in accepted.headers():
            response.set_header(name, value)
        for name, value in message.get("headers", ()):
            response.add_header(name, value)  # ValueError for CR, LF or NUL
        response.upgrade(make_factory(exchange.request, subprotocol, accepted.deflate, self))
        self.stage = _OPEN
        exchange.respond(response)  # the connection hands the socket over, then calls our hooks
        if self.ws is None:  # the client left before the answer could go out
            self.stage = _CLOSED
            raise ClientDisconnected("the client has gone")
