"""WSGI applications served over HTTP/2 (both modes: thread pool and on the loop)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from ..aio.h2client import H2Client
from ..helpers import ServerProcess


def client(server: ServerProcess) -> H2Client:
    return H2Client(server.host, server.port)


def test_environ_says_http_2(server: ServerProcess) -> None:
    with client(server) as h2:
        stream = h2.get("/environ?a=1")
    environ = json.loads(stream.body)
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["REQUEST_METHOD"] == "GET" and environ["QUERY_STRING"] == "a=1"
    assert environ["HTTP_HOST"] == "localhost"


def test_body_in_and_out(server: ServerProcess) -> None:
    body = bytes(range(256)) * 400  # 102,400 bytes: more than one stream window
    with client(server) as h2:
        echoed = h2.wait(h2.request("POST", "/echo", body=body))[0]
        streamed = h2.get("/stream?n=3")
    assert echoed.status == 200 and bytes(echoed.body) == body
    assert streamed.body == b"chunk 0\nchunk 1\nchunk 2\n"


def test_errors_and_files(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789" * 5000)
    with client(server) as h2:
        assert h2.get("/fail-before").status == 500
        sent = h2.get(f"/file?path={path}")
        assert bytes(sent.body) == path.read_bytes()
        assert h2.get("/environ").status == 200  # the connection went on


def test_httpx_http2(server: ServerProcess) -> None:
    with httpx.Client(http1=False, http2=True) as http:
        response = http.get(f"{server.url}/environ")
    assert response.http_version == "HTTP/2"
    assert response.json()["SERVER_PROTOCOL"] == "HTTP/2"
