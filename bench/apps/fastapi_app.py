"""The FastAPI endpoint every ASGI server serves: a path operation answering the seed body.

``response_class=PlainTextResponse`` keeps the bytes identical to the other apps (a JSON body
would make the check against the raw app's answer meaningless); the request still goes through
FastAPI's routing, dependency solving and response handling.
"""

from common import SEED_BODY, SMALL_BODY
from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/", response_class=PlainTextResponse)
async def seed() -> PlainTextResponse:
    return PlainTextResponse(SEED_BODY, media_type="text/plain")


@app.get("/small", response_class=PlainTextResponse)
async def small() -> PlainTextResponse:
    return PlainTextResponse(SMALL_BODY, media_type="text/plain")


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
