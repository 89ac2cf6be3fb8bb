"""Building ASGI connection scopes from a parsed request (no I/O)."""

from __future__ import annotations

from typing import Any

from ..http.request import Request

#: the ``asgi`` key of every scope: ASGI 3, the HTTP/WebSocket spec version we follow
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}

# The names browsers and proxies send most, lower-cased once: most fields cost a dict lookup.
_LOWER: dict[bytes, bytes] = {}
for _name in (
    "Host",
    "User-Agent",
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "Connection",
    "Content-Type",
    "Content-Length",
    "Cookie",
    "Referer",
    "Origin",
    "Upgrade",
    "Cache-Control",
    "Authorization",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Request-Id",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
):
    for _spelling in (_name, _name.lower(), _name.upper()):
        _LOWER[_spelling.encode()] = _name.lower().encode()


def lowered_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's header fields with lower-cased names, in order, repeats kept."""
    lower = _LOWER.get
    return [(lower(name) or name.lower(), value) for name, value in request.raw_headers]


def http_scope(
    request: Request,
    root_path: str,
    server: tuple[str, int] | None,
    state: dict[str, Any] | None,
    extensions: dict[str, Any],
    scope_type: str = "http",
) -> dict[str, Any]:
    """The scope of an HTTP request (``scope_type`` "websocket" for a WebSocket handshake).

    ``root_path`` follows uvicorn's meaning: a proxy already removed it from the path, so
    ``path`` and ``raw_path`` get it back in front.
    """
    path = request.path
    raw_path = request.raw_path
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("utf-8") + raw_path
    scope: dict[str, Any] = {
        "type": scope_type,
        "asgi": ASGI_VERSION,
        "http_version": request.version,
        "scheme": request.scheme if scope_type == "http" else _WS_SCHEMES[request.scheme],
        "path": path,
        "raw_path": raw_path,
        "query_string": request.query_bytes,
        "root_path": root_path,
        "headers": lowered_headers(request),
        "client": request.client,
        "server": server,
        "extensions": extensions,
    }
    if scope_type == "http":
        scope["method"] = request.method
    if state is not None:
        scope["state"] = state.copy()  # shallow, per request (ASGI lifespan state)
    return scope


_WS_SCHEMES = {"http": "ws", "https": "wss"}
