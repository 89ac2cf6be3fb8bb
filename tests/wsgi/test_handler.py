"""PEP 3333 over real sockets, rule by rule, in both modes (thread pool and event loop)."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..helpers import ServerProcess, read_response, read_until_closed, wait_until


def get(server: ServerProcess, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(server.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


def closed_flag(server: ServerProcess, tag: str, wait: float = 3.0) -> bool:
    """Whether the iterable tagged ``tag`` was closed (waiting a little: close may follow)."""
    deadline = time.monotonic() + wait
    while True:
        if get(server, f"/closed?tag={tag}").text == "yes":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def request_bytes(method: str, target: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# --- environ ----------------------------------------------------------------------------------


def test_environ_has_every_key_the_pep_requires(server: ServerProcess) -> None:
    response = get(
        server,
        "/environ?a=1&b=%20x",
        headers=[("X-Multi", "one"), ("X-Multi", "two"), ("Content-Type", "text/x-test")],
    )
    environ = response.json()
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/environ"
    assert environ["QUERY_STRING"] == "a=1&b=%20x"
    assert environ["CONTENT_TYPE"] == "text/x-test"
    assert "CONTENT_LENGTH" not in environ
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(server.port)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"].isdigit()
    assert environ["HTTP_X_MULTI"] == "one, two"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False  # --workers 1
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.input.readable"] and environ["wsgi.errors.writable"]
    assert environ["wsgi.file_wrapper.callable"]


def test_path_info_is_percent_decoded_bytes_as_latin1(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /environ%2Fx/%C3%A9?q=%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 404  # the decoded path is no route: the app echoes it
    assert body == b"no such route /environ/x/" + "é".encode()
    with server.connect() as sock:
        sock.sendall(b"GET /environ?q=%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n")
        _, _, body = read_response(sock)
    assert json.loads(body)["QUERY_STRING"] == "q=%C3%A9"


def test_headers_with_underscores_are_dropped(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"GET /environ HTTP/1.1\r\nHost: h\r\nX-Forwarded_For: 6.6.6.6\r\n"
            b"X-Forwarded-For: 1.2.3.4\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
        )
        _, _, body = read_response(sock)
    environ = json.loads(body)
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["SERVER_NAME"] == "h" and environ["SERVER_PORT"] == "80"


def test_http10_request_says_so(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /environ HTTP/1.0\r\n\r\n")
        data = read_until_closed(sock)
    environ = json.loads(data.partition(b"\r\n\r\n")[2])
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert environ["SERVER_NAME"] == "127.0.0.1"  # no Host: the address it arrived on


def test_wsgi_errors_go_to_the_server_log(server: ServerProcess) -> None:
    start = len(server.lines)
    assert get(server, "/errors").text == "logged"
    assert server.wait_for_line("a line for the log", 5, start)
    assert server.wait_for_line("partial line ends here", 5, start)


# --- wsgi.input -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["read", "read-1", "chunks", "readline", "readlines", "iter"])
def test_body_read_every_way(server: ServerProcess, how: str) -> None:
    body = b"".join(b"line %d of the body\n" % i for i in range(5000)) + b"no newline at end"
    response = httpx.post(f"{server.url}/echo?how={how}&size=777", content=body, timeout=10)
    assert response.status_code == 200
    assert response.content == body


def test_chunked_upload(server: ServerProcess) -> None:
    def pieces():  # type: ignore[no-untyped-def]
        for i in range(50):
            yield b"piece %d;" % i

    response = httpx.post(f"{server.url}/echo", content=pieces(), timeout=10)
    assert response.content == b"".join(b"piece %d;" % i for i in range(50))


def test_expect_100_continue_is_sent_when_the_body_is_wanted(server: ServerProcess) -> None:
    body = b"x" * 300_000
    with server.connect() as sock:
        sock.sendall(
            request_bytes(
                "POST",
                "/echo?how=chunks&size=65536",
                extra=f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n",
            )
        )
        sock.settimeout(5)
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, echoed = read_response(sock)
    assert status == 200 and echoed == body


@pytest.fixture(scope="module", params=["4", "0"], ids=["pool", "loop"])
def small(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The test apps with bodies of at most 1000 bytes, in each mode."""
    with ServerProcess(
        "tests.wsgi.apps:app", "--max-body-size", "1000", "--threads", request.param
    ) as proc:
        yield proc


def test_body_over_max_body_size_is_refused_before_the_app_runs(small: ServerProcess) -> None:
    response = httpx.post(f"{small.url}/echo?tag=too-big", content=b"x" * 1001, timeout=10)
    assert response.status_code == 413
    assert get(small, "/calls?tag=too-big").text == "0"
    ok = httpx.post(f"{small.url}/echo?tag=fits", content=b"x" * 1000, timeout=10)
    assert ok.status_code == 200 and get(small, "/calls?tag=fits").text == "1"


def test_unread_body_is_drained_for_keep_alive(server: ServerProcess) -> None:
    body = b"y" * 500_000
    with server.connect() as sock:
        sock.sendall(request_bytes("POST", "/ignore-body", body))
        status, _, answer = read_response(sock)
        assert (status, answer) == (200, b"ignored")
        sock.sendall(request_bytes("GET", "/closed?tag=none"))
        status, _, answer = read_response(sock)
        assert (status, answer) == (200, b"no")


@pytest.mark.parametrize("server", ["pool"], indirect=True)
def test_a_slow_app_makes_the_upload_wait(server: ServerProcess) -> None:
    """The body is not buffered whole: while the app waits, the client cannot send it all."""
    body = b"z" * (48 * 1024 * 1024)
    with server.connect() as sock:
        sock.sendall(
            request_bytes("POST", "/slow-reader?wait=1.5", extra=f"Content-Length: {len(body)}\r\n")
        )
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                sent += sock.send(memoryview(body)[sent : sent + 1 << 20])
            except BlockingIOError:
                time.sleep(0.01)
        # kernel buffers on loopback hold a few MB; the rest waits for the app to read
        assert sent < 24 * 1024 * 1024, sent
        sock.setblocking(True)
        sock.sendall(memoryview(body)[sent:])
        status, _, answer = read_response(sock, timeout=30)
    assert (status, answer) == (200, str(len(body)).encode())


@pytest.mark.parametrize("server", ["loop"], indirect=True)
def test_loop_mode_runs_the_app_only_once_the_body_is_whole(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo?tag=partial HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345"
        )
        time.sleep(0.3)
        assert get(server, "/calls?tag=partial").text == "0"
        sock.sendall(b"67890")
        status, _, answer = read_response(sock)
    assert (status, answer) == (200, b"1234567890")
    assert get(server, "/calls?tag=partial").text == "1"


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["pool"], indirect=True)
def test_pool_runs_slow_requests_in_parallel_and_keeps_serving(server: ServerProcess) -> None:
    """Two requests block in the pool until a third joins them; another request is answered
    while they wait, and the three can only meet if they run at the same time."""
    import concurrent.futures

    meeting = "/meet?tag=pool-parallel&n=3"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        blocked = [pool.submit(get, server, meeting) for _ in range(2)]
        assert wait_until(lambda: get(server, "/waiting?tag=pool-parallel&n=3").text == "2")
        with server.connect() as sock:
            sock.sendall(request_bytes("GET", "/closed?tag=x"))
            assert read_response(sock)[2] == b"no"  # answered while both wait
        assert get(server, meeting).text == "met"
        assert [f.result().text for f in blocked] == ["met", "met"]


def test_context_variables_do_not_outlive_their_request(server: ServerProcess) -> None:
    """A variable a request sets in its context (and leaves set, resets, or sets while its body
    is produced) is never seen by a later request; its body's steps see what the call set."""
    with server.connect() as sock:
        for target, answer in [
            ("/context-var", b"seen=unset"),
            ("/context-var?set=a", b"seen=unset"),
            ("/context-var", b"seen=unset"),
            ("/context-var?set=b&reset=1", b"seen=unset"),
            ("/context-var", b"seen=unset"),
            ("/context-var?set=c&chunks=3", b"0:c;1:c;2:c;"),
            ("/context-var", b"seen=unset"),
        ]:
            sock.sendall(request_bytes("GET", target))
            status, _, body = read_response(sock)
            assert (status, body) == (200, answer), target


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_pool_threads_run_under_sched_batch_and_the_loop_does_not(server: ServerProcess) -> None:
    """Woken pool threads do not preempt the loop on a shared core; the loop's own thread keeps
    the normal policy (with --threads 0 the application runs on it)."""
    expected = os.SCHED_BATCH if server.mode == "pool" else os.SCHED_OTHER  # type: ignore[attr-defined]
    assert get(server, "/scheduling-policy").text == str(expected)


# --- the response -----------------------------------------------------------------------------


def test_generator_body_streams_as_it_is_produced(server: ServerProcess) -> None:
    # In the pool, the first chunk is not held while the app produces the next (PEP 3333): the
    # app makes chunk 1 only once the client, holding chunk 0, joins the meeting "chunk-0-read".
    # A server holding chunk 0 back would never get chunk 1 (the read's timeout fails the test).
    pool = server.mode == "pool"  # type: ignore[attr-defined]
    gate = "&gate=chunk-0-read" if pool else ""
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/stream?n=3&tag=timed{gate}"))
        sock.settimeout(5)
        data = b""
        while b"chunk 0\n" not in data:
            received = sock.recv(65536)
            assert received, data
            data += received
        if pool:
            assert b"chunk 1\n" not in data
            assert get(server, "/meet?tag=chunk-0-read&n=2").text == "met"
        while not data.endswith(b"0\r\n\r\n"):
            received = sock.recv(65536)
            assert received, data
            data += received
    assert b"Transfer-Encoding: chunked" in data
    assert b"chunk 2\n" in data
    assert closed_flag(server, "timed")


def test_http10_stream_ends_with_the_connection(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /stream?n=3&delay=0.05 HTTP/1.0\r\n\r\n")
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"


def test_list_body_gets_a_content_length(server: ServerProcess) -> None:
    response = get(server, "/write")
    assert response.text == "written 1\nwritten 2\nreturned\n"
    response = get(server, "/environ")
    assert response.headers["content-length"] == str(len(response.content))


def test_close_is_called_after_a_normal_response(server: ServerProcess) -> None:
    assert get(server, "/stream?tag=normal").text == "chunk 0\nchunk 1\nchunk 2\n"
    assert closed_flag(server, "normal")


def test_exception_before_output_is_a_500(server: ServerProcess) -> None:
    start = len(server.lines)
    for path in ("/fail-before", "/no-start", "/start-twice"):
        response = get(server, path)
        assert response.status_code == 500, path
    assert server.wait_for_line("failed before any output", 5, start)
    assert server.wait_for_line("start_response", 5, start)


def test_exception_while_producing_cuts_the_connection_and_closes(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/stream?n=5&fail_after=2&delay=0.2&tag=failing"))
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"chunk 0\n" in data and b"chunk 2" not in data
    assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a cut
    assert closed_flag(server, "failing")


def test_exception_in_the_first_chunk_is_a_500(server: ServerProcess) -> None:
    response = get(server, "/stream?n=5&fail_after=0&tag=fails-first")
    assert response.status_code == 500
    assert closed_flag(server, "fails-first")


def test_client_disconnect_closes_the_iterable(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/big?mb=2000&tag=gone"))
        sock.recv(65536)
    # the 2 GB body cannot have been produced: it stopped because the client left
    assert closed_flag(server, "gone", wait=10)


def test_start_response_with_exc_info_before_output_replaces_the_status(
    server: ServerProcess,
) -> None:
    response = get(server, "/exc-info-before")
    assert response.status_code == 503
    assert response.text == "replaced"
    assert "x-first" not in response.headers


def test_start_response_with_exc_info_after_output_cuts(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/exc-info-after?pause=0.5"))
        data = read_until_closed(sock)
    if server.mode == "pool":  # type: ignore[attr-defined]
        assert data.startswith(b"HTTP/1.1 200 ") and b"first part" in data
        assert not data.endswith(b"0\r\n\r\n")
    else:
        # write() data waits for the app to return on the loop: the error comes first
        assert data.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("which", ["crlf", "name", "bytes", "status", "length"])
def test_invalid_status_or_header_is_a_500_never_a_split(server: ServerProcess, which: str) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/bad-header?which={which}"))
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"X-Injected" not in data and b"never" not in data


def test_application_transfer_encoding_is_not_sent(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/framing"))
        status, headers, body = read_response(sock)
    assert status == 200 and body == b"hello world"
    assert headers.get("transfer-encoding", "chunked") == "chunked"  # ours, once, or none


@pytest.mark.parametrize("kind", ["list", "iter"])
def test_body_shorter_than_its_content_length(server: ServerProcess, kind: str) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/length-mismatch?declared=10&sent=5&kind={kind}"))
        data = read_until_closed(sock)
    # never a response that looks complete: a 500, or the head then a cut
    assert data.startswith(b"HTTP/1.1 500 ") or (
        b"Content-Length: 10" in data and len(data.partition(b"\r\n\r\n")[2]) < 10
    )


@pytest.mark.parametrize("kind", ["list", "iter"])
def test_body_longer_than_its_content_length(server: ServerProcess, kind: str) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/length-mismatch?declared=3&sent=5&kind={kind}"))
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 500 ") or (
        b"Content-Length: 3" in data and len(data.partition(b"\r\n\r\n")[2]) <= 3
    )


@pytest.mark.parametrize("kind", ["list", "iter"])
def test_head_sends_no_body_and_keeps_the_length(server: ServerProcess, kind: str) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("HEAD", f"/status?code=200&length=6&kind={kind}"))
        sock.sendall(request_bytes("GET", "/closed?tag=none"))
        sock.settimeout(5)
        data = b""
        while data.count(b"HTTP/1.1") < 2 or not data.endswith(b"no"):
            data += sock.recv(65536)
    first, _, second = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 6" in first
    assert second.startswith(b"HTTP/1.1 200 ")  # no body bytes in between


@pytest.mark.parametrize("code", [204, 304, 100])
def test_bodiless_statuses_send_no_body(server: ServerProcess, code: int) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/status?code={code}"))
        sock.sendall(request_bytes("GET", "/closed?tag=none"))
        sock.settimeout(5)
        data = b""
        while not data.endswith(b"no"):
            data += sock.recv(65536)
    first, _, second = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 %d " % code)
    assert b"Content-Length" not in first and b"Transfer-Encoding" not in first
    assert second.startswith(b"HTTP/1.1 200 ")


def test_status_reason_is_the_standard_one(server: ServerProcess) -> None:
    response = get(server, "/status?code=299")
    assert response.status_code == 299
    response = get(server, "/status?code=201")
    assert response.reason_phrase == "Created"


def test_error_in_close_after_a_complete_body_is_logged(server: ServerProcess) -> None:
    start = len(server.lines)
    response = get(server, "/fail-in-close")
    # a one-chunk body is held until close() returns: its failure is still a 500 in both modes
    assert response.status_code == 500
    assert server.wait_for_line("close failed", 5, start)
    assert get(server, "/closed?tag=none").text == "no"  # the server carries on


def test_chunked_body_over_max_body_size_gets_413(small: ServerProcess) -> None:
    with small.connect() as sock:
        sock.sendall(
            b"POST /echo?tag=chunked-too-big HTTP/1.1\r\nHost: h\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"3e8\r\n" + b"x" * 1000 + b"\r\n"
            b"1\r\nx\r\n0\r\n\r\n"
        )
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert data.count(b"HTTP/1.1") == 1


def test_sigterm_lets_a_running_request_finish() -> None:
    server = ServerProcess("tests.wsgi.apps:app", "--graceful-timeout", "10")
    with server, server.connect() as sock:
        sock.sendall(request_bytes("GET", "/sleep?s=1.5"))
        time.sleep(0.5)
        server.send_signal(15)
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"slept")
        assert server.proc.wait(15) == 0


def test_factory_and_forced_interface() -> None:
    with ServerProcess("tests.wsgi.apps:create_app", "--factory") as server:
        assert get(server, "/closed?tag=x").text == "no"
    with ServerProcess("tests.wsgi.apps:oddly_named", "--interface", "wsgi") as server:
        assert get(server, "/").text == "forced"


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            request_bytes("GET", "/sleep?s=0.3")
            + request_bytes("POST", "/echo", b"second")
            + request_bytes("GET", "/stream?n=2&tag=pipelined")
        )
        stream = sock.makefile("rb")  # one buffer for the three responses, read in turn
        answers = []
        for _ in range(3):
            response = http.client.HTTPResponse(_OneFile(stream))  # type: ignore[arg-type]
            response.begin()
            answers.append(response.read())
    assert answers == [b"slept", b"second", b"chunk 0\nchunk 1\n"]


class _OneFile:
    """What http.client.HTTPResponse needs of a socket: the same reader for every response,
    which it may not close (it closes its reader after each body)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def makefile(self, *args: object, **kwargs: object) -> object:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def close(self) -> None:
        pass
