"""Where a server listens: unix sockets, IPv6, inherited descriptors, systemd, proxies."""

from __future__ import annotations

import os
import socket
import stat

import httpx
import pytest

from ..helpers import ROOT, read_response
from .support import LaunchedServer, children, get, peregrine_argv, refuses, wait_until

PID_APP = "tests.process.apps:Pid"

APP = "tests.process.apps:Pid"
FDWRAP = str(ROOT / "tests" / "process" / "fdwrap.py")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_unix_socket_with_permissions(launched, tmp_path, workers: int) -> None:
    path = str(tmp_path / "peregrine.sock")
    server = LaunchedServer(
        peregrine_argv(
            "run", APP, "--uds", path, "--uds-permissions", "0o660", "--workers", str(workers)
        ),
        ready=r"serving on http\+unix://",
    )
    launched.append(server)
    assert path in server.output
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
        seen = {
            client.get("http://peregrine/", headers={"Connection": "close"}).text for _ in range(30)
        }
    assert all(text.startswith("pid=") for text in seen)
    assert server.stop() == 0
    assert not os.path.exists(path)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("workers", [1, 2])
def test_ipv6(start_server, workers: int) -> None:
    server = start_server(APP, "--host", "::1", workers=workers)
    assert server.url.startswith("http://[::1]:")
    assert get(server.url + "/").text.startswith("pid=")
    assert server.stop() == 0
    assert refuses("::1", server.port)


# Each case starts a real interpreter (fdwrap.py execs it: what a process manager does), ~0.3 s
# of CPU. Where the socket comes from is decided in make_listeners, the same for one worker
# (server.py) and a supervisor; the supervisor alone also asks whether the socket came from
# outside (uses_reuse_port): so each source with a supervisor, and one of them without.
@pytest.mark.parametrize(("mode", "workers"), [("fd", 2), ("systemd", 1), ("systemd", 2)])
def test_inherited_socket(start_server, mode: str, workers: int) -> None:
    server = start_server(script=[FDWRAP, mode, APP], workers=workers)
    assert f"fdwrap listens on port {server.port}\n" in server.output + "\n", server.output
    if workers > 1:
        assert len(children(server.proc.pid)) == workers
    seen = {get(server.url + "/").text for _ in range(40)}
    assert all(text.startswith("pid=") for text in seen)
    assert server.stop() == 0
    assert refuses(server.host, server.port)


def test_forwarded_headers_from_a_trusted_proxy(start_server) -> None:
    # in the workers a supervisor forks; one worker serving in the supervisor's place trusts its
    # proxy the same way (tests/http/test_forwarded.py, and the family test below)
    server = start_server(
        "tests.apps:Echo", "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8", workers=2
    )
    data = get(
        server.url + "/",
        headers={
            "X-Forwarded-For": "203.0.113.9, 10.1.1.1",
            "X-Forwarded-Proto": "https",
        },
    ).json()
    assert data["client"] == ["203.0.113.9", 0]
    assert data["scheme"] == "https"
    data = get(
        server.url + "/", headers={"Forwarded": 'for="[2001:db8::5]:4711";proto=https'}
    ).json()
    assert data["client"] == ["2001:db8::5", 4711]
    assert data["scheme"] == "https"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start_server) -> None:
    server = start_server("tests.apps:Echo", "--forwarded-allow-ips", "10.0.0.0/8", workers=2)
    data = get(
        server.url + "/",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=1.2.3.4",
        },
    ).json()
    assert data["client"][0] == "127.0.0.1"
    assert data["scheme"] == "http"


def test_forwarded_headers_family_can_be_pinned(start_server) -> None:
    # A proxy that writes only Forwarded: a client's own X-Forwarded-For must not win.
    server = start_server(
        "tests.apps:Echo",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--forwarded-headers",
        "forwarded",
        workers=1,
    )
    data = get(
        server.url + "/",
        headers={
            "X-Forwarded-For": "198.51.100.66",
            "Forwarded": "for=203.0.113.9;proto=https",
        },
    ).json()
    assert data["client"] == ["203.0.113.9", 0]
    assert data["scheme"] == "https"


def test_no_proxy_trusted_by_default(start_server) -> None:
    server = start_server("tests.apps:Echo", workers=1)
    data = get(server.url + "/", headers={"X-Forwarded-For": "203.0.113.9"}).json()
    assert data["client"][0] == "127.0.0.1"


def _uds_get(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200
    return body


def test_stopping_a_server_does_not_remove_another_servers_unix_socket(launched, tmp_path) -> None:
    path = str(tmp_path / "app.sock")
    first = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "1"),
        ready=r"serving on http\+unix://",
    )
    launched.append(first)
    os.unlink(path)  # e.g. a deploy script cleaning up, or see the next test
    second = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "2"),
        ready=r"serving on http\+unix://",
    )
    launched.append(second)
    assert first.stop() == 0
    assert os.path.exists(path), "stopping the first server removed the second server's socket"
    assert _uds_get(path).startswith(b"pid=")


def test_a_live_unix_socket_is_not_taken_over(launched, tmp_path) -> None:
    path = str(tmp_path / "app.sock")
    first = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "1"),
        ready=r"serving on http\+unix://",
    )
    launched.append(first)
    second = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "1"), ready=r"."
    )
    launched.append(second)
    # a refusing server exits within a second or two; a taking-over one says it is serving
    wait_until(lambda: second.proc.poll() is not None or "serving on" in second.output, timeout=8)
    assert "serving on" not in second.output, "a second server took over a live server's socket"
    assert second.proc.wait(5) != 0
    assert _uds_get(path) == f"pid={first.proc.pid}".encode()
