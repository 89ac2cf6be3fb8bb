"""ASGI applications the tests serve: one raw app with a route per rule, and framework apps."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

Scope = dict[str, Any]

#: where apps leave what a test must see after the client has gone (a file per test)
MARKS = os.environ.get("PEREGRINE_TEST_MARKS", "")


def mark(name: str, text: str) -> None:
    if MARKS:
        with open(os.path.join(MARKS, name), "a") as f:
            f.write(text + "\n")


async def _body(receive: Any) -> tuple[bytes, int]:
    data, messages = b"", 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        messages += 1
        data += message.get("body", b"")
        if not message.get("more_body"):
            return data, messages


async def _respond(send: Any, status: int, body: bytes, headers: Any = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


_arrived: list[int] = []
_all_here = asyncio.Event()


async def raw(scope: Scope, receive: Any, send: Any) -> None:
    """One route per rule the tests check."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            else:
                mark("lifespan", "shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    path = scope["path"][len(scope["root_path"]) :]  # routes see the path below the root path
    if path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string")}
        shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode()
        shown["query_string"] = scope["query_string"].decode()
        shown["extensions"] = sorted(scope["extensions"])
        await _respond(send, 200, json.dumps(shown).encode())
    elif path == "/tls":
        shown = dict(scope["extensions"].get("tls") or {})
        shown["scheme"] = scope["scheme"]
        await _respond(send, 200, json.dumps(shown).encode())
    elif path == "/echo":
        data, messages = await _body(receive)
        await _respond(send, 200, data, [(b"x-messages", str(messages).encode())])
    elif path == "/ignore-body":
        await _respond(send, 200, b"ignored")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream-length":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"01234", "more_body": True})
        await send({"type": "http.response.body", "body": b"56789"})
    elif path == "/short":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"01234"})
    elif path == "/head-length":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1234")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
    elif path == "/raise-before":
        raise RuntimeError("boom before the response")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom mid-response")
    elif path == "/no-response":
        return
    elif path == "/bad-header":
        await _respond(send, 200, b"x", [(b"x-evil", b"a\r\nSet-Cookie: owned=1")])
    elif path == "/double-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})
    elif path == "/receive-after-response":
        await _respond(send, 200, b"done")
        message = await receive()
        mark("after-response", message["type"])
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        while (message := await receive())["type"] == "http.request":
            pass  # the (empty) body first, then the disconnect
        mark("wait-disconnect", message["type"])
    elif path == "/send-after-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(1000):
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            mark("send-after-disconnect", type(exc).__name__)
            raise
    elif path == "/big-stream":
        total = int(scope["query_string"] or b"1000")
        chunk = b"x" * 65536
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(total * len(chunk)).encode())],
            }
        )
        for _ in range(total):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/pathsend":
        file = os.environ["PEREGRINE_TEST_FILE"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        await send({"type": "http.response.pathsend", "path": file})
    elif path == "/barrier":
        # answers only once `n` requests are inside the app at the same time (or 504 after 10 s)
        n = int(scope["query_string"])
        _arrived.append(n)
        if len(_arrived) % n == 0:
            _all_here.set()
        try:
            await asyncio.wait_for(_all_here.wait(), 10)
        except asyncio.TimeoutError:
            await _respond(send, 504, b"alone")
            return
        await _respond(send, 200, b"together")
    elif path.startswith("/trailers"):
        await trailers(path, scope, send)
    elif path == "/state":
        await _respond(send, 200, json.dumps(scope.get("state")).encode())
    elif path == "/status":
        status = int(scope["query_string"])
        await _respond(send, status, b"body that must not be sent" if status in (204, 304) else b"")
    else:
        await _respond(send, 404, b"no route")


async def trailers(path: str, scope: Scope, send: Any) -> None:
    """Responses with trailer fields (the ``http.response.trailers`` extension).

    ``?big``: a body larger than an HTTP/2 window, so the trailers wait behind queued data.
    """
    assert "http.response.trailers" in scope["extensions"]
    body = b"x" * 200_000 if scope["query_string"] == b"big" else b"0123456789"
    headers = [(b"trailer", b"x-checksum, x-status")]
    if path == "/trailers-length":
        headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
    if path == "/trailers-length":
        await send({"type": "http.response.body", "body": body})  # one message
    else:
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await send({"type": "http.response.body", "body": body[5:]})
    if path == "/trailers-missing":
        return  # announced, never sent
    fields = [(b"x-checksum", b"%d" % len(body))]
    if path == "/trailers-bad":
        fields = [(b"x-evil", b"a\r\n\r\nHTTP/1.1 200 OK")]
    await send({"type": "http.response.trailers", "headers": fields, "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-status", b"ok")]})


async def websocket(scope: Scope, receive: Any, send: Any) -> None:
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/ws-deny":
        await send({"type": "websocket.close"})
        return
    if path == "/ws-denial-response":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocol,
            "headers": [(b"x-accepted", b"yes")],
        }
    )
    if path == "/ws-close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            mark("ws-disconnect", str(message["code"]))
            return
        if "text" in message and message["text"] is not None:
            if message["text"] == "close":
                await send({"type": "websocket.close", "code": 4000})
                continue
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


async def startup_fails(scope: Scope, receive: Any, send: Any) -> None:
    """Refuses to start: its lifespan answers startup.failed."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _respond(send, 200, b"never")


async def no_lifespan(scope: Scope, receive: Any, send: Any) -> None:
    """Raises on the lifespan scope, as Django does."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']}")
    await _respond(send, 200, b"served without lifespan")


class AsgiClass:
    """An object whose __call__ is async: detected as ASGI."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _respond(send, 200, b"instance")


instance = AsgiClass()


def make_app() -> Any:
    """For --factory."""
    return raw
