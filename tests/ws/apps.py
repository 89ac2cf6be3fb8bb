"""Handlers the WebSocket end-to-end tests serve (run as ``tests.ws.apps:NAME``)."""

from __future__ import annotations

import asyncio
import json

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
