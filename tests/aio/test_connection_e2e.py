"""The HTTP/1.x engine end to end: real servers, real sockets.

Well-formed traffic goes through httpx; malformed input, misbehaving clients and resets go through
raw sockets. Servers run ``tests.apps:Engine`` in a subprocess, exactly as ``python -m peregrine
run`` runs it. Timers, pipelining, flow control, upgrades and shutdown are tested in process and
to the instant in ``test_connection.py``; what stays here needs the kernel or a whole server.
"""

from __future__ import annotations

import email.utils
import re
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from ..helpers import ServerProcess, raw_exchange, read_until_closed
from .apps import REUSED_BODY_SIZE

APP = "tests.apps:Engine"


# --- fixtures and a buffered response reader ---------------------------------------------------------


@pytest.fixture(scope="module")
def misc() -> Iterator[ServerProcess]:
    """No Server header, access log on."""
    with ServerProcess(APP, "--server-header", "false", "--access-log") as proc:
        yield proc


def connect(
    server: ServerProcess, rcvbuf: int | None = None, timeout: float = 10.0
) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout)
    sock.connect((server.host, server.port))
    return sock


class Response:
    def __init__(
        self, status: int, headers: list[tuple[str, str]], body: bytes, head: bytes
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.head = head

    def get(self, name: str) -> str | None:
        values = self.getall(name)
        return values[0] if values else None

    def getall(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:80]!r}>"


class Reader:
    """Reads successive responses off one socket, keeping what follows each one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._more():
                raise ConnectionError(f"closed mid-line: {self.buf!r}")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise ConnectionError(f"closed after {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head_only: bool = False) -> Response:
        """One response; ``head_only`` for answers to HEAD. A body without framing runs to the close."""
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                raise ConnectionError(f"closed before a complete head: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [
            (n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])
        ]
        resp = Response(status, headers, b"", head)
        if head_only or status < 200 or status in (204, 304):
            return resp
        if (resp.get("transfer-encoding") or "").lower() == "chunked":
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass  # trailers
                    break
                parts.append(self._exactly(size))
                assert self._exactly(2) == b"\r\n"
            resp.body = b"".join(parts)
        elif resp.get("content-length") is not None:
            resp.body = self._exactly(int(resp.get("content-length")))  # type: ignore[arg-type]
        else:
            while self._more():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the peer closes (EOF or reset) within ``timeout`` with nothing more to say."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        self.buf += data
        return not data


def exchange(server: ServerProcess, data: bytes, n: int = 1) -> tuple[list[Response], Reader]:
    sock = connect(server)
    sock.sendall(data)
    reader = Reader(sock)
    return [reader.response() for _ in range(n)], reader


def get(path: str, version: str = "1.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: test\r\n{extra}\r\n".encode()


# --- persistence ------------------------------------------------------------------------------------


class TestPersistence:
    """RFC 9112 §9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only with ``keep-alive``."""

    def test_httpx_reuses_one_connection(self, server: ServerProcess) -> None:
        with httpx.Client(base_url=server.url) as client:
            ports = {tuple(client.get("/echo").json()["client"]) for _ in range(5)}
        assert len(ports) == 1

    def test_request_keep_alive_attribute(self, server: ServerProcess) -> None:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/echo").json()["keep_alive"] is True
            assert (
                client.get("/echo", headers={"Connection": "close"}).json()["keep_alive"] is False
            )

    def test_half_closed_client_is_closed_after_its_response(self, server: ServerProcess) -> None:
        with connect(server) as sock:
            sock.sendall(get("/slow?s=0.2"))
            sock.shutdown(socket.SHUT_WR)
            reader = Reader(sock)
            assert reader.response().status == 200
            assert reader.closed(timeout=3.0)  # keep_alive_timeout is 5 s here


# --- request bodies --------------------------------------------------------------------------------


class TestBodies:
    def test_content_length(self, server: ServerProcess) -> None:
        body = bytes(range(256)) * 1000
        with httpx.Client(base_url=server.url) as client:
            echo = client.post("/echo", content=body).json()
        assert echo["body_length"] == len(body)
        assert echo["body"].encode("latin-1") == body

    def test_chunked(self, server: ServerProcess) -> None:
        def parts() -> Iterator[bytes]:
            for i in range(50):
                yield b"%d," % i

        with httpx.Client(base_url=server.url) as client:
            echo = client.post("/echo", content=parts()).json()
        assert ["Transfer-Encoding", "chunked"] in echo["headers"]
        assert echo["body"] == "".join(f"{i}," for i in range(50))

    def test_chunked_with_extensions_and_trailers(self, server: ServerProcess) -> None:
        data = (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;name=value;flag\r\nhello\r\n1;q="quoted; ext"\r\n \r\n5\r\nworld\r\n0;end\r\nX-Sum: 1\r\n\r\n'
            + get("/")
        )
        (echo, after), _ = exchange(server, data, 2)
        assert '"body": "hello world"' in echo.body.decode()
        assert after.body == b"ok"

    def test_expect_100_continue_chunked(self, server: ServerProcess) -> None:
        with connect(server) as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            reader = Reader(sock)
            assert reader.response().status == 100
            sock.sendall(b"3\r\nabc\r\n0\r\n\r\n")
            assert '"body": "abc"' in reader.response().body.decode()

    def test_ignored_body_is_consumed(self, server: ServerProcess) -> None:
        # the body looks like a request: if it were not consumed, it would be answered as one
        smuggled = get("/raise")
        data = (
            b"POST /status?code=201 HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
            % len(smuggled)
            + smuggled
            + get("/status?code=202")
        )
        (first, second), reader = exchange(server, data, 2)
        assert (first.status, second.status) == (201, 202)
        assert not reader.closed(timeout=0.3)

    def test_ignored_chunked_body_is_consumed(self, server: ServerProcess) -> None:
        smuggled = get("/raise")
        data = (
            b"POST /status?code=201 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
            + get("/status?code=202")
        )
        (first, second), _ = exchange(server, data, 2)
        assert (first.status, second.status) == (201, 202)

    def test_ignored_upgrade_without_body(self, server: ServerProcess) -> None:
        data = (
            b"GET /status?code=201 HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            + get("/status?code=202")
        )
        (first, second), _ = exchange(server, data, 2)
        assert (first.status, second.status) == (201, 202)

    def test_ignored_large_body_is_consumed(self, server: ServerProcess) -> None:
        body = b"z" * 900_000
        data = (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
            + get("/status?code=203")
        )
        (first, second), _ = exchange(server, data, 2)
        assert (first.body, second.status) == (b"ok", 203)


# --- bad input ------------------------------------------------------------------------------------------

H = b"Host: t\r\n"
BAD_INPUT = [
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("bad-request-line", b"GET\r\n\r\n", 400),
    ("bad-method", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("cr-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("lf-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\nb\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "cl-differing",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    ("cl-minus-1", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-plus-3", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1, 2\r\n\r\nab", 400),
    (
        "te-not-chunked-last",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    ("te-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    (
        "chunk-size-bad",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nxyz\r\n",
        400,
    ),
    (
        "chunk-size-overflow",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\n",
        400,
    ),
    ("uri-too-long", b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    (
        "too-many-fields",
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
        431,
    ),
    (
        "head-too-large",
        b"GET / HTTP/1.1\r\n"
        + H
        + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))
        + b"\r\n",
        431,
    ),
    ("body-too-large", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2000000\r\n\r\n", 413),
    (
        "chunked-too-large",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"100000\r\n"
        + b"c" * 0x100000
        + b"\r\n100000\r\n"
        + b"c" * 0x100000
        + b"\r\n0\r\n\r\n",
        413,
    ),
    (
        # one write: a kernel read holds the whole line, and the request must not complete
        "chunk-extension-of-40k",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n5;"
        + b"a" * 40000
        + b"\r\nabcde\r\n0\r\n\r\n",
        413,
    ),
    (
        "chunk-size-then-junk-of-40k",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n5 x"
        + b"a" * 40000
        + b"\r\n",
        400,
    ),
    ("version-2", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("version-1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("http09-line", b"GET /\r\n\r\n", 400),
    (
        "unknown-expectation",
        b"POST / HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
        417,
    ),
]


class TestBadInput:
    """A clear status, then the connection closed: never a hang, a crash or a desynchronised stream."""

    @pytest.mark.parametrize(
        "data, status", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
    )
    def test_status_then_close(self, server: ServerProcess, data: bytes, status: int) -> None:
        with connect(server) as sock:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may refuse before reading everything
            reader = Reader(sock)
            resp = reader.response()
            assert resp.status == status, resp
            assert resp.get("connection") == "close"
            assert resp.body.strip()  # a readable reason
            assert reader.closed()
            assert reader.buf == b""  # exactly one response

    def test_error_after_good_requests(self, server: ServerProcess) -> None:
        data = (
            get("/status?code=201")
            + get("/status?code=202")
            + b"GET / HTTP/1.1\r\nHost : t\r\n\r\n"
            + get("/")
        )
        (first, second, third), reader = exchange(server, data, 3)
        assert [first.status, second.status, third.status] == [201, 202, 400]
        assert reader.closed() and reader.buf == b""

    def test_413_before_the_body_is_sent(self, server: ServerProcess) -> None:
        with connect(server) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n\r\n")
            resp = Reader(sock).response()
        assert resp.status == 413

    def test_server_still_serves(self, server: ServerProcess) -> None:
        for _, data, _ in BAD_INPUT[:5]:
            raw_exchange(server, data)
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/").text == "ok"
        assert server.proc.poll() is None


# --- handler errors -------------------------------------------------------------------------------------


class TestHandlerErrors:
    def test_500_and_traceback_logged(self, server: ServerProcess) -> None:
        start = len(server.lines)
        (resp,), reader = exchange(server, get("/raise"))
        assert resp.status == 500
        assert b"boom" not in resp.body  # generic: no details leak
        assert resp.body.strip()
        assert server.wait_for_line("RuntimeError: boom from the handler", 5, start)
        assert server.wait_for_line("Traceback", 5, start)
        assert reader.closed()

    def test_async_500(self, server: ServerProcess) -> None:
        (resp,), _ = exchange(server, get("/async-raise"))
        assert resp.status == 500 and b"boom" not in resp.body

    def test_server_goes_on_serving(self, server: ServerProcess) -> None:
        for _ in range(3):
            exchange(server, get("/raise"))
            exchange(server, get("/async-raise"))
        with httpx.Client(base_url=server.url) as client:
            assert [client.get("/").text for _ in range(3)] == ["ok"] * 3

    def test_requests_before_the_failure_are_answered(self, server: ServerProcess) -> None:
        (first, second), reader = exchange(
            server, get("/status?code=201") + get("/raise") + get("/"), 2
        )
        assert (first.status, second.status) == (201, 500)
        assert reader.closed()

    def test_failure_mid_stream_cuts_the_connection(self, server: ServerProcess) -> None:
        with connect(server) as sock:
            sock.sendall(get("/stream-raise"))
            data = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"first part" in data
        assert not data.endswith(b"0\r\n\r\n")  # no clean end: the client can tell it is truncated
        assert exchange(server, get("/"))[0][0].body == b"ok"

    def test_header_injection_refused_on_the_live_path(self, server: ServerProcess) -> None:
        (resp,), _ = exchange(server, get("/header?v=a%0D%0ASet-Cookie:%20evil=1"))
        assert resp.status == 400 and resp.body.startswith(b"refused")
        assert resp.get("set-cookie") is None
        (resp,), _ = exchange(server, get("/header?v=a%00b"))
        assert resp.status == 400
        (resp,), _ = exchange(server, get("/header?v=fine"))
        assert resp.status == 200 and resp.get("x-test") == "fine"

    def test_invalid_status_from_the_handler_is_500(self, server: ServerProcess) -> None:
        (resp,), _ = exchange(server, get("/status?code=1000"))
        assert resp.status == 500

    def test_async_handler_raising_connection_error_is_a_500(self, start_server: object) -> None:
        """An async handler raises ``ConnectionRefusedError`` (its own outbound call failed).

        Expected ("a handler that raises -> 500 with a generic body, the traceback logged"):
        500 and a traceback. Guards against: the connection is reset, nothing is logged.
        """
        srv = start_server(FILE_APP)  # type: ignore[operator]
        start = len(srv.lines)
        data = raw_exchange(srv, get("/backend-down"))
        assert statuses(data) == [500], data
        assert srv.wait_for_line("ConnectionRefusedError", 5, start), srv.output


# --- timeouts -------------------------------------------------------------------------------------------


class TestTimeouts:
    """The send timeout over a real socket: the kernel's buffers fill, the transport pauses.

    Every read timeout, and the send timeout to the instant, is in ``test_connection.py``.
    """

    def test_send_timeout_for_a_client_that_stops_reading(self, short: ServerProcess) -> None:
        start = len(short.lines)
        with connect(short, rcvbuf=4096) as sock:
            sock.sendall(get("/big?n=30000000"))
            assert short.wait_for_line("send timeout", 10, start), short.output[-2000:]
            sock.settimeout(10)
            total = 0
            try:
                while True:
                    data = sock.recv(1 << 20)
                    if not data:
                        break
                    total += len(data)
            except ConnectionResetError:
                pass
        assert total < 30_000_000  # the rest was dropped, not kept for us


# --- streaming responses --------------------------------------------------------------------------------


class TestStreaming:
    def test_chunked_on_http11(self, server: ServerProcess) -> None:
        with httpx.Client(base_url=server.url) as client:
            resp = client.get("/stream?n=4")
            assert resp.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in resp.headers
            assert resp.text == "".join(f"part {i}\n" for i in range(4))
            resp = client.get("/iter?n=3")
            assert resp.text == "chunk 0\nchunk 1\nchunk 2\n"

    def test_connection_persists_after_a_stream(self, server: ServerProcess) -> None:
        (first, second, third), reader = exchange(
            server, get("/stream?n=2") + get("/iter?n=1") + get("/"), 3
        )
        assert (
            first.body == b"part 0\npart 1\n"
            and second.body == b"chunk 0\n"
            and third.body == b"ok"
        )

    @pytest.mark.parametrize(
        "path, body",
        [("/stream?n=3", b"part 0\npart 1\npart 2\n"), ("/iter?n=2", b"chunk 0\nchunk 1\n")],
    )
    def test_close_delimited_on_http10(self, server: ServerProcess, path: str, body: bytes) -> None:
        for extra in (b"", b"Connection: keep-alive\r\n"):
            data = raw_exchange(server, f"GET {path} HTTP/1.0\r\n".encode() + extra + b"\r\n")
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert (
                b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
            )
            assert b"connection: close" in head.lower()
            assert rest == body

    def test_stream_answers_connection_close(self, server: ServerProcess) -> None:
        (resp,), reader = exchange(server, get("/stream?n=1", extra="Connection: close\r\n"))
        assert resp.body == b"part 0\n"
        assert reader.closed()
        assert resp.get("connection") == "close"


# --- HEAD, bodiless statuses, server headers ------------------------------------------------------------


class TestResponseHeaders:
    def test_head_gets_the_headers_of_get_and_no_body(self, server: ServerProcess) -> None:
        data = b"HEAD /headers HTTP/1.1\r\nHost: t\r\n\r\n" + get("/headers")
        with connect(server) as sock:
            sock.sendall(data)
            reader = Reader(sock)
            head = reader.response(head_only=True)
            full = reader.response()  # parses only if HEAD sent no body
        assert full.body == b"0123456789"
        without_date = lambda r: [(n, v) for n, v in r.headers if n.lower() != "date"]  # noqa: E731
        assert without_date(head) == without_date(full)
        assert head.get("content-length") == "10" and head.getall("x-multi") == ["1", "2"]

    def test_head_of_a_stream(self, server: ServerProcess) -> None:
        data = b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n" + get("/status?code=201")
        with connect(server) as sock:
            sock.sendall(data)
            reader = Reader(sock)
            head = reader.response(head_only=True)
            assert head.status == 200
            assert reader.response().status == 201

    def test_head_of_a_large_body(self, server: ServerProcess) -> None:
        with httpx.Client(base_url=server.url) as client:
            resp = client.head("/big?n=500000")
            assert resp.headers["content-length"] == "500000" and resp.content == b""
            assert client.get("/").text == "ok"

    def test_empty_body_has_content_length_zero(self, server: ServerProcess) -> None:
        (resp,), _ = exchange(server, get("/empty"))
        assert resp.getall("content-length") == ["0"] and resp.body == b""

    @pytest.mark.parametrize("code", [204, 304])
    def test_bodiless_statuses(self, server: ServerProcess, code: int) -> None:
        # the handler set a body: it must not be sent, nor a Content-Length
        (resp, after), reader = exchange(server, get(f"/status?code={code}") + get("/"), 2)
        assert resp.status == code and resp.get("content-length") is None
        assert after.body == b"ok"  # the stream stayed in sync

    def test_date_and_server(self, server: ServerProcess) -> None:
        (resp,), _ = exchange(server, get("/"))
        assert resp.get("server") == "peregrine"
        date = resp.get("date")
        assert date and re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", date)
        # a real process's Date is the machine's time in GMT (a time zone slip would be hours
        # off); when and how it is refreshed is exact in test_state.py, on the hand-moved clock
        assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 60
        assert len(resp.getall("date")) == 1 and len(resp.getall("server")) == 1

    def test_error_responses_carry_date_and_server(self, server: ServerProcess) -> None:
        data = raw_exchange(server, b"GET / HTTP/1.1\r\n\r\n")
        assert b"\r\nDate: " in data and b"\r\nServer: peregrine\r\n" in data

    def test_server_header_off(self, misc: ServerProcess) -> None:
        (resp,), _ = exchange(misc, get("/"))
        assert resp.get("server") is None and resp.get("date")
        data = raw_exchange(misc, b"GET / HTTP/1.1\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 400 ") and b"\r\nServer:" not in data


# --- limits, concurrency, logging ---------------------------------------------------------------------------


class TestServer:
    def test_resets_in_every_phase_free_the_connection(self, start_server: object) -> None:
        # every close path (resets included) must release the connection and its timers
        srv = start_server(APP, "--max-connections", "3")  # type: ignore[operator]
        start = len(srv.lines)
        phases = [
            b"GET / HT",  # in the head
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",  # in the body
            get("/slow?s=0.5"),  # handler running
            get("/produce?n=500"),  # stream paused
            get("/big?n=5000000"),  # large write pending
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            get("/"),  # idle keep-alive
        ]
        for _ in range(2):
            for data in phases:
                sock = connect(srv, rcvbuf=4096)
                sock.sendall(data)
                time.sleep(0.05)
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                sock.close()  # RST
        time.sleep(0.7)  # the slow handlers finish on closed connections
        held = [connect(srv) for _ in range(3)]  # all three slots are free again
        try:
            for sock in held:
                sock.sendall(get("/"))
                assert Reader(sock).response().body == b"ok"
        finally:
            for sock in held:
                sock.close()
        noise = [line for line in srv.lines[start:] if "Traceback" in line or "Exception" in line]
        assert noise == [], srv.output

    def test_access_log(self, misc: ServerProcess) -> None:
        start = len(misc.lines)
        with httpx.Client(base_url=misc.url) as client:
            client.get("/status?code=201")
        line = misc.wait_for_line(r'"GET /status\?code=201 HTTP/1\.1" 201 4 \d+us', 5, start)
        assert line and "127.0.0.1" in line

    def test_no_access_log_by_default(self, server: ServerProcess) -> None:
        start = len(server.lines)
        exchange(server, get("/status?code=202"))
        exchange(server, get("/raise"))  # logs something, so the output is flushed
        assert server.wait_for_line("boom", 5, start)
        assert not any('"GET /status?code=202' in line for line in server.lines[start:])


FILE_APP = "tests.aio.apps:FileApp"


def count(server: ServerProcess) -> int:
    """Engine's ``/count`` side effect: how many times its handler has run (this call included)."""
    data = raw_exchange(server, get("/count", extra="Connection: close\r\n"))
    return int(data.rpartition(b"\r\n\r\n")[2])


def statuses(data: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


class TestStreamSync:
    def test_declined_upgrade_then_close_runs_no_further_handler(
        self, server: ServerProcess
    ) -> None:
        """Upgrade request answered with ``Connection: close``, a ``/count`` pipelined behind it.

        Expected: one response, then the close; ``/count`` never runs. Guards against: ``/count`` runs
        (its answer is dropped), i.e. a request is executed on a connection already closed.
        """
        before = count(server)
        data = raw_exchange(
            server,
            b"GET /close HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
            b"Upgrade: foo\r\n\r\n" + get("/count"),
            timeout=5,
        )
        assert statuses(data) == [200]
        assert count(server) == before + 1  # only the call just made

    def test_connect_body_is_not_parsed_as_a_request(self, server: ServerProcess) -> None:
        """``CONNECT /x`` with ``Content-Length: N`` whose N bytes are ``GET /count ...``.

        Expected: 400 (CONNECT needs authority-form), then the close. Guards against:
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
        assert statuses(data) == [400]  # and the connection closed with it


class TestSending:
    def test_graceful_shutdown_finishes_a_large_response(self, start_server: object) -> None:
        """SIGTERM while a reading client downloads a 20 MB body (sync handler).

        Expected (requests in flight finish within graceful_timeout): the whole body.
        Guards against: the connection is aborted after a few MB, no warning logged.
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

        Expected: silence (a routine disconnect, as for every other phase). Guards against: ERROR
        ``handler failed on GET /slow-file`` plus a RuntimeError traceback.
        """
        srv = start_server(FILE_APP, "--loop", loop)  # type: ignore[operator]
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


class TestResponseDetails:
    def test_access_log_duration_of_a_file_response(self, start_server: object) -> None:
        srv = start_server(FILE_APP, "--access-log")  # type: ignore[operator]
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


REUSED_BUFFER_APP = "tests.aio.apps:ReusedBufferApp"


@pytest.fixture(scope="module")
def reused_buffer_server() -> Iterator[ServerProcess]:
    with ServerProcess(REUSED_BUFFER_APP) as proc:  # uvloop (the default when installed)
        yield proc


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def test_body_is_what_the_handler_set(reused_buffer_server: ServerProcess) -> None:
    """150 pipelined ``/reused?i=N`` to a client that reads nothing for 0.5 s: each handler
    writes ``"%06d" % N`` 10,000 times into one bytearray and sets it as ``resp.body``. The
    socket fills (9 MB), so a body waits in the transport while the next handler rewrites the
    buffer. A body that is not ``bytes`` must be copied when the handler returns (handing 1-64 KB
    bodies to uvloop as they were broke this): response N carries N only."""
    count = 150
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect((reused_buffer_server.host, reused_buffer_server.port))
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
        if body != b"%06d" % i * (REUSED_BODY_SIZE // 6):
            wrong.append(f"response {i}: {sorted(set(re.findall(rb'[0-9]{6}', body)))[:4]}")
    assert not wrong, "bodies changed after their handler returned: " + "; ".join(wrong[:5])
