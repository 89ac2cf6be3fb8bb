"""A long response to a slow reader: the application waits, memory stays bounded, and the
engine keeps serving other connections (both modes)."""

from __future__ import annotations

import socket
import time

from ..helpers import ServerProcess, read_response

MiB = 1024 * 1024


def rss_kib(server: ServerProcess) -> int:
    with server.connect() as sock:
        sock.sendall(b"GET /rss HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200
    return int(body)


def read_exactly(sock: socket.socket, count: int, pause_every: int = 0, pause: float = 0.0) -> int:
    """Read ``count`` body bytes, pausing ``pause`` s after each ``pause_every`` bytes."""
    got = 0
    since_pause = 0
    while got < count:
        data = sock.recv(min(256 * 1024, count - got))
        if not data:
            break
        got += len(data)
        since_pause += len(data)
        if pause_every and since_pause >= pause_every:
            since_pause = 0
            time.sleep(pause)
    return got


def test_200mb_stream_to_a_slow_reader_stays_bounded_in_memory(server: ServerProcess) -> None:
    size = 200 * MiB
    for _ in range(3):  # warm up: the allocator and the pool threads reach their steady state
        rss_kib(server)
    before = rss_kib(server)
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /big?mb=200&length=1&tag=slow-reader HTTP/1.1\r\nHost: t\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200 ") and f"Content-Length: {size}".encode() in head
        got = read_exactly(sock, 20 * MiB)
        # The client stops reading: the application must wait, not the server buffer for it.
        time.sleep(1.5)
        during = rss_kib(server)  # answered meanwhile: the loop is not blocked
        got += read_exactly(sock, size - got, pause_every=8 * MiB, pause=0.05)
        after = rss_kib(server)
    assert got == size
    assert during - before < 16 * 1024, (before, during)
    assert after - before < 16 * 1024, (before, after)


def test_client_that_stops_reading_is_cut_after_the_send_timeout() -> None:
    with ServerProcess("tests.wsgi.apps:app", "--send-timeout", "1") as server:
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(b"GET /big?mb=500&tag=stalled HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.recv(65536)  # then read nothing: after the 1 s send timeout, the cut
            deadline = time.monotonic() + 10
            with server.connect() as probe:
                probe.sendall(b"GET /closed?tag=stalled HTTP/1.1\r\nHost: t\r\n\r\n")
                answer = read_response(probe)[2]
                while answer != b"yes" and time.monotonic() < deadline:
                    time.sleep(0.1)
                    probe.sendall(b"GET /closed?tag=stalled HTTP/1.1\r\nHost: t\r\n\r\n")
                    answer = read_response(probe)[2]
        assert answer == b"yes"  # the iterable was closed once the connection was cut
