"""The access log: every answer, named fields, JSON, microsecond durations."""

from __future__ import annotations

import json
import logging
import re
import socket
import time

import pytest

from peregrine.accesslog import DEFAULT_FORMAT, FIELDS
from peregrine.testing import Client

from .apps import Behaviours
from .helpers import ServerProcess


@pytest.fixture
def access_lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="peregrine.access")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "peregrine.access"]


def fields(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.access for r in caplog.records if r.name == "peregrine.access"]  # type: ignore[attr-defined]


def test_default_line(access_lines: pytest.LogCaptureFixture) -> None:
    with Client(Behaviours, access_log=True) as client:
        client.get("/status?code=201")
    [line] = messages(access_lines)
    assert re.fullmatch(r'127\.0\.0\.1:50000 - "GET /status\?code=201 HTTP/1\.1" 201 4 \d+us', line)


def test_every_field_in_a_format(access_lines: pytest.LogCaptureFixture) -> None:
    fmt = " ".join(f"{name}={{{name}}}" for name in FIELDS)
    with Client(Behaviours, access_log_format=fmt) as client:
        client.post(
            "/status?code=202",
            content=b"abc",
            headers={
                "User-Agent": 'agent "quoted"',
                "Referer": "https://example.test/from",
                "X-Request-ID": "req-42",
            },
        )
    [line] = messages(access_lines)
    line = re.sub(r"duration_us=\d+", "duration_us=N", line)
    assert line == (
        "client=127.0.0.1:50000 method=POST path=/status query=code=202 "
        "target=/status?code=202 version=1.1 status=202 bytes=4 duration_us=N "
        "user_agent=agent \\x22quoted\\x22 referer=https://example.test/from request_id=req-42"
    )


def test_json_lines(access_lines: pytest.LogCaptureFixture) -> None:
    with Client(Behaviours, access_log_json=True) as client:
        client.get("/", headers={"User-Agent": "tester"})
    [line] = messages(access_lines)
    record = json.loads(line)
    assert set(record) == set(FIELDS)
    assert record["status"] == 200 and record["user_agent"] == "tester"
    assert record["referer"] == "-" and record["request_id"] == "-"
    assert isinstance(record["duration_us"], int)


@pytest.mark.parametrize(
    "path, method, status, sent",
    [
        ("/big?n=5000", "GET", 200, 5000),
        ("/big?n=5000", "HEAD", 200, 0),
        ("/stream?n=3", "GET", 200, len(b"part 0\n") * 3),
        ("/iter?n=2", "GET", 200, len(b"chunk 0\n") * 2),
        ("/status?code=204", "GET", 204, 0),
        ("/raise", "GET", 500, len(b"500 Internal Server Error\n")),
    ],
)
def test_bytes_sent(
    access_lines: pytest.LogCaptureFixture, path: str, method: str, status: int, sent: int
) -> None:
    with Client(Behaviours, access_log=True) as client:
        assert client.request(method, path).status == status
    [record] = fields(access_lines)
    assert (record["status"], record["bytes"]) == (status, sent)


def test_handler_error_is_logged_with_the_request(access_lines: pytest.LogCaptureFixture) -> None:
    with Client(Behaviours, access_log=True) as client:
        client.get("/raise?x=1")
    [record] = fields(access_lines)
    assert record["status"] == 500 and record["method"] == "GET"
    assert record["target"] == "/raise?x=1"


def test_engine_answers_are_logged(access_lines: pytest.LogCaptureFixture) -> None:
    with Client(Behaviours, access_log=True, max_body_size=10, max_header_size=1024) as client:
        client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        client.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert [(r["status"], r["method"], r["path"]) for r in fields(access_lines)] == [
        (400, "-", "-"),
        (413, "-", "-"),
        (431, "-", "-"),
    ]


def test_durations_have_microsecond_resolution(access_lines: pytest.LogCaptureFixture) -> None:
    with Client(Behaviours, access_log=True) as client:
        for _ in range(20):
            client.get("/")
    durations = [r["duration_us"] for r in fields(access_lines)]
    # the event loop's clock (uvloop's) moves in whole milliseconds; perf_counter does not
    assert any(d % 1000 for d in durations), durations  # type: ignore[operator]


def test_off_by_default(access_lines: pytest.LogCaptureFixture) -> None:
    with Client(Behaviours) as client:
        client.get("/")
        client.send_raw(b"NOT HTTP\r\n\r\n")
    assert messages(access_lines) == []


def test_default_format_names_known_fields() -> None:
    names = re.findall(r"\{(\w+)\}", DEFAULT_FORMAT)
    assert names and set(names) <= set(FIELDS)


def test_a_real_server_logs_the_408_and_the_rest() -> None:
    with ServerProcess(
        "tests.apps:Behaviours", "--access-log-json", "--header-timeout", "0.5"
    ) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        with server.connect() as sock:
            sock.sendall(b"GET /slow")  # never finished: 408 after header_timeout
            sock.settimeout(5)
            assert _read_all(sock).startswith(b"HTTP/1.1 408")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and server.output.count('"status": ') < 2:
            time.sleep(0.05)
        records = [
            json.loads(line[line.index("{") :])
            for line in server.output.splitlines()
            if '"status": ' in line
        ]
    assert [r["status"] for r in records] == [200, 408]
    assert records[0]["client"].startswith("127.0.0.1:")


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_asgi_answers_are_logged(access_lines: pytest.LogCaptureFixture) -> None:
    from .test_testing import AsgiApp

    with Client(AsgiApp(), access_log=True) as client:
        assert client.post("/x", content=b"12345").status == 200
    [record] = fields(access_lines)
    assert (record["method"], record["path"], record["status"]) == ("POST", "/x", 200)
    assert record["bytes"] == len(b"POST /x  12345")
