"""CONNECT, the request-target forms and Host checks, end to end over a real socket.

CONNECT reaches the handler and its response is 501 Not Implemented unless the handler sets a
status of its own; either way the connection closes after it (Peregrine tunnels nothing), and the
bytes after the CONNECT head are never parsed as requests. A Host value outside the URI grammar,
a target with a fragment and asterisk-form for a method other than OPTIONS are 400. Each is sent
in one write and in pieces.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ..helpers import ServerProcess, read_until_closed

APP = "tests.aio.apps:TargetApp"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(APP) as proc:
        yield proc


def exchange(server: ServerProcess, pieces: list[bytes]) -> bytes:
    """Send ``pieces`` as separate writes, then read until the server closes."""
    with server.connect() as sock:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.05)  # so that the server reads them separately
            sock.sendall(piece)
        return read_until_closed(sock)


def in_pieces(data: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


CONNECT = b"CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n"
# tunnel bytes that look like a request: never parsed as one
AFTER = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize("cuts", [(), (3,), (12, 40)], ids=["one-write", "method-split", "split"])
def test_connect_is_answered_501_then_closed(server: ServerProcess, cuts: tuple[int, ...]) -> None:
    reply = exchange(server, in_pieces(CONNECT + AFTER, *cuts))
    assert reply.startswith(b"HTTP/1.1 501 ")
    assert reply.endswith(b"seen CONNECT tunnel.example:443")
    assert reply.count(b"HTTP/1.1 ") == 1  # closed after it: nothing after the head was served


def test_connect_a_handler_takes_keeps_its_status(server: ServerProcess) -> None:
    data = b"CONNECT proxy.example:443 HTTP/1.1\r\nHost: proxy.example:443\r\n\r\n"
    reply = exchange(server, [data + AFTER])
    assert reply.startswith(b"HTTP/1.1 403 ")
    assert reply.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["host-space", "host-bad-port", "fragment", "asterisk-get", "connect-origin-form"],
)
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split"])
def test_invalid_targets_and_hosts_are_400(server: ServerProcess, data: bytes, split: bool) -> None:
    pieces = in_pieces(data, len(data) - 8) if split else [data]
    reply = exchange(server, pieces)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"seen" not in reply


def test_valid_forms_reach_the_handler(server: ServerProcess) -> None:
    data = (
        b"OPTIONS * HTTP/1.1\r\nHost: [::1]:3000\r\n\r\n"
        b"GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
    )
    reply = exchange(server, [data])
    assert reply.count(b"HTTP/1.1 200 ") == 2
    assert b"seen OPTIONS *" in reply and b"seen GET /p" in reply
