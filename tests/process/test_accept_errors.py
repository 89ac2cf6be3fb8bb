"""Out of file descriptors (EMFILE): logged, retried after a pause, and the server goes on."""

from __future__ import annotations

import select
import socket

import pytest

from ..helpers import ROOT, read_response
from .support import get

LOWFD = str(ROOT / "tests" / "process" / "lowfd.py")
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("workers", [1, 2])
def test_emfile_is_survived(start_server, loop: str, workers: int) -> None:
    server = start_server(
        workers=workers, script=[LOWFD, "48", "run", "tests.process.apps:Pid", "--loop", loop]
    )
    clients = []
    for _ in range(60 * workers):
        sock = socket.create_connection((server.host, server.port), timeout=10)
        sock.sendall(REQUEST)
        clients.append(sock)
    assert server.wait_for_line(r"accept\(\) failed: \[Errno 24\]", 10), server.output
    # what was accepted gets answered; the rest waits in the listen queue (not reset)
    readable, _, _ = select.select(clients, [], [], 2.0)
    answered = set(readable)
    waiting = [sock for sock in clients if sock not in answered]
    assert waiting, "the limit was never reached"
    for sock in answered:
        status, _, _ = read_response(sock)
        assert status == 200
        sock.close()  # frees a descriptor in the server
    # once descriptors are free again, the waiting connections are accepted and served
    for sock in waiting:
        status, _, body = read_response(sock, timeout=10)
        assert status == 200 and body.startswith(b"pid="), body
        sock.close()
    assert get(server.url + "/").status_code == 200
    assert server.output.count("accept() failed") < 20  # rate-limited, no flood
    assert server.stop() == 0
