"""WebSocket support (RFC 6455, permessage-deflate RFC 7692).

The modules of this package do no I/O (bytes in, events and bytes out); the asyncio side
lives in `peregrine.aio.websocket`. Applications use `upgrade()` from a request handler:

    def handle_request(self, req, resp):
        if req.path == "/ws":
            peregrine.ws.upgrade(req, resp)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .handshake import HandshakeError, check_request

__all__ = ["upgrade"]


def _config_of(resp: Any) -> Any:
    # The Response knows its connection, and the connection the server's Config; a
    # Response made outside a server (tests) falls back to the defaults.
    config = getattr(getattr(resp, "_conn", None), "config", None)
    if config is None:
        from ..config import Config

        config = Config()
    return config


def upgrade(
    req: Any,
    resp: Any,
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
    config = _config_of(resp)
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
    from ..aio.websocket import make_factory  # the asyncio side, kept out of this sans-IO package

    resp.status = 101
    for name, value in accepted.headers():
        resp.set_header(name, value)
    resp.upgrade(make_factory(req, accepted.subprotocol, accepted.deflate))
    return True
