"""A FastAPI application served by Peregrine: what ``uvicorn main:app`` users run instead.

FastAPI is not one of Peregrine's dependencies; install it first:

    pip install fastapi
    peregrine run examples.asgi_fastapi:app                # http://127.0.0.1:3000/docs
    peregrine run examples.asgi_fastapi:app --workers 4    # as `uvicorn ... --workers 4`

Any ASGI 3 application runs the same way (Starlette, Django's ``asgi.py``, Litestar, Quart):
Peregrine sees that ``app`` is an ASGI app. See docs/asgi.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    # Runs once in each worker before it accepts connections, and again when it stops:
    # open pools and clients here. What it yields is every request's `request.state`.
    yield {"greeting": "Kawww"}


app = FastAPI(title="Peregrine example", lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float
    quantity: int = 1


@app.get("/")
async def hello(request: Request) -> dict[str, str]:
    return {"message": request.state.greeting}


@app.post("/items")
async def create_item(item: Item) -> dict[str, object]:
    # A body that does not match Item gets FastAPI's 422 with the validation errors.
    return {"name": item.name, "total": item.price * item.quantity}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    # A plain `def` endpoint: FastAPI runs it in its thread pool, off the event loop.
    return {"item_id": item_id, "q": q}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
