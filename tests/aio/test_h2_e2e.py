"""HTTP/2 end to end: real servers, real clients (the h2 package, httpx, curl), real sockets."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from peregrine.http2 import frames as f

from ..helpers import ServerProcess
from .h2client import H2Client

APP = "tests.apps:Engine"
HAS_CURL_HTTP2 = (
    shutil.which("curl") is not None
    and "HTTP2" in subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(APP, "--access-log") as proc:
        yield proc


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory: Path = tmp_path_factory.mktemp("h2pki")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": directory / "ca.pem", "server": directory / "server.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(paths["server"]))
    return {name: str(path) for name, path in paths.items()}


def client(server: ServerProcess, **kwargs: object) -> H2Client:
    return H2Client(server.host, server.port, **kwargs)  # type: ignore[arg-type]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- serving -------------------------------------------------------------------------------------


def test_get_over_prior_knowledge(server: ServerProcess) -> None:
    with client(server) as h2:
        stream = h2.get("/echo?a=1")
    assert stream.status == 200
    assert stream.headers["content-type"] == "application/json"
    assert stream.headers["server"] == "peregrine" and "date" in stream.headers
    import json

    echo = json.loads(stream.body)
    assert echo["version"] == "2" and echo["query"] == [["a", "1"]]
    assert echo["headers"][0] == ["host", "localhost"]
    assert server.wait_for_line(r'"GET /echo\?a=1 HTTP/2" 200', 5) is not None  # access log


def test_request_body_and_many_requests_on_one_connection(server: ServerProcess) -> None:
    with client(server) as h2:
        for size in (0, 1, 70_000, 300_000):  # beyond one stream window: WINDOW_UPDATEs needed
            stream = h2.wait(h2.request("POST", "/echo", body=b"b" * size))[0]
            assert stream.status == 200
            assert f'"body_length": {size}' in stream.body.decode()


def test_handler_features(server: ServerProcess) -> None:
    with client(server) as h2:
        assert h2.get("/stream?n=3").body == b"part 0\npart 1\npart 2\n"
        assert h2.get("/iter?n=2").body == b"chunk 0\nchunk 1\n"
        assert h2.get("/slow?s=0.01").body == b"slept 0.01\n"
        headers = h2.get("/headers")
        assert headers.headers["content-length"] == "10" and headers.body == b"0123456789"
        close = h2.get("/close")  # Connection: close means nothing in HTTP/2: dropped
        assert close.body == b"closing" and "connection" not in close.headers
        assert h2.get("/status?code=204").status == 204
        head = h2.wait(h2.request("HEAD", "/big?n=5000"))[0]
        assert head.headers["content-length"] == "5000" and head.body == b""
        assert h2.get("/raise").status == 500
        assert h2.get("/async-raise").status == 500
        broken = h2.get("/stream-raise")
        assert broken.body == b"first part\n" and broken.reset_code == f.INTERNAL_ERROR
        assert h2.get("/count").status == 200  # the connection survived all of it


def test_expect_100_continue_is_answered_before_the_body(server: ServerProcess) -> None:
    with client(server) as h2:
        sid = h2.request("POST", "/echo", headers=[("expect", "100-continue")], end=False)
        while not h2.streams[sid].informational:
            h2.read_once()
        assert h2.streams[sid].informational == [100]
        h2.send_body(sid, b"body")
        (stream,) = h2.wait(sid)
        assert stream.status == 200 and b'"body": "body"' in stream.body


def test_small_client_window_still_gets_the_whole_response(server: ServerProcess) -> None:
    with client(server, settings={f.SETTINGS_INITIAL_WINDOW_SIZE: 1000}) as h2:
        stream = h2.get("/big?n=200000")
        assert len(stream.body) == 200_000
        produced = h2.get("/produce?n=5&size=20000")
        assert len(produced.body) == 5 * 20000


def test_streamed_response_waits_for_a_client_that_does_not_grant_window(
    server: ServerProcess,
) -> None:
    """The producer stops once the window is used up: nothing piles up in the server."""
    with client(server, auto_window=False) as h2:
        sid = h2.request("GET", "/produce?n=1000&size=16384")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and len(h2.streams[sid].body) < 65_535:
            h2.read_once(2)
        time.sleep(0.3)
        with client(server) as other:
            produced, done = other.get("/produced").body.split()
        assert done == b"0"
        assert int(produced) <= 6  # 64 KB window + one write queued, not 16 MB
        assert len(h2.streams[sid].body) == 65_535


def test_httpx_http2_prior_knowledge(server: ServerProcess) -> None:
    with httpx.Client(http1=False, http2=True) as http:
        responses = [http.get(f"{server.url}/echo?i={i}") for i in range(5)]
        posted = http.post(f"{server.url}/echo", content=b"x" * 100_000)
    assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in responses)
    assert posted.json()["body_length"] == 100_000


@pytest.mark.skipif(not HAS_CURL_HTTP2, reason="curl without HTTP/2")
def test_curl_http2_prior_knowledge(server: ServerProcess) -> None:
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "\\n%{http_version}",
            f"{server.url}/count",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "2"


def test_http1_still_served_on_the_same_port(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/echo")
    assert response.http_version == "HTTP/1.1" and response.json()["version"] == "1.1"


@pytest.mark.parametrize("cut", [1, 5, 23, 24, 30])
def test_preface_split_anywhere_is_still_http2(server: ServerProcess, cut: int) -> None:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        hello = f.PREFACE + f.settings_frame([])
        sock.sendall(hello[:cut])
        time.sleep(0.05)
        sock.sendall(hello[cut:])
        answer = sock.recv(9)
    assert answer[3] == f.SETTINGS  # an HTTP/2 frame, not "HTTP/1.1 400"


# --- TLS and ALPN -------------------------------------------------------------------------------


def tls_context(pki: dict[str, str], alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.set_alpn_protocols(alpn)
    return context


def test_tls_alpn_picks_h2_or_http11(start_server, pki) -> None:  # type: ignore[no-untyped-def]
    server = start_server(APP, "--ssl-certfile", pki["server"])
    with H2Client(server.host, server.port, tls=tls_context(pki, ["h2", "http/1.1"])) as h2:
        assert h2.sock.selected_alpn_protocol() == "h2"
        stream = h2.get("/echo")
        assert stream.status == 200 and b'"scheme": "https"' in stream.body
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        context = tls_context(pki, ["http/1.1"])
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=pki["ca"])) as http:
        response = http.get(f"https://127.0.0.1:{server.port}/echo")
    assert response.http_version == "HTTP/2" and response.json()["version"] == "2"
    if HAS_CURL_HTTP2:
        out = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", pki["ca"], "-o", "/dev/null"]
            + ["-w", "%{http_version}", f"https://127.0.0.1:{server.port}/big"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.stdout == "2", out.stderr


def test_no_http2_turns_both_ways_off(start_server, pki) -> None:  # type: ignore[no-untyped-def]
    plain = start_server(APP, "--no-http2")
    with socket.create_connection((plain.host, plain.port), timeout=10) as sock:
        sock.sendall(f.PREFACE + f.settings_frame([]))
        assert sock.recv(100).startswith(b"HTTP/1.1 4")  # the HTTP/1 answer to a bad request
    secure = start_server(APP, "--no-http2", "--ssl-certfile", pki["server"])
    with socket.create_connection((secure.host, secure.port), timeout=10) as raw:
        context = tls_context(pki, ["h2", "http/1.1"])
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"


# --- limits ---------------------------------------------------------------------------------------


def test_limits_answer_on_the_stream(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(
        APP, "--max-body-size", "1000", "--max-header-size", "2000", "--max-request-line", "500"
    )
    with client(server) as h2:
        assert h2.wait(h2.request("POST", "/echo", body=b"x" * 1001))[0].status == 413
        big = h2.request("POST", "/echo", body=b"x" * 5000, headers=[])
        assert h2.wait(big)[0].status == 413
        assert h2.get("/echo", headers=[("x-big", "v" * 3000)]).status == 431
        assert h2.get("/" + "p" * 600).status == 414
        assert h2.get("/echo").status == 200  # and the connection goes on


def test_max_concurrent_streams_refuses_the_excess(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(APP, "--http2-max-concurrent-streams", "2")
    with client(server) as h2:
        # sent before the server's SETTINGS are read: the client does not know the limit yet
        ids = [h2.request("GET", "/slow?s=0.3") for _ in range(4)]
        streams = h2.wait(ids)
        assert h2.remote_settings[f.SETTINGS_MAX_CONCURRENT_STREAMS] == 2
    assert [s.status for s in streams[:2]] == [200, 200]
    assert [s.reset_code for s in streams[2:]] == [f.REFUSED_STREAM] * 2


def test_idle_connection_gets_goaway_after_keep_alive_timeout(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(APP, "--keep-alive-timeout", "0.5")
    with client(server) as h2:
        assert h2.get("/count").status == 200
        h2.wait_closed(5)
        assert h2.goaway is not None and h2.goaway.error_code == 0


def test_graceful_shutdown_finishes_streams_in_flight(start_server) -> None:  # type: ignore[no-untyped-def]
    """GOAWAY first (naming the stream in flight), then its response, then the close.

    Read as raw frames: the h2 client stops reading at the first GOAWAY.
    """
    import hpack

    server = start_server(APP, "--graceful-timeout", "10")
    block = hpack.Encoder().encode(
        [(":method", "GET"), (":scheme", "http"), (":path", "/slow?s=1"), (":authority", "x")]
    )
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            f.PREFACE
            + f.settings_frame([])
            + f.frame_header(len(block), f.HEADERS, f.FLAG_END_HEADERS | f.FLAG_END_STREAM, 1)
            + block
        )
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        reader = f.FrameReader(1 << 24)
        frames: list[f.Frame] = []
        while data := sock.recv(65536):
            frames += reader.feed(data)
    kinds = [(kind, stream_id) for kind, _, stream_id, _ in frames if kind != f.SETTINGS]
    assert kinds[-3:] == [(f.GOAWAY, 0), (f.HEADERS, 1), (f.DATA, 1)]
    goaway = next(p for k, _, _, p in frames if k == f.GOAWAY)
    assert f.parse_goaway(goaway, 0)[:2] == (1, f.NO_ERROR)
    assert frames[-1][3] == b"slept 1\n" and frames[-1][1] & f.FLAG_END_STREAM
    assert server.proc.wait(15) == 0  # it stops by itself (a second SIGTERM would not be graceful)


def test_send_file_over_http2(tmp_path: Path, start_server) -> None:  # type: ignore[no-untyped-def]
    content = os.urandom(300_000)
    (tmp_path / "big.bin").write_bytes(content)
    server = start_server(command=["static", str(tmp_path)])
    with client(server, settings={f.SETTINGS_INITIAL_WINDOW_SIZE: 1000}) as h2:
        stream = h2.get("/big.bin")
        assert stream.status == 200 and stream.headers["content-length"] == "300000"
        assert bytes(stream.body) == content
        partial = h2.get("/big.bin", headers=[("range", "bytes=10-19")])
        assert partial.status == 206 and bytes(partial.body) == content[10:20]


# --- floods against a real server ----------------------------------------------------------------


def _served_meanwhile(server: ServerProcess, stop: threading.Event, results: list[int]) -> None:
    while not stop.is_set():
        try:
            results.append(httpx.get(f"{server.url}/count", timeout=5).status_code)
        except httpx.HTTPError:
            results.append(0)
        time.sleep(0.02)


def test_rapid_reset_is_stopped_and_others_are_served(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(APP, "--http2-max-resets", "100")
    stop = threading.Event()
    results: list[int] = []
    other = threading.Thread(target=_served_meanwhile, args=(server, stop, results))
    other.start()
    try:
        with client(server) as h2:
            h2.read_once()
            encoded = h2.conn.encoder.encode(
                [(":method", "GET"), (":scheme", "http"), (":path", "/slow?s=5")]
                + [(":authority", "x")]
            )
            burst = b""
            for i in range(500):
                sid = 1 + 2 * i
                burst += f.frame_header(len(encoded), f.HEADERS, 5, sid) + encoded
                burst += f.rst_stream_frame(sid, f.CANCEL)
            try:
                h2.send_raw(burst)
            except OSError:
                pass  # the server may close while we are still sending
            code = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and code is None:
                data = h2.sock.recv(65536)
                if not data:
                    break
                for kind, _, stream_id, payload in f.FrameReader(1 << 24).feed(data):
                    if kind == f.GOAWAY:
                        code = f.parse_goaway(payload, stream_id)[1]
            assert code == f.ENHANCE_YOUR_CALM
    finally:
        time.sleep(0.2)
        stop.set()
        other.join()
    assert results and all(status == 200 for status in results)


@pytest.mark.parametrize(
    ("name", "flood"),
    [
        (
            "CONTINUATION",
            f.frame_header(3, f.HEADERS, 0, 1)
            + b"\x82\x86\x84"
            + (f.frame_header(16_384, f.CONTINUATION, 0, 1) + b"\x00" * 16_384) * 2000,
        ),
        ("PING", (f.frame_header(8, f.PING, 0, 0) + b"12345678") * 200_000),
        ("SETTINGS", f.settings_frame([(f.SETTINGS_ENABLE_PUSH, 0)]) * 200_000),
    ],
)
def test_floods_end_in_goaway_with_bounded_memory(
    server: ServerProcess, name: str, flood: bytes
) -> None:
    # the shared server: the growth is measured from this test's own start
    pid = server.proc.pid
    with client(server) as warm:
        warm.get("/count")
    before = rss_kb(pid)
    with client(server) as h2:
        try:
            h2.send_raw(flood)  # 32 MB of CONTINUATION, 3.2 MB of PING or SETTINGS
        except OSError:
            pass  # closed by the server midway: what we want
        codes = []
        deadline = time.monotonic() + 10
        reader = f.FrameReader(1 << 24)
        while time.monotonic() < deadline:
            try:
                data = h2.sock.recv(1 << 20)
            except OSError:
                break
            if not data:
                break
            codes += [f.parse_goaway(p, s)[1] for k, _, s, p in reader.feed(data) if k == f.GOAWAY]
    assert codes == [f.ENHANCE_YOUR_CALM]
    assert rss_kb(pid) - before < 20_000  # kB: the flood was not buffered
    with client(server) as after:
        assert after.get("/count").status == 200
