"""Draining that a load balancer can see: the health path, ``drain_delay``, keep-alive on the way out.

Real servers in child processes, real signals, real sockets.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest

from ..helpers import read_response
from .support import get, refuses, wait_until

APP = "tests.process.drain_apps:Lifecycle"
HEALTH = ("--health-path", "/healthz")


def exchange(
    sock: socket.socket, method: str = "GET", path: str = "/"
) -> tuple[int, dict[str, str], bytes]:
    """One request on an open keep-alive connection; its response (HEAD: no body is read)."""
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    if method != "HEAD":
        return read_response(sock)
    sock.settimeout(10)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"closed before a complete head: {head!r}"
        head += byte
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    return int(lines[0].split()[1]), fields, b""


def wait_draining(server: object, workers: int, start: int = 0) -> None:
    """Wait until every worker has logged the start of its drain period."""
    assert wait_until(
        lambda: sum("draining for" in line for line in server.lines[start:]) >= workers,  # type: ignore[attr-defined]
        timeout=10,
    ), server.output  # type: ignore[attr-defined]


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server has closed ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_health_path_answers_200_while_serving_without_the_handler(
    start_server, workers: int
) -> None:
    server = start_server(APP, *HEALTH, workers=workers)
    with server.connect() as sock:
        for method in ("GET", "HEAD", "GET"):  # kept alive across checks
            status, headers, body = exchange(sock, method, "/healthz?probe=1")
            assert status == 200
            assert headers["cache-control"] == "no-store"
            assert "connection" not in headers
            assert body == (b"ok\n" if method == "GET" else b"")
    # other methods on the path, and other paths, are the application's
    with server.connect() as sock:
        status, _, body = exchange(sock, "POST", "/healthz")
        assert status == 200 and b"method=POST" in body
        status, _, body = exchange(sock, "GET", "/healthz/more")
        assert status == 200 and body.startswith(b"pid=")


def test_without_health_path_the_application_answers_it(start_server) -> None:
    server = start_server(APP)
    response = get(server.url + "/healthz")
    assert response.status_code == 200 and response.text.startswith("pid=")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drain_keeps_serving_with_health_503_and_connection_close(
    start_server, workers: int
) -> None:
    # A drain far longer than the checks below, however slow the machine: it is ended by a
    # second SIGTERM once they are done (that the delay ends the drain by itself is
    # test_idle_connections_left_alone_are_closed_when_the_drain_ends).
    server = start_server(APP, *HEALTH, "--drain-delay", "3600", workers=workers)
    idle = server.connect()  # a balancer's idle keep-alive connection, used once before
    status, headers, body = exchange(idle)
    assert status == 200 and "connection" not in headers and b"draining=False" in body
    server.send_signal(signal.SIGTERM)
    wait_draining(server, workers)
    # new connections are still accepted and served, each closed after its answer
    response = get(server.url + "/healthz")
    assert response.status_code == 503 and response.text == "draining\n"
    assert response.headers["connection"] == "close"
    with server.connect() as fresh:
        status, headers, body = exchange(fresh)
        assert status == 200 and headers["connection"] == "close"
        assert b"draining=True" in body  # handlers can see it (peregrine.lifecycle.draining)
        assert closed_by_server(fresh)
    # the idle connection was kept open: its next request is answered, with Connection: close
    status, headers, body = exchange(idle)
    assert status == 200 and headers["connection"] == "close" and b"draining=True" in body
    assert closed_by_server(idle)
    idle.close()
    # when the drain ends, accepting stops and the server exits cleanly
    assert not refuses(server.host, server.port)
    server.send_signal(signal.SIGTERM)
    assert wait_until(lambda: refuses(server.host, server.port), timeout=10)
    assert server.proc.wait(10) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_idle_connections_left_alone_are_closed_when_the_drain_ends(
    start_server, workers: int
) -> None:
    delay = 1.0
    server = start_server(APP, *HEALTH, "--drain-delay", str(delay), workers=workers)
    idle = server.connect()
    assert exchange(idle)[0] == 200
    start = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert closed_by_server(idle, timeout=delay + 5)
    assert time.monotonic() - start >= delay - 0.2, "closed before the drain period ended"
    idle.close()
    # the delay ended the drain by itself: accepting stops, and the server exits cleanly
    assert wait_until(lambda: refuses(server.host, server.port), timeout=10)
    assert server.proc.wait(10) == 0
    assert "ending the drain period now" not in server.output


@pytest.mark.parametrize("workers", [1, 2])
def test_second_sigterm_skips_the_drain_delay(start_server, workers: int) -> None:
    server = start_server(APP, *HEALTH, "--drain-delay", "60", workers=workers)
    server.send_signal(signal.SIGTERM)
    wait_draining(server, workers)
    assert get(server.url + "/healthz").status_code == 503  # still accepting: draining
    server.send_signal(signal.SIGTERM)
    # the drain would last 60 s: an exit within 10 s is the drain cut short (the wait only
    # makes a hang fail), and the log says the second signal ended it
    assert server.proc.wait(10) == 0
    assert server.wait_for_line("ending the drain period now", 5), server.output


def test_reload_old_workers_keep_idle_connections_and_close_after_one_more_answer(
    start_server,
) -> None:
    delay = 3.0
    server = start_server(APP, *HEALTH, "--drain-delay", str(delay), workers=2)
    idle = server.connect()
    status, _, body = exchange(idle)
    old_pid = body.split()[0]
    assert status == 200
    mark = len(server.lines)
    server.send_signal(signal.SIGHUP)
    # both slots are replaced; the old workers drain, and the keep-alive connection stays open
    wait_draining(server, 2, mark)
    status, headers, body = exchange(idle)
    assert status == 200 and headers["connection"] == "close"
    assert body.split()[0] == old_pid and b"draining=True" in body
    assert closed_by_server(idle)
    idle.close()
    # during the drain, new connections are served by old or new workers; after it, by the new
    assert get(server.url + "/").status_code == 200
    assert server.wait_for_line("reload complete", delay + 10, start=mark), server.output
    response = get(server.url + "/")
    assert response.status_code == 200 and "draining=False" in response.text
    assert get(server.url + "/healthz").status_code == 200


def test_asgi_app_gets_health_answered_by_the_server_and_lifespan_shutdown_after_the_drain(
    start_server, tmp_path
) -> None:
    mark = tmp_path / "shutdown"
    delay = 1.5
    server = start_server(
        "tests.process.drain_apps:asgi",
        *HEALTH,
        "--drain-delay",
        str(delay),
        "--lifespan",
        "on",
        env={"PEREGRINE_TEST_SHUTDOWN_MARK": str(mark)},
    )
    with server.connect() as sock:
        status, _, body = exchange(sock, "GET", "/healthz")
        assert status == 200 and body == b"ok\n"  # not the app's answer
        status, _, body = exchange(sock, "GET", "/")
        assert status == 200 and body == b"asgi draining=False"
    sent = time.time()
    server.send_signal(signal.SIGTERM)
    wait_draining(server, 1)
    assert get(server.url + "/healthz").status_code == 503
    response = get(server.url + "/")
    assert response.text == "asgi draining=True" and response.headers["connection"] == "close"
    assert not mark.exists(), "lifespan shutdown ran during the drain"
    assert server.proc.wait(10) == 0
    assert float(mark.read_text()) >= sent + delay - 0.2
