"""Starlette, FastAPI and Django (sync and async views) served by Peregrine, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from ..helpers import ServerProcess


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.asgi.frameworks:starlette_app") as server:
        yield server


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.asgi.frameworks:fastapi_app") as server:
        yield server


@pytest.fixture(scope="module")
def django_server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.asgi.frameworks:django_app") as server:
        yield server


class TestStarlette:
    def test_query_parameters(self, starlette_server: ServerProcess) -> None:
        r = httpx.get(f"{starlette_server.url}/hello", params={"name": "peregrine"})
        assert (r.status_code, r.text) == (200, "hello peregrine")

    def test_multipart_upload(self, starlette_server: ServerProcess) -> None:
        r = httpx.post(
            f"{starlette_server.url}/upload",
            data={"title": "report"},
            files={"file": ("a.txt", b"x" * 50000, "text/plain")},
        )
        assert r.json() == {"title": "report", "file": "a.txt"}

    def test_streaming_response(self, starlette_server: ServerProcess) -> None:
        r = httpx.get(f"{starlette_server.url}/numbers")
        assert r.text == "0\n1\n2\n3\n4\n"
        assert r.headers["transfer-encoding"] == "chunked"

    def test_websocket_endpoint(self, starlette_server: ServerProcess) -> None:
        async def talk() -> object:
            url = f"ws://{starlette_server.host}:{starlette_server.port}/ws"
            async with connect(url) as ws:
                await ws.send("quiet")
                return await ws.recv()

        assert asyncio.run(talk()) == "QUIET"

    def test_unknown_route_is_404(self, starlette_server: ServerProcess) -> None:
        assert httpx.get(f"{starlette_server.url}/nope").status_code == 404


class TestFastAPI:
    def test_pydantic_model_body(self, fastapi_server: ServerProcess) -> None:
        r = httpx.post(f"{fastapi_server.url}/items", json={"name": "tea", "price": 2.5})
        assert r.json() == {"name": "tea", "price": 2.5, "taxed": 3.0}

    def test_invalid_body_is_422(self, fastapi_server: ServerProcess) -> None:
        r = httpx.post(f"{fastapi_server.url}/items", json={"name": "tea"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "price"]

    def test_sync_endpoint_runs_in_a_thread(self, fastapi_server: ServerProcess) -> None:
        r = httpx.get(f"{fastapi_server.url}/sync", params={"q": 7})
        assert r.json() == {"q": 7}


class TestDjango:
    def test_sync_view_with_query_parameters(self, django_server: ServerProcess) -> None:
        r = httpx.get(f"{django_server.url}/sync", params={"q": "x y"})
        assert r.json() == {"q": "x y", "method": "GET"}

    def test_async_view(self, django_server: ServerProcess) -> None:
        assert httpx.get(f"{django_server.url}/async").content == b"async view"

    def test_form_post_and_redirect(self, django_server: ServerProcess) -> None:
        r = httpx.post(f"{django_server.url}/form", data={"name": "ada"})
        assert r.status_code == 302
        assert r.headers["location"] == "/thanks?name=ada"

    def test_lifespan_is_skipped_for_django(self, django_server: ServerProcess) -> None:
        assert "does not support the ASGI lifespan" in django_server.output
