"""The same small endpoints written with Starlette, FastAPI and Django (test dependencies)."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402

# --- Starlette ---------------------------------------------------------------------------------


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.query_params.get('name', 'world')}")


async def upload(request: Request) -> JSONResponse:
    form = await request.form()
    return JSONResponse({k: (v if isinstance(v, str) else v.filename) for k, v in form.items()})


async def numbers(request: Request) -> StreamingResponse:
    async def gen() -> Any:
        for i in range(5):
            yield f"{i}\n"

    return StreamingResponse(gen(), media_type="text/plain")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


starlette_app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/upload", upload, methods=["POST"]),
        Route("/numbers", numbers),
        WebSocketRoute("/ws", ws_echo),
    ]
)

# --- FastAPI -----------------------------------------------------------------------------------

fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.post("/items")
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name, "price": item.price, "taxed": round(item.price * 1.2, 2)}


@fastapi_app.get("/sync")
def sync_endpoint(q: int = 0) -> dict[str, int]:
    return {"q": q}  # FastAPI runs it in a thread (anyio): needs a current task


# --- Django ------------------------------------------------------------------------------------


def django_sync(request: Any) -> JsonResponse:
    return JsonResponse({"q": request.GET.get("q"), "method": request.method})


async def django_async(request: Any) -> HttpResponse:
    return HttpResponse(b"async view")


def django_form(request: Any) -> HttpResponse:
    if request.method == "POST":
        return HttpResponseRedirect(f"/thanks?name={request.POST.get('name', '')}")
    return HttpResponse(b"form")


urlpatterns = [
    path("sync", django_sync),
    path("async", django_async),
    path("form", django_form),
]

django_app = get_asgi_application()
