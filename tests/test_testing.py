"""peregrine.testing.Client: requests and WebSockets through the real protocol code, in memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import peregrine
import peregrine.ws
from peregrine.testing import Client, WebSocketClosed, WebSocketRejected


class App:
    def __init__(self) -> None:
        self.closed = False
        self.seen: list[peregrine.Request] = []

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> Any:
        self.seen.append(req)
        if req.path == "/ws":
            peregrine.ws.upgrade(req, resp, subprotocols=["chat"])
            return None
        if req.path == "/echo":
            resp.set_header(
                "Content-Type", req.headers.get("content-type", "application/octet-stream")
            )
            resp.set_body(req.body)
            return None
        if req.path == "/query":
            resp.set_header("Content-Type", "application/json")
            resp.set_body(peregrine_json({k: req.query.getall(k) for k in req.query}))
            return None
        if req.path == "/async":
            return self.later(resp)
        if req.path == "/latin":
            resp.set_header("Content-Type", "text/plain; charset=latin-1")
            resp.set_body("café".encode("latin-1"))
            return None
        resp.set_header("X-Client", req.client[0] if req.client else "-")
        resp.set_body(f"{req.method} {req.path}")
        return None

    async def later(self, resp: peregrine.Response) -> None:
        await asyncio.sleep(0.01)
        for part in ("a", "b", "c"):
            await resp.write(part)

    def handle_ws_message(self, ws: Any, message: str | bytes) -> None:
        if message == "bye":
            ws.close(4000, "asked to")
        else:
            ws.send(message)

    def close(self) -> None:
        self.closed = True


def peregrine_json(value: object) -> str:
    import json

    return json.dumps(value)


def test_get_with_params_and_headers() -> None:
    with Client(App) as client:
        response = client.get("/query?a=1", params={"b": "two words"}, headers={"X-Y": "z"})
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"a": ["1"], "b": ["two words"]}
        assert client.get("/").headers["x-client"] == "127.0.0.1"


@pytest.mark.parametrize(
    "kwargs, body, content_type",
    [
        ({"content": b"\x00raw"}, b"\x00raw", "application/octet-stream"),
        ({"content": "text é"}, "text é".encode(), "text/plain; charset=utf-8"),
        ({"json": {"a": [1, 2]}}, b'{"a": [1, 2]}', "application/json"),
        ({"data": {"a": "1", "b": "x y"}}, b"a=1&b=x+y", "application/x-www-form-urlencoded"),
    ],
)
def test_post_bodies(kwargs: dict[str, Any], body: bytes, content_type: str) -> None:
    with Client(App) as client:
        response = client.post("/echo", **kwargs)
    assert response.content == body
    assert response.headers["content-type"] == content_type


def test_text_follows_the_charset() -> None:
    with Client(App) as client:
        assert client.get("/latin").text == "café"


def test_async_handler_and_streamed_body() -> None:
    with Client(App) as client:
        response = client.get("/async")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == b"abc"


def test_the_engines_limits_apply() -> None:
    with Client(App, max_body_size=4) as client:
        assert client.post("/echo", content=b"12345").status == 413
        assert client.post("/echo", content=b"1234").content == b"1234"


def test_head_has_no_body() -> None:
    with Client(App) as client:
        response = client.head("/")
    assert response.status == 200 and response.content == b""
    assert response.headers["content-length"] == str(len("HEAD /"))


def test_raw_bytes_reach_the_parser() -> None:
    with Client(App) as client:
        answer = client.send_raw(
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert answer.count(b"HTTP/1.1 200 OK") == 2
        assert answer.index(b"GET /one") < answer.index(b"GET /two")
        assert client.send_raw(b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_handler_is_made_on_enter_and_closed_on_exit() -> None:
    app = App()
    client = Client(app)
    with client:
        client.get("/")
        assert not app.closed
    assert app.closed


def test_a_function_handler() -> None:
    def hello(req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_body(b"hi")

    with Client(hello) as client:
        assert client.get("/").text == "hi"


def test_websocket_echo_text_and_binary() -> None:
    with Client(App) as client, client.websocket("/ws", subprotocols=["chat"]) as ws:
        assert ws.response is not None
        assert ws.response.headers["sec-websocket-protocol"] == "chat"
        ws.send("hello")
        assert ws.receive() == "hello"
        ws.send(b"\x00\x01")
        assert ws.receive() == b"\x00\x01"
        ws.send_json({"a": 1})
        assert ws.receive_json() == {"a": 1}


def test_websocket_close_from_the_server() -> None:
    with Client(App) as client, client.websocket("/ws") as ws:
        ws.send("bye")
        with pytest.raises(WebSocketClosed) as info:
            ws.receive()
    assert (info.value.code, info.value.reason) == (4000, "asked to")


def test_websocket_refused() -> None:
    with Client(App) as client:
        with pytest.raises(WebSocketRejected) as info:
            with client.websocket("/not-ws"):
                pass
    assert info.value.response.status == 200


def test_client_closes_the_websocket_on_exit() -> None:
    closed: list[int] = []

    class Tracking(App):
        def handle_ws_disconn(self, ws: Any, code: int) -> None:
            closed.append(code)

    with Client(Tracking) as client:
        with client.websocket("/ws") as ws:
            ws.send("x")
            assert ws.receive() == "x"
        assert closed == [1000]


class AsgiApp:
    """A raw ASGI 3 application: lifespan, an HTTP echo, a WebSocket echo."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            answer = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} ".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": answer + body})
        elif scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await send({"type": "websocket.send", "text": message["text"].upper()})
                else:
                    await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


def test_asgi_app_with_its_lifespan() -> None:
    app = AsgiApp()
    with Client(app) as client:
        assert app.events == ["lifespan.startup"]
        response = client.post("/path", params={"q": "1"}, content=b"body")
        assert response.text == "POST /path q=1 body"
        with client.websocket("/ws") as ws:
            ws.send("shout")
            assert ws.receive() == "SHOUT"
            ws.send(b"abc")
            assert ws.receive() == b"cba"
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    text = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ['QUERY_STRING']} "
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "wsgi")])
    return [text.encode(), body]


@pytest.mark.parametrize("threads", [0, 4])
def test_wsgi_app_in_both_modes(threads: int) -> None:
    with Client(wsgi_app, threads=threads) as client:
        response = client.post("/path", params={"q": "1"}, content=b"body")
        assert response.status == 201
        assert response.headers.get("x-app") == "wsgi"
        assert response.text == "POST /path q=1 body"
