"""Regressions found in the review of the hot-path pass (646cef9), fixed since.

Every test runs a real server and speaks raw bytes.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

import peregrine

from ..apps import Engine
from ..helpers import ServerProcess, read_until_closed

APP = "tests.aio.test_hotpath_review:HotpathApp"
_SIZE = 60000  # above the size where bytes bodies go out without a copy (1 KB)
_BUFFER = bytearray(_SIZE)


class HotpathApp(Engine):
    """``Engine`` plus a handler that builds every answer in one reused buffer."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        if req.path == "/reused":
            # "%06d" % i, 10,000 times: the body of response i, written into the same buffer
            _BUFFER[:] = b"%06d" % int(req.query.get("i", "0")) * (_SIZE // 6)
            resp.body = _BUFFER  # type: ignore[assignment]  # the attribute: set_body would copy
            return None
        return super().handle_request(req, resp)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(APP) as proc:  # uvloop (the default when installed)
        yield proc


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def test_body_is_what_the_handler_set(server: ServerProcess) -> None:
    """150 pipelined ``/reused?i=N`` to a client that reads nothing for 0.5 s: each handler
    writes ``"%06d" % N`` 10,000 times into one bytearray and sets it as ``resp.body``. The
    socket fills (9 MB), so a body waits in the transport while the next handler rewrites the
    buffer. A body that is not ``bytes`` must be copied when the handler returns (646cef9 had
    handed 1-64 KB bodies to uvloop as they were): response N carries N only."""
    count = 150
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect((server.host, server.port))
    with sock:
        sock.sendall(
            b"".join(_get(f"/reused?i={i}") for i in range(count))
            + _get("/", "Connection: close\r\n")
        )
        time.sleep(0.5)  # the socket fills; the rest waits in the transport
        raw = read_until_closed(sock, 30)
    heads = [m.start() for m in re.finditer(rb"HTTP/1\.1 200 OK\r\n", raw)]
    assert len(heads) == count + 1, raw[-300:]
    wrong = []
    for i, (first, end) in enumerate(zip(heads, heads[1:], strict=False)):
        head, _, body = raw[first:end].partition(b"\r\n\r\n")
        assert b"Content-Length: 60000" in head
        if body != b"%06d" % i * (_SIZE // 6):
            wrong.append(f"response {i}: {sorted(set(re.findall(rb'[0-9]{6}', body)))[:4]}")
    assert not wrong, "bodies changed after their handler returned: " + "; ".join(wrong[:5])
