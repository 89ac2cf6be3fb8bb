"""A raw ASGI app (no framework) for uvicorn and granian's ASGI interface.

Headers and bodies are prebuilt once so the app itself costs as little as an
ASGI app can; what is measured is the server.
"""

from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY


def _start(body: bytes) -> dict:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }


SEED = (_start(SEED_BODY), {"type": "http.response.body", "body": SEED_BODY})
SMALL = (_start(SMALL_BODY), {"type": "http.response.body", "body": SMALL_BODY})
NOT_FOUND = (
    {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b""},
)


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if scope["method"] == "POST":
            # Read the whole request body, as a real handler would.
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
            start, body = SMALL
        elif path == "/":
            start, body = SEED
        elif path == "/small":
            start, body = SMALL
        else:
            start, body = NOT_FOUND
        await send(start)
        await send(body)
    elif kind == "websocket":
        # Echo every message back with the same type.
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                break
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
