"""ASGI applications served over HTTP/2: the same adapter, one stream per request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peregrine.http2 import frames as f

from ..aio.h2client import H2Client
from ..helpers import ServerProcess
from .test_http import wait_for_mark


def client(server: ServerProcess, **kwargs: object) -> H2Client:
    return H2Client(server.host, server.port, **kwargs)  # type: ignore[arg-type]


def test_scope_says_http_version_2(raw_server: ServerProcess) -> None:
    with client(raw_server) as h2:
        stream = h2.get("/scope?a=1", headers=[("x-twice", "1"), ("x-twice", "2")])
    scope = json.loads(stream.body)
    assert scope["http_version"] == "2" and scope["scheme"] == "http"
    assert scope["method"] == "GET" and scope["path"] == "/scope"
    assert scope["query_string"] == "a=1"
    assert scope["headers"] == [["host", "localhost"], ["x-twice", "1"], ["x-twice", "2"]]


def test_body_streams_to_the_app_beyond_one_window(raw_server: ServerProcess) -> None:
    """90,000 bytes with a 65,535-byte stream window: the window comes back as the app reads."""
    body = bytes(range(256)) * 351 + b"x" * 144
    with client(raw_server) as h2:
        stream = h2.wait(h2.request("POST", "/echo", body=body))[0]
    assert stream.status == 200 and bytes(stream.body) == body
    assert int(stream.headers["x-messages"]) >= 2


def test_expect_continue_is_sent_when_the_app_reads(raw_server: ServerProcess) -> None:
    with client(raw_server) as h2:
        sid = h2.request("POST", "/echo", headers=[("expect", "100-continue")], end=False)
        while not h2.streams[sid].informational:
            h2.read_once()
        assert h2.streams[sid].informational == [100]
        h2.send_body(sid, b"after the 100")
        assert bytes(h2.wait(sid)[0].body) == b"after the 100"
        ignored = h2.request(
            "POST", "/ignore-body", headers=[("expect", "100-continue")], end=False
        )
        (stream,) = h2.wait(ignored)  # answered without reading: no 100
        assert stream.informational == [] and stream.body == b"ignored"


def test_too_large_body_gets_413(raw_server: ServerProcess) -> None:
    with client(raw_server) as h2:
        declared = h2.request("POST", "/echo", body=b"x" * 100_001)
        assert h2.wait(declared)[0].status == 413
        assert h2.get("/ignore-body").body == b"ignored"


def test_responses_in_every_shape(raw_server: ServerProcess, served_file: Path) -> None:
    with client(raw_server) as h2:
        assert h2.get("/stream").body == b"part0;part1;part2;"
        sized = h2.get("/stream-length")
        assert sized.body == b"0123456789" and sized.headers["content-length"] == "10"
        short = h2.get("/short")  # ends 5 bytes short of its content-length: reset, not complete
        assert short.reset_code == f.INTERNAL_ERROR
        head = h2.wait(h2.request("HEAD", "/head-length"))[0]
        assert head.headers["content-length"] == "1234" and head.body == b""
        assert h2.get("/status?204").body == b""
        assert bytes(h2.get("/pathsend").body) == served_file.read_bytes()
        assert h2.get("/ignore-body").status == 200  # the connection went on throughout


@pytest.mark.parametrize("query", ["", "?big"])
def test_trailers_end_the_stream_when_the_client_accepts_them(
    raw_server: ServerProcess, query: str
) -> None:
    """``?big``: 200,000 bytes, more than the client's window, so the trailers wait behind them."""
    with client(raw_server) as h2:
        stream = h2.get(f"/trailers{query}", headers=[("te", "trailers")])
        size = 200_000 if query else 10
        assert stream.status == 200 and len(stream.body) == size and stream.reset_code is None
        assert stream.trailers == {"x-checksum": str(size), "x-status": "ok"}
        sized = h2.get("/trailers-length", headers=[("te", "trailers")])
        assert sized.headers["content-length"] == "10" and sized.body == b"0123456789"
        assert sized.trailers == {"x-checksum": "10", "x-status": "ok"}


def test_trailers_are_dropped_when_the_client_did_not_ask(raw_server: ServerProcess) -> None:
    with client(raw_server) as h2:
        for path in ("/trailers", "/trailers-length", "/trailers-bad", "/trailers-missing"):
            stream = h2.get(path)
            assert stream.body == b"0123456789" and stream.trailers is None, path
            assert stream.reset_code is None


def test_invalid_or_missing_trailers_reset_the_stream(raw_server: ServerProcess) -> None:
    with client(raw_server) as h2:
        for path in ("/trailers-bad", "/trailers-missing"):
            stream = h2.get(path, headers=[("te", "trailers")])
            assert stream.reset_code == f.INTERNAL_ERROR and stream.trailers is None, path
        assert h2.get("/ignore-body").body == b"ignored"  # the other streams go on


def test_application_errors(raw_server: ServerProcess) -> None:
    with client(raw_server) as h2:
        assert h2.get("/raise-before").status == 500
        assert h2.get("/no-response").status == 500
        assert h2.get("/bad-header").status == 500
        after = h2.get("/raise-after")
        assert after.body == b"partial" and after.reset_code == f.INTERNAL_ERROR
        assert h2.get("/ignore-body").status == 200


def test_reset_stream_is_a_disconnect_for_the_app(raw_server: ServerProcess, marks: Path) -> None:
    with client(raw_server) as h2:
        sid = h2.request("GET", "/wait-disconnect")
        while b"waiting" not in h2.streams[sid].body:
            h2.read_once()
        h2.conn.reset_stream(sid)
        h2.flush()
        assert wait_for_mark(marks, "wait-disconnect") == "http.disconnect"
        assert h2.get("/ignore-body").status == 200  # only that stream ended


def test_streams_run_concurrently(raw_server: ServerProcess) -> None:
    """Eight streams of one connection are inside the application at the same time."""
    with client(raw_server) as h2:
        streams = h2.wait([h2.request("GET", "/barrier?8") for _ in range(8)], timeout=20)
    assert [s.body for s in streams] == [b"together"] * 8


def test_big_stream_to_a_small_window(raw_server: ServerProcess) -> None:
    with client(raw_server, settings={f.SETTINGS_INITIAL_WINDOW_SIZE: 16_384}) as h2:
        stream = h2.get("/big-stream?20")
    assert len(stream.body) == 20 * 65536


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.asgi.frameworks:starlette_app") as server:
        yield server


def test_starlette_over_httpx_http2(starlette_server: ServerProcess) -> None:
    with httpx.Client(http1=False, http2=True) as http:
        hello = http.get(f"{starlette_server.url}/hello", params={"name": "h2"})
        upload = http.post(
            f"{starlette_server.url}/upload",
            data={"title": "report"},
            files={"file": ("a.txt", b"x" * 50000, "text/plain")},
        )
        numbers = http.get(f"{starlette_server.url}/numbers")
    assert hello.http_version == "HTTP/2" and hello.text == "hello h2"
    assert upload.json() == {"title": "report", "file": "a.txt"}
    assert numbers.text == "0\n1\n2\n3\n4\n"
