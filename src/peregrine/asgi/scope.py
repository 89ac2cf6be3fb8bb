"""Building ASGI connection scopes from a parsed request (no I/O)."""

from __future__ import annotations

from typing import Any, Final

from ..http.headers import PAIRWISE_COMPARE, same_fields
from ..http.request import Request

#: the ``asgi`` key of every scope: ASGI 3, the HTTP/WebSocket spec version we follow
ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}
LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}

# The names browsers and proxies send most, lower-cased once: most fields cost a dict lookup.
_LOWER: Final[dict[bytes, bytes]] = {}
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


def lowered_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Header fields ``raw`` with lower-cased names, in order, repeats kept."""
    # (_LOWER.get called in place, not kept as a local: compiled, that is a direct dict lookup,
    # where the bound method was fetched and called through Python, ~800 instructions a request)
    return [(_LOWER.get(name) or name.lower(), value) for name, value in raw]


class ScopeTemplate:
    """What every HTTP scope of one connection starts from: ``fields``, a scope with the
    connection's keys set (see :func:`connection_scope`), copied for each request.

    The request keys that are nearly always the same on one connection (``http_version``,
    ``scheme``, ``client``) are kept in ``fields`` as the last request had them, and stored
    again only when a request's differ (a trusted proxy may rewrite the client and scheme of
    each one): compiled, an identity test of a native attribute instead of a dict store each.
    The ``fields`` of a scope already handed out are never changed: each is a copy.

    The header fields are kept too: the last request's fields as received (``raw``) and
    lower-cased (``lowered``). Clients send the same fields on every request of a connection,
    so most requests compare equal and get a copy of ``lowered`` (an application may change the
    scope's list: Starlette's ``MutableHeaders`` does) instead of lowering each name again.
    """

    __slots__ = ("fields", "root_path", "version", "scheme", "client", "raw", "lowered")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        #: uvicorn's ``root_path`` (see :func:`http_scope`)
        self.root_path: str = fields["root_path"]
        # what ``fields`` holds now for the keys kept from the last request
        self.version: Any = fields["http_version"]
        self.scheme: Any = fields["scheme"]
        self.client: Any = fields["client"]
        # the last request's header fields as received, and lower-cased (see above)
        self.raw: list[tuple[bytes, bytes]] = []
        self.lowered: list[tuple[bytes, bytes]] = []


def connection_scope(
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    root_path: str,
    extensions: dict[str, Any],
) -> ScopeTemplate:
    """The part of an HTTP scope that is the same for every request of one connection."""
    return ScopeTemplate(
        {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": "1.1",
            "scheme": scheme,
            "method": "GET",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": root_path,
            "headers": [],
            "client": client,
            "server": server,
            "extensions": extensions,
        }
    )


def http_scope(
    template: ScopeTemplate, request: Request, state: dict[str, Any] | None
) -> dict[str, Any]:
    """The scope of one HTTP request: ``template``'s fields (see :class:`ScopeTemplate`)
    filled in.

    ``root_path`` follows uvicorn's meaning: a proxy already removed it from the path, so
    ``path`` and ``raw_path`` get it back in front.
    """
    fields = template.fields
    version = request.version
    scheme = request.scheme
    client = request.client  # a trusted proxy may have rewritten it
    if version is not template.version or scheme is not template.scheme:
        fields["http_version"] = template.version = version
        fields["scheme"] = template.scheme = scheme
    if client is not template.client:
        fields["client"] = template.client = client
    scope = fields.copy()
    root_path = template.root_path
    if root_path:
        scope["path"] = root_path + request.path
        scope["raw_path"] = root_path.encode("utf-8") + request.raw_path
    else:
        scope["path"] = request.path
        scope["raw_path"] = request.raw_path
    scope["method"] = request.method
    scope["query_string"] = request.query_bytes
    raw = request.raw_headers
    if same_fields(raw, template.raw) if PAIRWISE_COMPARE else raw == template.raw:
        scope["headers"] = template.lowered.copy()
    else:
        lowered = lowered_headers(raw)
        template.raw = raw.copy()  # (ours: whatever later happens to the request's list)
        template.lowered = lowered
        scope["headers"] = lowered.copy()
    if state is not None:
        scope["state"] = state.copy()  # shallow, per request (ASGI lifespan state)
    return scope


def websocket_scope(
    template: ScopeTemplate, request: Request, state: dict[str, Any] | None
) -> dict[str, Any]:
    """The scope of a WebSocket handshake request."""
    scope = http_scope(template, request, state)
    scope["type"] = "websocket"
    scope["scheme"] = _WS_SCHEMES.get(request.scheme, "ws")
    del scope["method"]
    scope["extensions"] = {**scope["extensions"], "websocket.http.response": {}}
    subprotocols: list[str] = []
    for name, value in scope["headers"]:
        if name == b"sec-websocket-protocol":
            subprotocols += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
    scope["subprotocols"] = subprotocols
    return scope


_WS_SCHEMES: Final = {"http": "ws", "https": "wss"}
