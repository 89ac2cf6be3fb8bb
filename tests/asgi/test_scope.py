"""The HTTP scopes of one connection's requests, built from its ``ScopeTemplate``.

The template keeps the version, scheme and client of the last request in its fields and stores
them again only when a request's differ: each scope must still carry its own request's values,
whatever came before it on the connection, and a scope already handed out must never change.
"""

from __future__ import annotations

from typing import Any

import pytest

from peregrine.asgi.scope import connection_scope, http_scope, websocket_scope
from peregrine.http.request import Request

PEER = ("10.0.0.1", 50000)
PROXIED = ("203.0.113.7", 0)

#: one connection's requests in turn: (method, raw path, query, version, client, scheme)
SEQUENCES: dict[str, list[tuple[str, bytes, bytes, str, Any, str]]] = {
    "the same request again": [
        ("GET", b"/", b"", "1.1", PEER, "http"),
        ("GET", b"/", b"", "1.1", PEER, "http"),
    ],
    "HTTP/1.0 between HTTP/1.1": [
        ("GET", b"/a", b"", "1.1", PEER, "http"),
        ("GET", b"/b", b"x=1", "1.0", PEER, "http"),
        ("POST", b"/c", b"", "1.1", PEER, "http"),
    ],
    "a proxy's client and scheme on some requests only": [
        ("GET", b"/", b"", "1.1", PEER, "http"),
        ("GET", b"/", b"", "1.1", PROXIED, "https"),
        ("GET", b"/", b"", "1.1", PEER, "http"),
        ("GET", b"/", b"", "1.1", PEER, "https"),
    ],
    "an equal client tuple that is another object": [
        ("GET", b"/", b"", "1.1", ("10.0.0.1", 50000), "http"),
        ("GET", b"/", b"", "1.1", None, "http"),
        ("GET", b"/", b"", "1.1", ("10.0.0.1", 50000), "http"),
    ],
    "percent-encoded path and query": [
        ("GET", b"/caf%C3%A9", b"q=%20", "1.1", PEER, "http"),
        ("HEAD", b"/", b"", "1.1", PEER, "http"),
    ],
}


def _request(fields: tuple[str, bytes, bytes, str, Any, str]) -> Request:
    method, raw_path, query, version, client, scheme = fields
    headers = [(b"Host", b"example.com"), (b"X-Custom", b"1")]
    return Request(method, raw_path, query, version, headers, client=client, scheme=scheme)


def _expected(fields: tuple[str, bytes, bytes, str, Any, str], root_path: str) -> dict[str, Any]:
    method, raw_path, query, version, client, scheme = fields
    path = raw_path.decode().replace("%C3%A9", "é")
    return {
        "type": "http",
        "http_version": version,
        "scheme": scheme,
        "method": method,
        "path": root_path + path,
        "raw_path": root_path.encode() + raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": [(b"host", b"example.com"), (b"x-custom", b"1")],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.parametrize("root_path", ["", "/api"])
@pytest.mark.parametrize("name", list(SEQUENCES))
def test_each_scope_has_its_own_request_values(name: str, root_path: str) -> None:
    template = connection_scope("http", PEER, ("127.0.0.1", 8000), root_path, {"x": {}})
    handed_out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for fields in SEQUENCES[name]:
        scope = http_scope(template, _request(fields), None)
        want = _expected(fields, root_path)
        assert {key: scope[key] for key in want} == want
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert scope["extensions"] == {"x": {}}
        assert "state" not in scope
        handed_out.append((scope, dict(scope)))
    for scope, as_handed_out in handed_out:
        assert scope == as_handed_out  # later requests changed no earlier scope


def test_state_is_a_shallow_copy_per_request() -> None:
    template = connection_scope("http", PEER, None, "", {})
    state = {"db": object()}
    first = http_scope(template, _request(SEQUENCES["the same request again"][0]), state)
    second = http_scope(template, _request(SEQUENCES["the same request again"][1]), state)
    assert first["state"] == state and second["state"] == state
    assert first["state"] is not state and first["state"] is not second["state"]
    assert first["state"]["db"] is state["db"]


def test_websocket_scope_after_http_requests_has_its_own_values() -> None:
    template = connection_scope("https", PEER, None, "", {})
    http_scope(template, _request(("GET", b"/", b"", "1.0", PROXIED, "http")), None)
    headers = [(b"Host", b"x"), (b"Sec-WebSocket-Protocol", b"chat, superchat")]
    request = Request("GET", b"/ws", b"", "1.1", headers, client=PEER, scheme="https")
    scope = websocket_scope(template, request, None)
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "wss"
    assert scope["http_version"] == "1.1"
    assert scope["client"] == PEER
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert "method" not in scope


#: one connection's requests' header fields in turn (as received, lower-cased names expected)
HEADER_SEQUENCES: dict[str, list[list[tuple[bytes, bytes]]]] = {
    "the same fields again": [
        [(b"Host", b"a"), (b"Accept", b"*/*")],
        [(b"Host", b"a"), (b"Accept", b"*/*")],
        [(b"Host", b"a"), (b"Accept", b"*/*")],
    ],
    "one value differs": [
        [(b"Host", b"a"), (b"X-Request-Id", b"1")],
        [(b"Host", b"a"), (b"X-Request-Id", b"2")],
        [(b"Host", b"a"), (b"X-Request-Id", b"1")],
    ],
    "a name spelt differently": [
        [(b"Host", b"a"), (b"X-Odd", b"1")],
        [(b"Host", b"a"), (b"x-odd", b"1")],
        [(b"HOST", b"a"), (b"X-ODD", b"1")],
    ],
    "fields added, repeated, then none": [
        [(b"Host", b"a")],
        [(b"Host", b"a"), (b"Cookie", b"x=1"), (b"Cookie", b"y=2")],
        [],
        [(b"Host", b"a")],
    ],
}


@pytest.mark.parametrize("name", list(HEADER_SEQUENCES))
def test_each_scope_has_its_own_request_header_fields(name: str) -> None:
    template = connection_scope("http", PEER, None, "", {})
    handed_out: list[tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]] = []
    for fields in HEADER_SEQUENCES[name]:
        request = Request("GET", b"/", b"", "1.1", list(fields), client=PEER)
        headers = http_scope(template, request, None)["headers"]
        assert headers == [(field.lower(), value) for field, value in fields]
        handed_out.append((headers, list(headers)))
    for headers, as_handed_out in handed_out:
        assert headers == as_handed_out  # later requests changed no earlier scope's list


def test_an_application_changing_its_header_list_does_not_change_the_next_scope() -> None:
    template = connection_scope("http", PEER, None, "", {})
    fields = [(b"Host", b"a"), (b"Accept", b"*/*")]
    first = http_scope(template, Request("GET", b"/", b"", "1.1", list(fields)), None)
    first["headers"].append((b"x-added-by-middleware", b"1"))  # as MutableHeaders does
    first["headers"][0] = (b"host", b"rewritten")
    second = http_scope(template, Request("GET", b"/", b"", "1.1", list(fields)), None)
    assert second["headers"] == [(b"host", b"a"), (b"accept", b"*/*")]
    assert second["headers"] is not first["headers"]


def test_a_request_list_changed_after_its_scope_was_made_does_not_match_the_next() -> None:
    template = connection_scope("http", PEER, None, "", {})
    raw = [(b"Host", b"a")]
    http_scope(template, Request("GET", b"/", b"", "1.1", raw), None)
    raw[0] = (b"Host", b"b")  # whatever a layer below does to its own list later
    scope = http_scope(template, Request("GET", b"/", b"", "1.1", [(b"Host", b"b")]), None)
    assert scope["headers"] == [(b"host", b"b")]
