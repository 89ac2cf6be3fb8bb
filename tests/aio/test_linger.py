"""The lingering close after an error response.

Over real sockets: a client that has pipelined requests and keeps sending after a bad one gets
every answer and the error response, not a reset; the linger ends at its time and byte bounds,
and leaves no descriptor behind. In-process, with a fake transport and a hand-driven clock: the
exact moment each bound ends it, and that no timer or connection outlives it.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from peregrine.aio.connection import HttpConnection
from peregrine.aio.linger import Lingerer
from peregrine.aio.state import ServerState
from peregrine.config import Config

from ..helpers import ServerProcess, read_until_closed

APP = "tests.apps:Engine"
DEFAULT_LINGERING_TIMEOUT = Config().lingering_timeout
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
MALFORMED = b"GET / HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n"


def send_in_pieces(sock: socket.socket, data: bytes, size: int) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for start in range(0, len(data), size):
        sock.sendall(data[start : start + size])


def statuses(raw: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until_closed_by_server(sock: socket.socket, limit: float) -> float:
    """Keep sending a byte every 20 ms until the server's reset shows; return the time taken."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            sock.send(b"x")
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"the server kept the connection for more than {limit} s")


# --- over real sockets ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(APP, "--loop", request.param, "--max-body-size", "1000") as proc:
        yield proc


WRITES: dict[str, Callable[[socket.socket, bytes], None]] = {
    "one write": lambda sock, data: sock.sendall(data),
    "1460-byte writes": lambda sock, data: send_in_pieces(sock, data, 1460),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=list(WRITES))
def test_pipelined_answers_and_the_400_reach_a_client_that_keeps_sending(
    server: ServerProcess, write: Callable[[socket.socket, bytes], None]
) -> None:
    """200 pipelined GETs, a malformed request and 300 KB more: all 201 answers arrive, then EOF
    (closing at once used to reset the connection after a dozen answers)."""
    with server.connect() as sock:
        write(sock, GET * 200 + MALFORMED + b"x" * 300_000)
        raw = read_until_closed(sock)
    assert statuses(raw) == [b"200"] * 200 + [b"400"]


@pytest.mark.parametrize("write", WRITES.values(), ids=list(WRITES))
def test_413_reaches_a_client_sending_the_body_it_refuses(
    server: ServerProcess, write: Callable[[socket.socket, bytes], None]
) -> None:
    body = b"y" * 300_000
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    with server.connect() as sock:
        write(sock, GET * 50 + head + body)
        raw = read_until_closed(sock)
    assert statuses(raw) == [b"200"] * 50 + [b"413"]


@pytest.mark.parametrize("seconds", [0.5, 1.5])
def test_linger_ends_after_lingering_timeout(
    start_server: Callable[..., ServerProcess], seconds: float
) -> None:
    """The client reads the 400 and EOF but goes on sending: the server closes after the timeout.

    The exact instant is asserted in process (test_closes_exactly_at_lingering_timeout); here the
    real server is not earlier than the configured time, and the close comes before the default
    timeout could have made it (the limit of the wait, which fails the test clearly)."""
    server = start_server(APP, "--lingering-timeout", str(seconds))
    with server.connect() as sock:
        sock.sendall(MALFORMED)
        assert statuses(read_until_closed(sock)) == [b"400"]
        took = wait_until_closed_by_server(sock, DEFAULT_LINGERING_TIMEOUT - 0.5)
    assert took >= seconds - 0.1, took


def test_lingering_timeout_0_closes_at_once(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(APP, "--lingering-timeout", "0")
    with server.connect() as sock:
        sock.sendall(MALFORMED)
        assert statuses(read_until_closed(sock)) == [b"400"]
        # closed with no linger at all is asserted in process
        # (test_lingering_timeout_0_closes_at_once_in_process); here: closed before the default
        # timeout could have done it, so the 0 took effect (the limit fails the test clearly)
        wait_until_closed_by_server(sock, DEFAULT_LINGERING_TIMEOUT - 0.5)


def test_linger_ends_after_lingering_max_bytes(start_server: Callable[..., ServerProcess]) -> None:
    """A client that sends without end is cut off once lingering_max bytes are discarded, long
    before the timeout (an hour: only the byte bound can end the linger here)."""
    server = start_server(APP, "--lingering-timeout", "3600", "--lingering-max", "200000")
    sent = 0
    with server.connect(timeout=30) as sock:
        sock.sendall(MALFORMED)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while sent < 200_000_000:  # bound: far beyond anything the kernels buffer
                sock.sendall(b"z" * 65536)
                sent += 65536


def test_lingering_connections_leave_no_descriptor(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(APP, "--lingering-timeout", "0.3")
    pid = server.proc.pid
    with server.connect() as warm:  # the first connection makes the worker open what it keeps
        warm.sendall(GET)
        warm.recv(4096)
    time.sleep(0.2)
    before = open_fds(pid)
    clients = [server.connect() for _ in range(20)]
    for sock in clients:
        sock.sendall(GET * 3 + MALFORMED + b"x" * 10_000)
    for sock in clients:
        assert statuses(read_until_closed(sock)) == [b"200"] * 3 + [b"400"]
    assert open_fds(pid) >= before + 20  # the server lingers: the client has not closed
    deadline = time.monotonic() + 5
    while open_fds(pid) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds(pid) == before
    for sock in clients:
        sock.close()


# --- in-process, exact timing ---------------------------------------------------------------


class FakeTimer:
    def __init__(self, loop: FakeLoop, when: float, callback: Callable[..., Any], args: Any):
        self.loop, self.when, self.callback, self.args = loop, when, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The few loop methods the connection and the lingerer use, on a clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> FakeTimer:
        timer = FakeTimer(self, when, callback, args)
        self.timers.append(timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> FakeTimer:
        return self.call_at(self.now + delay, callback, *args)

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance_to(self, moment: float) -> None:
        """Move the clock, running every timer due on the way, in order."""
        while True:
            due = sorted((t for t in self.pending() if t.when <= moment), key=lambda t: t.when)
            if not due:
                break
            timer = due[0]
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback(*timer.args)
        self.now = moment


class FakeTransport:
    """Records what the protocol does to it; ``buffered`` is the unsent output it reports."""

    def __init__(self, eof_capable: bool = True) -> None:
        self.protocol: Any = None
        self.written = b""
        self.buffered = 0
        self.eof_capable = eof_capable
        self.eof_written = False
        self.reading = True
        self.closed = False
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def can_write_eof(self) -> bool:
        return self.eof_capable

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class Hello:
    def handle_request(self, req: Any, resp: Any) -> None:
        if req.path == "/raise":
            raise RuntimeError("handler bug")
        resp.set_body(b"hello")


def make_state(**options: Any) -> tuple[ServerState, FakeLoop]:
    loop = FakeLoop()
    config = Config(**{"lingering_timeout": 5.0, "lingering_max": 1000, **options})
    return ServerState(config, Hello(), loop), loop  # type: ignore[arg-type]


def lingering(**options: Any) -> tuple[Lingerer, FakeTransport, ServerState, FakeLoop]:
    state, loop = make_state(**options)
    transport = FakeTransport()
    lingerer = Lingerer(transport, state)  # type: ignore[arg-type]
    lingerer.start()
    return lingerer, transport, state, loop


def finish(lingerer: Lingerer, transport: FakeTransport) -> None:
    """What the transport does once closed or aborted: tell its protocol."""
    assert transport.is_closing()
    lingerer.connection_lost(None)


def test_start_half_closes_and_reads() -> None:
    lingerer, transport, state, loop = lingering()
    assert transport.protocol is lingerer
    assert transport.eof_written and transport.reading
    assert state.connections == {lingerer}
    assert [t.when for t in loop.pending()] == [loop.now + 5.0]


def test_tls_transport_is_not_half_closed() -> None:
    state, _ = make_state()
    transport = FakeTransport(eof_capable=False)
    Lingerer(transport, state).start()  # type: ignore[arg-type]
    assert not transport.eof_written and transport.reading


def test_closes_exactly_at_lingering_timeout() -> None:
    lingerer, transport, state, loop = lingering()
    start = loop.now
    loop.advance_to(start + 4.999)
    lingerer.data_received(b"x" * 10)
    assert not transport.is_closing()
    loop.advance_to(start + 5.0)
    assert transport.closed and not transport.aborted
    finish(lingerer, transport)
    assert not state.connections and not loop.pending()


def test_closes_when_more_than_lingering_max_bytes_arrive() -> None:
    lingerer, transport, state, loop = lingering()
    lingerer.data_received(b"x" * 600)
    lingerer.data_received(b"x" * 400)  # exactly lingering_max: still reading
    assert not transport.is_closing()
    lingerer.data_received(b"x")
    assert transport.closed
    assert not loop.pending()  # the timer went with it
    finish(lingerer, transport)
    assert not state.connections


def test_client_eof_lets_the_transport_close_and_cancels_the_timer() -> None:
    lingerer, transport, state, loop = lingering()
    assert not lingerer.eof_received()  # falsy: the transport closes itself
    assert not loop.pending()
    transport.close()
    finish(lingerer, transport)
    assert not state.connections


def test_output_still_draining_extends_the_linger() -> None:
    lingerer, transport, _, loop = lingering()
    start = loop.now
    transport.buffered = 50_000
    lingerer.backlog = 60_000  # it has shrunk since the timer was set
    loop.advance_to(start + 5.0)
    assert not transport.is_closing()
    assert [t.when for t in loop.pending()] == [start + 10.0]
    loop.advance_to(start + 10.0)  # 50,000 still: the client stopped reading
    assert transport.aborted


def test_output_nobody_reads_is_dropped_at_the_timeout() -> None:
    state, loop = make_state()
    transport = FakeTransport()
    transport.buffered = 70_000
    lingerer = Lingerer(transport, state)  # type: ignore[arg-type]
    lingerer.start()
    loop.advance_to(loop.now + 5.0)
    assert transport.aborted and not transport.closed
    finish(lingerer, transport)
    assert not state.connections and not loop.pending()


def test_connection_lost_while_lingering_cancels_the_timer() -> None:
    lingerer, transport, state, loop = lingering()
    lingerer.connection_lost(ConnectionResetError())
    assert not loop.pending() and not state.connections


def test_graceful_shutdown_waits_for_the_linger() -> None:
    lingerer, transport, _, _ = lingering()
    assert not lingerer.is_idle()
    lingerer.shutdown()
    assert not transport.is_closing()


def connection(**options: Any) -> tuple[HttpConnection, FakeTransport, ServerState, FakeLoop]:
    state, loop = make_state(**options)
    transport = FakeTransport()
    conn = HttpConnection(state)
    conn.connection_made(transport)  # type: ignore[arg-type]
    transport.protocol = conn
    return conn, transport, state, loop


def test_error_response_hands_the_connection_to_a_lingerer() -> None:
    conn, transport, state, loop = connection()
    conn.data_received(GET * 2 + MALFORMED + b"x" * 100)
    assert statuses(transport.written) == [b"200", b"200", b"400"]
    lingerer = transport.protocol
    assert isinstance(lingerer, Lingerer)
    assert state.connections == {lingerer}  # the HTTP connection has let go
    assert [t.callback for t in loop.pending()] == [lingerer._on_timer]  # its timers are gone
    assert transport.reading and transport.eof_written and not transport.is_closing()
    loop.advance_to(loop.now + 5.0)
    assert transport.closed
    finish(lingerer, transport)
    assert not state.connections and not loop.pending()


def test_408_lingers_too() -> None:
    conn, transport, state, loop = connection(header_timeout=2.0)
    conn.data_received(b"GET / HTTP/1.1\r\nHo")
    loop.advance_to(loop.now + 2.0)
    assert statuses(transport.written) == [b"408"]
    assert isinstance(transport.protocol, Lingerer)
    assert not transport.is_closing()


def test_500_from_a_failing_handler_lingers_and_leaves_no_timer_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, transport, state, loop = connection()
    conn.data_received(GET + b"GET /raise HTTP/1.1\r\nHost: t\r\n\r\n" + GET + b"GET /x")
    assert statuses(transport.written) == [b"200", b"500"]
    lingerer = transport.protocol
    assert isinstance(lingerer, Lingerer)
    assert [t.callback for t in loop.pending()] == [lingerer._on_timer]
    assert state.connections == {lingerer}
    assert "handler failed" in caplog.text


def test_lingering_timeout_0_closes_at_once_in_process() -> None:
    conn, transport, state, loop = connection(lingering_timeout=0)
    conn.data_received(MALFORMED + b"x" * 100)
    assert statuses(transport.written) == [b"400"]
    assert transport.protocol is conn and transport.closed


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_tls_client_gets_every_answer_and_the_400(
    start_server: Callable[..., ServerProcess], tmp_path: Path, loop: str
) -> None:
    """Over TLS the sending side cannot be shut down alone (no write_eof): the lingerer takes
    over the TLS transport all the same, reads what the client sends, and closes at the timeout
    with nothing left unread."""
    ca = trustme.CA()
    certfile = str(tmp_path / "server.pem")
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certfile)
    server = start_server(
        APP, "--ssl-certfile", certfile, "--loop", loop, "--lingering-timeout", "0.5"
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with context.wrap_socket(server.connect(), server_hostname="127.0.0.1") as sock:
        sock.sendall(GET * 200 + MALFORMED + b"x" * 300_000)
        raw = read_until_closed(sock)
    assert statuses(raw) == [b"200"] * 200 + [b"400"]
