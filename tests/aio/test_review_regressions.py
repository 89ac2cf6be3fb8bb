"""Regressions found by a review of the HTTP engine (issue 2), each fixed since.

Every test runs a real server and speaks raw bytes. Each docstring says what is sent, what the
issue (or the RFC) expects, and what used to happen instead.

Timing margins are at least 0.4 s either side of every deadline involved, for a loaded 2-core box.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import tempfile
import time

import pytest

import peregrine

from ..apps import Engine
from ..helpers import ServerProcess, raw_exchange, read_until_closed
from .test_connection_e2e import connect, get

APP = "tests.apps:Engine"
REVIEW_APP = "tests.aio.test_review_regressions:ReviewApp"
_FILE_SIZE = 100_000


class ReviewApp(Engine):
    """``Engine`` plus file responses (``send_file``), which ``tests/apps.py`` has none of."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        if req.path == "/file":
            resp.send_file(_review_file())
            return None
        if req.path == "/slow-file":
            return self.slow_file(req, resp)
        if req.path == "/backend-down":
            return self.backend_down()
        return super().handle_request(req, resp)

    async def backend_down(self) -> None:
        await asyncio.sleep(0)
        raise ConnectionRefusedError("the handler's own backend refused it")

    async def slow_file(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        await asyncio.sleep(float(req.query.get("s", "0.5")))
        resp.send_file(_review_file())


def _review_file() -> str:
    path = os.path.join(tempfile.gettempdir(), f"peregrine-review-{os.getuid()}.bin")
    if not os.path.exists(path) or os.path.getsize(path) != _FILE_SIZE:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(b"f" * _FILE_SIZE)
        os.replace(tmp, path)
    return path


def count(server: ServerProcess) -> int:
    """Engine's ``/count`` side effect: how many times its handler has run (this call included)."""
    data = raw_exchange(server, get("/count", extra="Connection: close\r\n"))
    return int(data.rpartition(b"\r\n\r\n")[2])


def statuses(data: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


# --- request smuggling / handlers run for requests nobody will be answered ---------------------------


class TestStreamSync:
    def test_connect_body_is_not_parsed_as_a_request(self, server: ServerProcess) -> None:
        """``CONNECT /x`` with ``Content-Length: N`` whose N bytes are ``GET /count ...``.

        Expected: 400 (CONNECT needs authority-form), or the body consumed as the body. Observed:
        the body is executed as a second request (smuggling) and answered.
        """
        smuggled = get("/count")
        before = count(server)
        data = raw_exchange(
            server,
            b"CONNECT /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled
            + get("/", extra="Connection: close\r\n"),
            timeout=5,
        )
        assert count(server) == before + 1, data
        assert len(statuses(data)) <= 2  # at most the CONNECT's answer and the last GET


# --- send side ---------------------------------------------------------------------------------------


class TestSending:
    def test_graceful_shutdown_finishes_a_large_response(self, start_server: object) -> None:
        """SIGTERM while a reading client downloads a 20 MB body (sync handler).

        Expected (issue: requests in flight finish within graceful_timeout): the whole body.
        Observed: the connection is aborted after a few MB, no warning logged.
        """
        n = 20_000_000
        srv = start_server(APP)  # type: ignore[operator]
        sock = connect(srv, rcvbuf=65536)
        sock.sendall(get(f"/big?n={n}"))
        first = sock.recv(65536)
        time.sleep(0.3)
        srv.send_signal(signal.SIGTERM)
        data = first + read_until_closed(sock, 20)
        assert len(data.partition(b"\r\n\r\n")[2]) == n

    @pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
    def test_reset_before_send_file_is_not_a_handler_failure(
        self, start_server: object, loop: str
    ) -> None:
        """The client resets while an async handler sleeps, then the handler calls ``send_file``.

        Expected: silence (a routine disconnect, as for every other phase). Observed: ERROR
        ``handler failed on GET /slow-file`` plus a RuntimeError traceback.
        """
        srv = start_server(REVIEW_APP, "--loop", loop)  # type: ignore[operator]
        start = len(srv.lines)
        sock = connect(srv)
        sock.sendall(get("/slow-file?s=0.3"))
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
        time.sleep(0.6)
        assert statuses(raw_exchange(srv, get("/", extra="Connection: close\r\n"))) == [200]
        noise = [
            line for line in srv.lines[start:] if "Traceback" in line or "handler failed" in line
        ]
        assert noise == [], srv.output


# --- response details --------------------------------------------------------------------------------


class TestResponseDetails:
    def test_access_log_duration_of_a_file_response(self, start_server: object) -> None:
        srv = start_server(REVIEW_APP, "--access-log")  # type: ignore[operator]
        start = len(srv.lines)
        data = raw_exchange(srv, get("/file", extra="Connection: close\r\n"))
        assert statuses(data) == [200]
        raw_exchange(srv, get("/", extra="Connection: close\r\n"))
        line = srv.wait_for_line(r'"GET /file HTTP/1\.1" 200 \d+ \d+us', 5, start)
        assert line is not None
        duration_us = int(re.search(r" (\d+)us", line).group(1))  # type: ignore[union-attr]
        assert duration_us < 10_000_000, line

    def test_handler_connection_close_is_sent_once(self, server: ServerProcess) -> None:
        data = raw_exchange(server, get("/close"))
        head = data.partition(b"\r\n\r\n")[0].lower()
        assert head.count(b"\r\nconnection:") == 1, head
