"""An answer that fails gets the same treatment in both modes (thread pool and ``--threads 0``):
classified by the kind of error, never by its message (``peregrine.wsgi.failure``)."""

from __future__ import annotations

import re

import pytest

from ..helpers import ServerProcess, read_until_closed

OVERRUN_LINE = "sent more than its Content-Length"

# (case, query of /failing-body, answer: "500" or "cut", a line the server logs for it)
CASES = [
    # the streamed body goes past its declared length once the head is out
    ("overrun-streamed", "declared=3&chunks=3&delay=0.2", "cut", OVERRUN_LINE),
    # the application's own ValueError, whose message names Content-Length, mid-body
    (
        "app-value-error-streamed",
        "chunks=4&fail_at=2&error=value&delay=0.2",
        "cut",
        "ValueError: the upstream sent a bad Content-Length",
    ),
    # the application's own ConnectionError mid-body: its error, not a client gone
    (
        "app-connection-error-streamed",
        "chunks=4&fail_at=2&error=connection&delay=0.2",
        "cut",
        "ConnectionRefusedError: the database refused",
    ),
    # the same errors before any output: a 500
    ("app-value-error-first", "chunks=3&fail_at=0&error=value", "500", "ValueError: the upstream"),
    (
        "app-connection-error-first",
        "chunks=3&fail_at=0&error=connection",
        "500",
        "ConnectionRefusedError: the database refused",
    ),
    # a body held whole that disagrees with its Content-Length: nothing is sent yet
    ("short-whole", "declared=10&chunks=1&list=1", "500", "declared Content-Length 10 and sent 2"),
    ("overrun-whole", "declared=3&chunks=2&list=1", "500", "declared Content-Length 3 and sent 4"),
]


def answer_kind(data: bytes) -> str:
    """``"500"``, ``"cut"`` (a 200 head, then a body that cannot look complete), or what came."""
    if data.startswith(b"HTTP/1.1 500 "):
        return "500"
    head, _, body = data.partition(b"\r\n\r\n")
    if not data.startswith(b"HTTP/1.1 200 "):
        return repr(data[:40])
    length = re.search(rb"Content-Length: (\d+)", head)
    if length is not None:
        return "cut" if len(body) < int(length.group(1)) else "complete"
    return "complete" if body.endswith(b"0\r\n\r\n") else "cut"


@pytest.mark.parametrize(("case", "query", "answer", "logged"), CASES, ids=[c[0] for c in CASES])
def test_a_failed_answer_is_classified_by_the_kind_of_error(
    server: ServerProcess, case: str, query: str, answer: str, logged: str
) -> None:
    start = len(server.lines)
    with server.connect() as sock:
        sock.sendall(f"GET /failing-body?{query}&tag={case} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = read_until_closed(sock)
    assert answer_kind(data) == answer
    assert server.wait_for_line(re.escape(logged), 5, start), server.lines[start:]
    request_lines = [line for line in server.lines[start:] if f"tag={case}" in line]
    overrun_said = any(OVERRUN_LINE in line for line in request_lines)
    assert overrun_said == (logged == OVERRUN_LINE), request_lines
