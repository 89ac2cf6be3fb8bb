"""Handlers the WebSocket end-to-end tests serve (run as ``tests.ws.apps:NAME``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import peregrine
import peregrine.ws


class Echo:
    """`/ws` echoes every message; `/ws/proto` offers the subprotocols `chat` and `json`."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        if req.path == "/ws/proto":
            peregrine.ws.upgrade(req, resp, subprotocols=["chat", "json"])
        elif req.path == "/ws/plain":
            peregrine.ws.upgrade(req, resp, compression=False)
        elif req.path.startswith("/ws"):
            peregrine.ws.upgrade(req, resp)
        else:
            resp.set_body(b"not a websocket\n")

    def handle_ws_message(self, ws, message) -> None:  # type: ignore[no-untyped-def]
        ws.send(message)


class Hooks:
    """Async hooks that report what they saw, to check ordering and the once-only disconn.

    Text commands: `info` -> JSON about the connection; `slow N` -> sleeps N seconds then
    answers `done N`; `close CODE` -> closes with CODE; `raise` -> the hook fails; `flood N`
    -> sends N 64 KiB messages without draining; `events` -> the log of earlier
    connections' conn/disconn calls; anything else is echoed.
    """

    def __init__(self) -> None:
        self.log: list[str] = []

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp, subprotocols=["chat"])

    async def handle_ws_conn(self, ws) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)  # messages that arrive meanwhile must wait, in order
        self.log.append(f"conn {ws.request.path}")
        ws.send("welcome")

    async def handle_ws_message(self, ws, message) -> None:  # type: ignore[no-untyped-def]
        if isinstance(message, bytes):
            ws.send(message)
            return
        cmd, _, arg = message.partition(" ")
        if cmd == "info":
            ws.send(
                json.dumps(
                    {
                        "path": ws.request.path,
                        "query": ws.request.query.get("q"),
                        "subprotocol": ws.subprotocol,
                        "closed": ws.closed,
                    }
                )
            )
        elif cmd == "slow":
            await asyncio.sleep(float(arg))
            ws.send(f"done {arg}")
        elif cmd == "close":
            ws.close(int(arg), "bye")
        elif cmd == "raise":
            raise RuntimeError("boom from a WebSocket hook")
        elif cmd == "flood":
            for _ in range(int(arg)):
                ws.send(b"x" * 65536)
        elif cmd == "drain":
            for _ in range(int(arg)):
                ws.send(b"x" * 65536)
                await ws.drain()
            ws.send("drained")
        elif cmd == "events":
            ws.send("|".join(self.log))
        else:
            ws.send(message)

    def handle_ws_disconn(self, ws, code) -> None:  # type: ignore[no-untyped-def]
        self.log.append(f"disconn {ws.request.path} {code}")


async def asgi_echo(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """The ASGI twin of :class:`Echo`: accepts every WebSocket and echoes each message as is.

    Autobahn runs against it through the ASGI path (``tests/ws/autobahn.py --asgi``).
    """
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"not a websocket\n"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


CLOSE_TICKER_EVERY = 0.05


class HookProbeApp:
    """Test endpoints the shared apps lack.

    `/ticker`: an async `handle_ws_conn` that sends `tick` until `ws.closed` (the usual
    push-loop shape). `/backend`: messages run an async hook that raises the handler's own
    ConnectionRefusedError. `/slow`: every message waits 3 s in an async hook.
    Every disconn is printed as `HOOK disconn PATH CODE`.
    """

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp)

    async def handle_ws_conn(self, ws: Any) -> None:
        if ws.request.path == "/ticker":
            while not ws.closed:
                ws.send("tick")
                await asyncio.sleep(CLOSE_TICKER_EVERY)

    async def handle_ws_message(self, ws: Any, message: Any) -> None:
        path = ws.request.path
        if path == "/backend":
            await asyncio.sleep(0)
            raise ConnectionRefusedError("the handler's own backend refused it")
        if path == "/slow":
            await asyncio.sleep(3)
            return
        ws.send(message)

    def handle_ws_disconn(self, ws: Any, code: int) -> None:
        print(f"HOOK disconn {ws.request.path} {code}", flush=True)


class AsyncDisconnApp(HookProbeApp):
    """HookProbeApp with an async `handle_ws_disconn` that awaits before it reports."""

    async def handle_ws_disconn(self, ws: Any, code: int) -> None:  # type: ignore[override]
        await asyncio.sleep(0.05)
        print(f"HOOK disconn {ws.request.path} {code}", flush=True)


class StateApp:
    """Text commands: `ping` -> `ws.ping(b"app")`; `state` -> JSON of closed/close_code;
    `close` -> closes with 4000 and reports closed/close_code after it; `drain-later` ->
    waits 0.3 s then awaits `drain()`; `slow` -> waits 1 s then sends `late`;
    `events` -> the log. Paths starting with `/raise` get a disconn hook that raises."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp)

    async def handle_ws_message(self, ws: Any, message: Any) -> None:
        if message == "ping":
            ws.ping(b"app")
        elif message == "state":
            ws.send(json.dumps({"closed": ws.closed, "close_code": ws.close_code}))
        elif message == "close":
            ws.close(4000, "app")
            self.log.append(f"after-close {ws.closed} {ws.close_code}")
        elif message == "drain-later":
            await asyncio.sleep(0.3)
            try:
                await ws.drain()
                self.log.append("drain returned")
            except ConnectionResetError:
                self.log.append(f"drain reset {ws.closed} {ws.close_code}")
        elif message == "slow":
            await asyncio.sleep(1.0)
            ws.send("late")  # the connection is closed by now: a no-op
            self.log.append(f"slow done {ws.closed}")
        elif message == "events":
            ws.send("|".join(self.log))

    async def handle_ws_disconn(self, ws: Any, code: int) -> None:
        await asyncio.sleep(0.01)
        self.log.append(f"disconn {ws.request.path} {code} {ws.closed} {ws.close_code}")
        if ws.request.path.startswith("/raise"):
            raise RuntimeError("boom from handle_ws_disconn")
