"""ASGI HTTP over real sockets: the scope, streamed bodies both ways, errors, disconnects."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest

from ..helpers import ServerProcess, raw_exchange, read_response


def parse_responses(data: bytes, count: int) -> list[tuple[int, bytes]]:
    """(status, body) of the ``count`` responses to GETs in ``data``, read by h11 as a client."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    out: list[tuple[int, bytes]] = []
    for _ in range(count):
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        status, body = 0, b""
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append((status, body))
                break
            else:
                return out
        if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
            return out
        client.start_next_cycle()
    return out


def wait_for_mark(marks: Path, name: str, timeout: float = 5.0) -> str:
    path = marks / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"the app never wrote {name}")


class TestScope:
    def test_http_scope_has_every_key_of_the_spec(self, raw_server: ServerProcess) -> None:
        r = httpx.get(f"{raw_server.url}/scope?a=1&b=%20", headers={"X-Twice": "1"})
        scope = r.json()
        assert scope["type"] == "http"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert scope["http_version"] == "1.1"
        assert scope["method"] == "GET"
        assert scope["scheme"] == "http"
        assert scope["path"] == "/scope"
        assert scope["raw_path"] == "/scope"
        assert scope["query_string"] == "a=1&b=%20"
        assert scope["root_path"] == ""
        assert scope["client"][0] == "127.0.0.1"
        assert scope["server"] == ["127.0.0.1", raw_server.port]
        assert scope["state"] == {"started": "yes"}
        assert "http.response.pathsend" in scope["extensions"]
        assert "http.response.trailers" in scope["extensions"]
        assert ["x-twice", "1"] in scope["headers"]

    def test_header_names_are_lowercased_in_order_with_repeats(
        self, raw_server: ServerProcess
    ) -> None:
        request = (
            b"GET /scope HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\n"
            b"Connection: close\r\n\r\n"
        )
        body = raw_exchange(raw_server, request).partition(b"\r\n\r\n")[2]
        headers = json.loads(body)["headers"]
        assert headers == [
            ["host", "x"],
            ["x-a", "1"],
            ["x-b", "2"],
            ["x-a", "3"],
            ["connection", "close"],
        ]

    def test_path_is_percent_decoded_and_raw_path_is_not(self, raw_server: ServerProcess) -> None:
        request = b"GET /%73cope HTTP/1.0\r\n\r\n"
        scope = json.loads(raw_exchange(raw_server, request).partition(b"\r\n\r\n")[2])
        assert scope["path"] == "/scope"
        assert scope["raw_path"] == "/%73cope"
        assert scope["http_version"] == "1.0"


class TestRequestBody:
    def test_body_in_one_piece(self, raw_server: ServerProcess) -> None:
        r = httpx.post(f"{raw_server.url}/echo", content=b"hello")
        assert r.status_code == 200
        assert r.content == b"hello"

    def test_body_sent_in_pieces_reaches_the_app_in_several_messages(
        self, raw_server: ServerProcess
    ) -> None:
        with raw_server.connect() as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcde")
            time.sleep(0.2)
            sock.sendall(b"fghij")
            status, headers, body = read_response(sock)
        assert (status, body) == (200, b"abcdefghij")
        assert int(headers["x-messages"]) >= 2

    def test_chunked_body(self, raw_server: ServerProcess) -> None:
        request = (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        assert raw_exchange(raw_server, request).endswith(b"\r\n\r\nabcdefg")

    def test_expect_continue_is_sent_when_the_app_reads(self, raw_server: ServerProcess) -> None:
        with raw_server.connect() as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"abc")
            assert read_response(sock)[2] == b"abc"

    def test_expect_continue_is_not_sent_when_the_app_never_reads(
        self, raw_server: ServerProcess
    ) -> None:
        with raw_server.connect() as sock:
            sock.sendall(
                b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            status, _, body = read_response(sock)
            assert (status, body) == (200, b"ignored")

    def test_too_large_body_gets_413_before_the_app_reads(self, raw_server: ServerProcess) -> None:
        request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\n\r\n"
        assert raw_exchange(raw_server, request).startswith(b"HTTP/1.1 413 ")

    def test_unread_body_is_drained_and_keep_alive_stays_in_sync(
        self, raw_server: ServerProcess
    ) -> None:
        request = (
            b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"
            + b"G" * 20000
            + b"GET /stream-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert parse_responses(raw_exchange(raw_server, request), 2) == [
            (200, b"ignored"),
            (200, b"0123456789"),
        ]

    def test_pipelined_requests_are_answered_in_order(self, raw_server: ServerProcess) -> None:
        requests = b"".join(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i for i in range(10)
        )
        requests += b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        responses = parse_responses(raw_exchange(raw_server, requests), 11)
        assert responses == [(200, b"%d" % i) for i in range(10)] + [(200, b"part0;part1;part2;")]


class TestResponse:
    def test_streamed_body_without_length_is_chunked_on_http11(
        self, raw_server: ServerProcess
    ) -> None:
        with raw_server.connect() as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(sock)
        assert headers["transfer-encoding"] == "chunked"
        assert body == b"part0;part1;part2;"

    def test_streamed_body_without_length_is_close_delimited_on_http10(
        self, raw_server: ServerProcess
    ) -> None:
        response = raw_exchange(raw_server, b"GET /stream HTTP/1.0\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"chunked" not in head.lower() and b"content-length" not in head.lower()
        assert body == b"part0;part1;part2;"

    def test_streamed_body_with_the_apps_length(self, raw_server: ServerProcess) -> None:
        with raw_server.connect() as sock:
            sock.sendall(b"GET /stream-length HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(sock)
        assert headers["content-length"] == "10" and "transfer-encoding" not in headers
        assert body == b"0123456789"

    def test_body_shorter_than_its_content_length_cuts_the_connection(
        self, raw_server: ServerProcess
    ) -> None:
        response = raw_exchange(raw_server, b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"Content-Length: 10" in head
        assert body == b"01234"  # and then the connection ended: visibly incomplete

    def test_head_keeps_the_apps_content_length_and_sends_no_body(
        self, raw_server: ServerProcess
    ) -> None:
        response = raw_exchange(
            raw_server, b"HEAD /head-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert b"Content-Length: 1234\r\n" in response
        assert response.endswith(b"\r\n\r\n")

    @pytest.mark.parametrize("status", [204, 304])
    def test_no_body_statuses_send_no_body(self, raw_server: ServerProcess, status: int) -> None:
        response = raw_exchange(
            raw_server, b"GET /status?%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % status
        )
        assert response.startswith(b"HTTP/1.1 %d " % status)
        assert response.endswith(b"\r\n\r\n")
        assert b"must not" not in response

    def test_pathsend_sends_the_file(self, raw_server: ServerProcess, served_file: Path) -> None:
        r = httpx.get(f"{raw_server.url}/pathsend")
        assert r.content == served_file.read_bytes()
        assert r.headers["content-length"] == str(served_file.stat().st_size)

    def test_slow_reader_does_not_grow_the_servers_memory(self, raw_server: ServerProcess) -> None:
        """200 MiB streamed to a client that reads slowly: send() waits instead of buffering."""

        def rss_kib() -> int:
            status = Path(f"/proc/{raw_server.proc.pid}/status").read_text()
            return int(status.split("VmRSS:")[1].split()[0])

        before = rss_kib()
        with raw_server.connect(timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET /big-stream?3200 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(1.0)  # the app has had time to produce far more than fits in the buffers
            peak = rss_kib()
            received = 0
            while received < 200 * 1024 * 1024:
                data = sock.recv(1 << 20)
                assert data
                received += len(data)
                peak = max(peak, rss_kib()) if received % (32 << 20) < (1 << 20) else peak
        assert peak - before < 8 * 1024, f"RSS grew by {peak - before} KiB"


def parse_with_trailers(data: bytes) -> list[tuple[int, dict[str, str], bytes, list[Any]]]:
    """Every complete response in ``data`` (to GETs): (status, headers, body, trailer fields)."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    client.receive_data(b"")  # the server closed after the last one
    out: list[tuple[int, dict[str, str], bytes, list[Any]]] = []
    while True:
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError:
                return out  # cut short: not a complete response
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {n.decode(): v.decode() for n, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append((status, headers, body, list(event.headers)))
                break
            else:
                return out
        if client.their_state is not h11.DONE:
            return out
        client.start_next_cycle()


ACCEPTS_TRAILERS = b"Host: x\r\nTE: trailers\r\n\r\n"
THEN_CLOSE = b"GET /ignore-body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class TestTrailers:
    """``http.response.trailers``: in the last chunk when the client sent ``TE: trailers``."""

    @pytest.mark.parametrize("path", [b"/trailers", b"/trailers-length"])
    def test_trailers_follow_a_chunked_body_when_the_client_accepts_them(
        self, raw_server: ServerProcess, path: bytes
    ) -> None:
        """Also with the app's Content-Length: HTTP/1.1 has trailers in chunked bodies only.
        The next request on the connection is answered: the framing stayed in step."""
        data = raw_exchange(
            raw_server, b"GET %b HTTP/1.1\r\n%b%b" % (path, ACCEPTS_TRAILERS, THEN_CLOSE)
        )
        assert b"0\r\nx-checksum: 10\r\nx-status: ok\r\n\r\n" in data
        (status, headers, body, trailers), second = parse_with_trailers(data)
        assert status == 200 and body == b"0123456789"
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert headers["trailer"] == "x-checksum, x-status"
        assert trailers == [(b"x-checksum", b"10"), (b"x-status", b"ok")]
        assert second[0] == 200 and second[2] == b"ignored"

    @pytest.mark.parametrize(
        ("path", "framing"),
        [
            (b"/trailers", "transfer-encoding"),
            (b"/trailers-length", "content-length"),
            (b"/trailers-bad", "transfer-encoding"),
            (b"/trailers-missing", "transfer-encoding"),
        ],
    )
    def test_trailers_are_dropped_when_the_client_did_not_ask(
        self, raw_server: ServerProcess, path: bytes, framing: str
    ) -> None:
        """Framed as without trailers (a body in one message keeps its Content-Length); what
        the app announced, sends late, sends wrong or never sends does not matter then."""
        data = raw_exchange(
            raw_server, b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n%b" % (path, THEN_CLOSE)
        )
        (status, headers, body, trailers), second = parse_with_trailers(data)
        assert status == 200 and body == b"0123456789" and trailers == []
        assert framing in headers
        assert second[2] == b"ignored"
        assert b"x-evil" not in data

    def test_trailers_are_dropped_on_http10(self, raw_server: ServerProcess) -> None:
        response = raw_exchange(raw_server, b"GET /trailers HTTP/1.0\r\nTE: trailers\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"chunked" not in head.lower() and body == b"0123456789"

    @pytest.mark.parametrize("path", [b"/trailers-bad", b"/trailers-missing"])
    def test_invalid_or_missing_trailers_cut_the_connection(
        self, raw_server: ServerProcess, path: bytes
    ) -> None:
        """The body is out, the trailer section never completes: the client sees a cut, not a
        complete response (and no field injected by CR/LF)."""
        data = raw_exchange(raw_server, b"GET %b HTTP/1.1\r\n%b" % (path, ACCEPTS_TRAILERS))
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"01234" in data and not data.endswith(b"\r\n\r\n")
        assert b"HTTP/1.1 200 OK" not in data.partition(b"\r\n\r\n")[2]
        assert parse_with_trailers(data) == []


class TestErrors:
    @pytest.mark.parametrize(
        "path", ["/raise-before", "/no-response", "/bad-header", "/double-start"]
    )
    def test_failure_before_the_response_is_a_500(
        self, raw_server: ServerProcess, path: str
    ) -> None:
        response = raw_exchange(raw_server, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        assert response.startswith(b"HTTP/1.1 500 ")
        assert b"owned" not in response  # a header with CR LF never splits the response

    def test_failure_mid_response_cuts_the_connection(self, raw_server: ServerProcess) -> None:
        response = raw_exchange(raw_server, b"GET /raise-after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 200 ")
        assert b"partial" in response
        assert not response.endswith(b"0\r\n\r\n")  # no terminating chunk: visibly truncated

    def test_the_server_goes_on_after_app_errors(self, raw_server: ServerProcess) -> None:
        raw_exchange(raw_server, b"GET /raise-before HTTP/1.1\r\nHost: x\r\n\r\n")
        assert httpx.get(f"{raw_server.url}/stream-length").content == b"0123456789"
        assert "boom before the response" in raw_server.output


class TestDisconnect:
    def test_receive_after_the_response_is_a_disconnect(
        self, raw_server: ServerProcess, marks: Path
    ) -> None:
        assert httpx.get(f"{raw_server.url}/receive-after-response").content == b"done"
        assert wait_for_mark(marks, "after-response") == "http.disconnect"

    def test_client_leaving_mid_response_is_a_disconnect(
        self, raw_server: ServerProcess, marks: Path
    ) -> None:
        with raw_server.connect() as sock:
            sock.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"waiting" not in received:  # the head and the first chunk are two writes
                data = sock.recv(1000)
                assert data, received
                received += data
        assert wait_for_mark(marks, "wait-disconnect") == "http.disconnect"

    def test_send_after_the_client_left_raises_an_oserror_and_ends_quietly(
        self, raw_server: ServerProcess, marks: Path
    ) -> None:
        logged = len(raw_server.output)
        with raw_server.connect() as sock:
            sock.sendall(b"GET /send-after-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"tick" in sock.recv(1000) + sock.recv(1000)
        assert wait_for_mark(marks, "send-after-disconnect") == "ClientDisconnected"
        time.sleep(0.1)
        assert "Traceback" not in raw_server.output[logged:]


class TestConcurrency:
    def test_awaiting_apps_on_different_connections_run_concurrently(
        self, raw_server: ServerProcess
    ) -> None:
        import concurrent.futures

        def get(_: int) -> bytes:
            return httpx.get(f"{raw_server.url}/barrier?4", timeout=20).content

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(get, range(4)))
        assert bodies == [b"together"] * 4  # each waited for the other three: all ran at once


class TestLifespan:
    def test_state_from_startup_reaches_requests(self, raw_server: ServerProcess) -> None:
        assert httpx.get(f"{raw_server.url}/state").json() == {"started": "yes"}

    def test_startup_failure_stops_the_server_with_the_apps_message(self) -> None:
        with pytest.raises(RuntimeError) as info:
            ServerProcess("tests.asgi.apps:startup_fails", "--lifespan", "on", start_timeout=10)
        assert "database unreachable" in str(info.value)

    def test_startup_failure_stops_a_supervised_server_with_nonzero_status(self) -> None:
        with pytest.raises(RuntimeError) as info:
            ServerProcess("tests.asgi.apps:startup_fails", workers=2, start_timeout=10)
        assert "database unreachable" in str(info.value)

    def test_auto_serves_an_app_that_raises_on_lifespan(self, start_server: object) -> None:
        with ServerProcess("tests.asgi.apps:no_lifespan") as server:
            assert httpx.get(server.url).content == b"served without lifespan"

    def test_shutdown_runs_on_graceful_stop(self, marks: Path, served_file: Path) -> None:
        env = {"PEREGRINE_TEST_MARKS": str(marks), "PEREGRINE_TEST_FILE": str(served_file)}
        (marks / "lifespan").unlink(missing_ok=True)
        server = ServerProcess("tests.asgi.apps:raw", env=env)
        assert server.stop() == 0
        assert wait_for_mark(marks, "lifespan") == "shutdown"


class TestDetection:
    @pytest.mark.parametrize(
        ("target", "args", "body"),
        [
            ("tests.asgi.apps:instance", (), b"instance"),
            ("tests.asgi.apps:make_app", ("--factory",), b"no route"),
            ("tests.asgi.apps:raw", ("--interface", "asgi"), b"no route"),
        ],
    )
    def test_run_detects_asgi_apps(self, target: str, args: tuple[str, ...], body: bytes) -> None:
        with ServerProcess(target, *args) as server:
            assert httpx.get(f"{server.url}/nothing-here").content == body

    def test_root_path_is_prefixed_to_path(self) -> None:
        with ServerProcess("tests.asgi.apps:raw", "--root-path", "/api") as server:
            scope = httpx.get(f"{server.url}/scope").json()
        assert scope["root_path"] == "/api"
        assert scope["path"] == "/api/scope"
        assert scope["raw_path"] == "/api/scope"

    def test_native_interface_refuses_an_asgi_app_in_one_line(self) -> None:
        with pytest.raises(RuntimeError) as info:
            ServerProcess("tests.asgi.apps:raw", "--interface", "native", start_timeout=10)
        assert "looks like an ASGI application" in str(info.value)
