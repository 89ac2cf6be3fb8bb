"""The Starlette endpoint every ASGI server serves: routing, a Request, a PlainTextResponse.

The same routes as ``asgi_app.py`` (the seed body on ``/``, ``/small``, a WebSocket echo on
``/ws``), written the way a Starlette user writes them; what differs from the raw app is the
framework's own work per request.
"""

from common import SEED_BODY, SMALL_BODY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


async def seed(request: Request) -> PlainTextResponse:
    return PlainTextResponse(SEED_BODY, media_type="text/plain")


async def small(request: Request) -> PlainTextResponse:
    return PlainTextResponse(SMALL_BODY, media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


app = Starlette(
    routes=[Route("/", seed), Route("/small", small), WebSocketRoute("/ws", echo)],
)
