"""WebSocket support (RFC 6455, permessage-deflate RFC 7692).

The modules of this package do no I/O (bytes in, events and bytes out); the asyncio side
lives in `peregrine.aio.websocket`. Applications use `upgrade()` from a request handler:

    def handle_request(self, req, resp):
        if req.path == "/ws":
            peregrine.ws.upgrade(req, resp)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..http.request import Request
from ..http.response import Response
from .deflate import DeflateParams
from .handshake import HandshakeError, check_request

if TYPE_CHECKING:
    import asyncio

__all__ = ["upgrade", "Handoff"]


class OpensWebSockets(Protocol):
    """What a :class:`Handoff` needs from the server side (``peregrine.aio.state.ServerState``)."""

    def open_websocket(
        self, request: Request, subprotocol: str | None, deflate: DeflateParams | None
    ) -> asyncio.Protocol: ...


@dataclass(frozen=True, slots=True)
class Handoff:
    """An accepted handshake on its way to the asyncio side.

    It is the ``factory(transport, state)`` that ``Response.upgrade`` takes: the connection calls
    it with its transport and the worker's state, and the state makes the WebSocket protocol. So
    this package hands the connection over without naming anything of asyncio.
    """

    request: Request
    subprotocol: str | None
    deflate: DeflateParams | None

    def __call__(self, transport: object, state: OpensWebSockets) -> asyncio.Protocol:
        return state.open_websocket(self.request, self.subprotocol, self.deflate)


def upgrade(
    req: Request,
    resp: Response,
    subprotocols: Sequence[str] | None = None,
    compression: bool = True,
) -> bool:
    """Answer a WebSocket handshake request; True if the connection becomes a WebSocket.

    On success the response becomes `101 Switching Protocols` (with the negotiated
    subprotocol, the first of `subprotocols` the client offered, and permessage-deflate
    when `compression` and `Config.ws_compression` allow it), and once the handler returns
    the connection speaks WebSocket, calling the handler's `handle_ws_*` hooks. On failure
    the response is a short 400, or 426 with `Sec-WebSocket-Version: 13` for an
    unsupported version, and the function returns False.
    """
    config = resp.config
    try:
        accepted = check_request(
            req.method,
            req.version,
            req.headers,
            subprotocols=subprotocols,
            compression=compression and config.ws_compression,
            window_bits=config.ws_compression_window_bits,
        )
    except HandshakeError as exc:
        resp.status = exc.status
        for name, value in exc.headers:
            resp.set_header(name, value)
        resp.set_header("Content-Type", "text/plain; charset=utf-8")
        resp.set_body(exc.message + "\n")
        return False
    resp.status = 101
    for name, value in accepted.headers():
        resp.set_header(name, value)
    resp.upgrade(Handoff(req, accepted.subprotocol, accepted.deflate))
    return True
