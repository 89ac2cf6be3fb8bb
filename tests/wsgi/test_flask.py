"""Flask on Peregrine, in both modes: JSON, redirects, uploads, streaming, a root path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..helpers import ServerProcess

APP = "tests.wsgi.flask_app:app"


@pytest.fixture(scope="module", params=["4", "0"], ids=["pool", "loop"])
def flask_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(APP, "--threads", request.param, "--max-body-size", "20000000") as proc:
        yield proc


def test_json_body(flask_server: ServerProcess) -> None:
    response = httpx.post(f"{flask_server.url}/json", json={"a": [1, 2, "é"]}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "got": {"a": [1, 2, "é"]},
        "path": "/json",
        "url": f"{flask_server.url}/json",
    }


def test_redirect(flask_server: ServerProcess) -> None:
    response = httpx.get(f"{flask_server.url}/old", timeout=10)
    assert response.status_code == 302
    assert response.headers["location"] == "/new"
    followed = httpx.get(f"{flask_server.url}/old", follow_redirects=True, timeout=10)
    assert followed.text == "new place"


def test_multipart_upload(flask_server: ServerProcess) -> None:
    data = os.urandom(5 * 1024 * 1024)
    response = httpx.post(
        f"{flask_server.url}/upload",
        files={"file": ("blob.bin", data, "application/octet-stream")},
        data={"field": "value"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json() == {
        "filename": "blob.bin",
        "size": len(data),
        "sum": sum(data) % 65521,
        "field": "value",
    }


def test_streamed_response(flask_server: ServerProcess, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    lines = []
    url = f"{flask_server.url}/stream"
    with httpx.stream("GET", url, params={"gate": str(gate)}, timeout=30) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        for line in response.iter_lines():
            lines.append(line)
            if line == "event 1":  # sent as produced: the app goes on only once this arrived
                gate.touch()
    assert lines == ["event 0", "event 1", "event 2 after gate"]


def test_behind_a_root_path() -> None:
    with ServerProcess(APP, "--root-path", "/app") as server:
        response = httpx.get(f"{server.url}/where", timeout=10)
    assert response.json() == {
        "script_root": "/app",
        "path": "/where",
        "url": f"{server.url}/app/where",
        "for_new": "/app/new",
    }
