"""Static files end to end: a real Peregrine server process, real sockets.

The served tree sits next to a secret file (``secret.txt``, one level above the root) that
no request may ever reach. Most tests share one server (module scope); the tests of how
file bodies are sent run against both event loops, because uvloop and asyncio send files
differently (read-and-write vs ``sendfile``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from ..helpers import ServerProcess, read_until_closed, run_peregrine

SECRET = b"TOP SECRET: never serve this\n"
BIG_SIZE = 8 * 1024 * 1024 + 12345  # multi-megabyte, and not a round number
# several times what the kernel holds in flight (a send buffer grows to 4 MiB at most, the
# clients' receive buffers are 64 KiB): most of the body is still unsent when the tests
# unlink or truncate the file
SPARSE_SIZE = 16 * 1024 * 1024
APP = "tests.util.static_app:Handler"
ROOT_ENV = "PEREGRINE_TEST_STATIC_ROOT"
YEAR_ZERO = "Sun, 06 Nov 0000 08:49:37 GMT"  # well-formed IMF-fixdate, year 0

JS = b"console.log('plain JavaScript');\n" * 20
BR_BYTES = b"\x8b\x01\x80fake-brotli-bytes\x03"  # never decoded: only compared


# --------------------------------------------------------------------------------------------
# the tree


@dataclass
class Site:
    outer: Path
    root: Path
    big: bytes


def _build_site(outer: Path) -> Site:
    root = outer / "www"
    root.mkdir()
    (outer / "secret.txt").write_bytes(SECRET)
    (outer / "www-secret").mkdir()
    (outer / "www-secret" / "secret.txt").write_bytes(SECRET)
    files = {
        "index.html": b"<!doctype html><h1>home</h1>\n",
        "hello.txt": b"hello world\n",
        "sp ace.txt": b"with a space\n",
        "caf\u00e9.txt": b"accented\n",
        "100%.txt": b"percent\n",
        "data.json": b'{"a": 1}\n',
        "style.css": b"body { color: red }\n",
        "pic.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>\n",
        "mod.wasm": b"\x00asm\x01\x00\x00\x00",
        "font.woff2": b"wOF2fake",
        "img.webp": b"RIFF....WEBP",
        "img.avif": b"....ftypavif",
        "mod.mjs": b"export default 1;\n",
        "noext": b"binary?\n",
        "empty.txt": b"",
        "app.js": JS,
        "app.js.gz": gzip.compress(JS, mtime=0),
        "app.js.br": BR_BYTES,
        "only-gz.css": b"p { margin: 0 }\n",
        "only-gz.css.gz": gzip.compress(b"p { margin: 0 }\n", mtime=0),
        ".env": b"PASSWORD=hunter2\n",
        ".git/config": b"[core]\n",
        "sub/index.html": b"sub index\n",
        "sub/page.txt": b"sub page\n",
        "noindex/file.txt": b"no index here\n",
        "dir with space/index.html": b"spaced dir\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    big = random.Random(20240501).randbytes(BIG_SIZE)
    (root / "big.bin").write_bytes(big)
    # An hour old: a Last-Modified within a second of the response's Date is a weak validator
    # (RFC 9110 §8.8.2.2), which If-Range must not match; files written just now would make
    # the If-Range answers depend on how fast the tests run.
    an_hour_ago = time.time() - 3600
    for name in [*files, "big.bin"]:
        os.utime(root / name, (an_hour_ago, an_hour_ago))
    if hasattr(os, "symlink"):
        os.symlink(outer / "secret.txt", root / "link-out.txt")
        os.symlink(outer, root / "dir-out")
        os.symlink(outer / "www-secret", root / "dir-out2")
        os.symlink(root / "hello.txt", root / "link-in.txt")
        os.symlink("/etc/passwd", root / "passwd")
        # a precompressed "sibling" that is really the secret
        os.symlink(outer / "secret.txt", root / "style.css.gz")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo")
    return Site(outer, root, big)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return _build_site(tmp_path_factory.mktemp("static"))


def _start(site: Site, *args: str, **kwargs: object) -> ServerProcess:
    return ServerProcess(APP, *args, env={ROOT_ENV: str(site.root)}, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[ServerProcess]:
    with _start(site) as proc:
        yield proc


def _loops() -> list[str]:
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        loops.insert(0, "uvloop")
    return loops


@pytest.fixture(scope="module", params=_loops())
def loop_server(request: pytest.FixtureRequest, site: Site) -> Iterator[ServerProcess]:
    """The same app, once per event loop: for tests of how bodies are sent."""
    with _start(site, "--loop", request.param) as proc:
        proc.loop_name = request.param  # type: ignore[attr-defined]
        yield proc


# --------------------------------------------------------------------------------------------
# a minimal raw HTTP client: exact bytes out, exact framing in


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def h(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Conn:
    """One raw TCP connection; requests may be pipelined, responses are read in order."""

    def __init__(self, server: ServerProcess, rcvbuf: int | None = None, timeout: float = 15.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # A small receive window makes the server feel a slow client at once.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((server.host, server.port))
        self.buf = b""

    def send(self, method: str, target: bytes | str, headers: dict[str, str] | None = None) -> None:
        if isinstance(target, str):
            target = target.encode("utf-8")
        lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode("latin-1"))
        self.sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")

    def _fill(self) -> bool:
        data = self.sock.recv(256 * 1024)
        self.buf += data
        return bool(data)

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a complete head: {self.buf[:200]!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        return status, headers

    def read_exact(self, n: int) -> bytes:
        # the pieces are joined once: growing one bytes object by each read would copy a
        # multi-megabyte body dozens of times over
        pieces, have = [self.buf], len(self.buf)
        while have < n:
            data = self.sock.recv(min(256 * 1024, max(n - have, 64 * 1024)))
            if not data:
                raise ConnectionError(f"closed after {have} of {n} body bytes")
            pieces.append(data)
            have += len(data)
        whole = b"".join(pieces)
        data, self.buf = whole[:n], whole[n:]
        return data

    def response(self, method: str = "GET") -> Resp:
        status, headers = self.read_head()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Resp(status, headers, b"")
        assert "transfer-encoding" not in headers, "files are sent with Content-Length"
        return Resp(status, headers, self.read_exact(int(headers["content-length"])))

    def request(
        self, method: str, target: bytes | str, headers: dict[str, str] | None = None
    ) -> Resp:
        self.send(method, target, headers)
        return self.response(method)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get(
    server: ServerProcess,
    target: bytes | str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Resp:
    with Conn(server) as conn:
        return conn.request(method, target, headers)


# --------------------------------------------------------------------------------------------
# lookup: index files, redirects, queries, encoded names


class TestLookup:
    def test_root_serves_index(self, server: ServerProcess) -> None:
        r = get(server, "/")
        assert r.status == 200
        assert r.body == b"<!doctype html><h1>home</h1>\n"
        assert r.h("content-type") == "text/html; charset=utf-8"

    def test_directory_index(self, server: ServerProcess) -> None:
        assert get(server, "/sub/").body == b"sub index\n"
        assert get(server, "/dir%20with%20space/").body == b"spaced dir\n"

    def test_directory_redirects_to_trailing_slash(self, server: ServerProcess) -> None:
        r = get(server, "/sub")
        assert r.status == 301
        assert r.h("location") == "/sub/"
        r = get(server, "/sub?x=1&y=two")
        assert r.status == 301 and r.h("location") == "/sub/?x=1&y=two"
        r = get(server, "/dir%20with%20space")
        assert r.status == 301 and r.h("location") == "/dir%20with%20space/"

    def test_redirect_is_not_an_open_redirect(self, server: ServerProcess) -> None:
        # "//sub" must not become "Location: //sub/", which a browser reads as host "sub".
        r = get(server, "//sub")
        assert r.status == 301 and r.h("location") == "/sub/"

    def test_directory_without_index(self, server: ServerProcess) -> None:
        assert get(server, "/noindex/").status == 404
        assert get(server, "/noindex/file.txt").body == b"no index here\n"

    def test_query_ignored(self, server: ServerProcess) -> None:
        r = get(server, "/hello.txt?v=123&x=%2e%2e/secret.txt")
        assert r.status == 200 and r.body == b"hello world\n"

    def test_percent_encoded_names(self, server: ServerProcess) -> None:
        assert get(server, "/sp%20ace.txt").body == b"with a space\n"
        assert get(server, "/caf%C3%A9.txt").body == b"accented\n"
        assert get(server, "/caf%c3%a9.txt").body == b"accented\n"
        assert get(server, "/100%25.txt").body == b"percent\n"
        assert get(server, "/%68ello.txt").body == b"hello world\n"

    def test_missing(self, server: ServerProcess) -> None:
        r = get(server, "/nope.txt")
        assert r.status == 404
        assert get(server, "/hello.txt/").status == 404
        assert get(server, "/sub/nope/").status == 404

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
    def test_fifo_is_not_served_and_does_not_block(self, server: ServerProcess) -> None:
        assert get(server, "/fifo").status == 404
        assert get(server, "/hello.txt").status == 200  # the worker is not stuck

    def test_absolute_form_target(self, server: ServerProcess) -> None:
        r = get(server, "http://127.0.0.1/hello.txt")
        assert r.status == 200 and r.body == b"hello world\n"

    def test_async_handler(self, server: ServerProcess) -> None:
        r = get(server, "/async/hello.txt")
        assert r.status == 200 and r.body == b"hello world\n"
        r = get(server, "/async/big.bin", {"Range": "bytes=10-19"})
        assert r.status == 206 and r.body == get(server, "/big.bin").body[10:20]

    def test_file_server_from_async_handler(self, server: ServerProcess, site: Site) -> None:
        with Conn(server) as conn:
            r = conn.request("GET", "/async-one/whatever")
            assert r.status == 200 and r.body == site.big  # large: sent from the file
            r = conn.request("GET", "/async-one/", {"Range": "bytes=-100"})
            assert r.status == 206 and r.body == site.big[-100:]
            r = conn.request("GET", "/async-one/", {"If-None-Match": r.h("etag") or ""})
            assert r.status == 304 and r.body == b""
            r = conn.request("HEAD", "/async-one/")
            assert r.status == 200 and r.h("content-length") == str(BIG_SIZE)
            assert conn.request("POST", "/async-one/").status == 405

    def test_file_server(self, server: ServerProcess) -> None:
        for target in ("/one/", "/one/anything", "/one/../../secret.txt"):
            r = get(server, target)
            assert r.status == 200 and r.body == b"hello world\n"

    def test_keep_alive_many_requests(self, server: ServerProcess) -> None:
        with Conn(server) as conn:
            for _ in range(20):
                assert conn.request("GET", "/hello.txt").body == b"hello world\n"
                assert conn.request("GET", "/nope").status == 404

    def test_with_httpx(self, server: ServerProcess) -> None:
        with httpx.Client(base_url=server.url) as client:
            r = client.get("/style.css")
            assert r.status_code == 200 and r.text == "body { color: red }\n"
            r = client.get("/sub", follow_redirects=True)
            assert r.status_code == 200 and r.text == "sub index\n"
            # httpx decodes the precompressed gzip variant itself
            r = client.get("/app.js", headers={"Accept-Encoding": "gzip"})
            assert r.headers["content-encoding"] == "gzip"
            assert r.content == JS


# --------------------------------------------------------------------------------------------
# content types


@pytest.mark.parametrize(
    "target, content_type",
    [
        ("/index.html", "text/html; charset=utf-8"),
        ("/hello.txt", "text/plain; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/mod.mjs", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/pic.svg", "image/svg+xml; charset=utf-8"),
        ("/mod.wasm", "application/wasm"),
        ("/font.woff2", "font/woff2"),
        ("/img.webp", "image/webp"),
        ("/img.avif", "image/avif"),
        ("/big.bin", "application/octet-stream"),
        ("/noext", "application/octet-stream"),
    ],
)
def test_content_type(server: ServerProcess, target: str, content_type: str) -> None:
    r = get(server, target, method="HEAD")
    assert r.status == 200
    assert r.h("content-type") == content_type


# --------------------------------------------------------------------------------------------
# security: nothing outside the root, no hidden files


def _traversal_targets(site: Site) -> list[bytes]:
    secret_abs = str(site.outer / "secret.txt").encode()
    targets = [
        b"/../secret.txt",
        b"/../../secret.txt",
        b"/sub/../../secret.txt",
        b"/./../secret.txt",
        b"//../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E/secret.txt",
        b"/.%2e/secret.txt",
        b"/%2e./secret.txt",
        b"/sub/%2e%2e/%2e%2e/secret.txt",
        b"/..%2fsecret.txt",
        b"/..%2Fsecret.txt",
        b"/%2e%2e%2fsecret.txt",
        b"/sub%2f..%2f..%2fsecret.txt",
        b"/..%5csecret.txt",
        b"/%2e%2e%5csecret.txt",
        b"/..\\secret.txt",
        b"/sub\\..\\..\\secret.txt",
        b"/%252e%252e/secret.txt",  # double encoding: a literal "%2e%2e" name, not ".."
        b"/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots
        b"/..%00/secret.txt",
        b"/secret.txt%00",
        b"/hello.txt%00/../../secret.txt",
        b"/" + secret_abs,  # "//tmp/.../secret.txt"
        b"/%2f" + secret_abs.lstrip(b"/"),
        b"/%2F" + secret_abs.replace(b"/", b"%2F").lstrip(b"%2F"),
        b"http://127.0.0.1/../secret.txt",
        b"http://127.0.0.1/%2e%2e/secret.txt",
        b"http://127.0.0.1" + secret_abs,
        b"/../www-secret/secret.txt",
        b"/%2e%2e/www-secret/secret.txt",
        b"/link-out.txt",
        b"/dir-out/secret.txt",
        b"/dir-out/www-secret/secret.txt",
        b"/dir-out2/secret.txt",
        b"/passwd",
        b"/dir-out/",
        b"/.env",
        b"/%2eenv",
        b"/.git/config",
        b"/%2egit/config",
        b"/sub/../.env",
        b"/async/../secret.txt",
        b"/async/%2e%2e/secret.txt",
        b"/hidden-ok/../secret.txt",
        b"/hidden-ok/%2e%2e/secret.txt",
        b"/nogz/..%2fsecret.txt",
    ]
    return targets


def test_traversal_never_serves_the_secret(server: ServerProcess, site: Site) -> None:
    failures = []
    for target in _traversal_targets(site):
        with Conn(server) as conn:
            conn.sock.sendall(
                b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = read_until_closed(conn.sock, 15)
        status_line = data.split(b"\r\n", 1)[0]
        ok_status = status_line.split(b" ")[1:2] in ([b"400"], [b"403"], [b"404"])
        if SECRET.strip() in data or b"PASSWORD" in data or b"root:" in data or not ok_status:
            failures.append((target, status_line))
    assert failures == []
    assert get(server, "/hello.txt").status == 200  # and the server is fine


def test_secret_not_reachable_through_precompressed_symlink(server: ServerProcess) -> None:
    # style.css.gz is a symlink to the secret: it must be ignored, not served as the gzip variant.
    r = get(server, "/style.css", {"Accept-Encoding": "gzip"})
    assert r.status == 200
    assert r.h("content-encoding") is None
    assert r.body == b"body { color: red }\n"
    assert SECRET.strip() not in r.body


def test_hidden_files_only_when_enabled(server: ServerProcess) -> None:
    assert get(server, "/.env").status == 404
    r = get(server, "/hidden-ok/.env")
    assert r.status == 200 and r.body == b"PASSWORD=hunter2\n"
    # showing hidden files does not open the way out
    assert get(server, "/hidden-ok/..%2f..%2fsecret.txt").status == 404


def test_symlink_inside_root_is_followed(server: ServerProcess) -> None:
    if not hasattr(os, "symlink"):
        pytest.skip("needs symlinks")
    assert get(server, "/link-in.txt").body == b"hello world\n"


def test_bad_percent_encoding(server: ServerProcess) -> None:
    for target in ("/%", "/%2", "/%zz.txt", "/a%2"):
        assert get(server, target).status == 400


# --------------------------------------------------------------------------------------------
# methods, HEAD


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"]
)
def test_other_methods_get_405(server: ServerProcess, method: str) -> None:
    r = get(server, "/hello.txt", method=method)
    assert r.status == 405
    assert r.h("allow") == "GET, HEAD"


def test_post_with_body_then_next_request(server: ServerProcess) -> None:
    with Conn(server) as conn:
        conn.sock.sendall(
            b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert conn.response().status == 405
        assert conn.response().body == b"hello world\n"


def test_head_has_get_headers_and_no_body(loop_server: ServerProcess, site: Site) -> None:
    with Conn(loop_server) as conn:
        full = conn.request("GET", "/big.bin")
        # Pipelined: if HEAD sent a body, the GET's answer would be garbage.
        conn.send("HEAD", "/big.bin")
        conn.send("GET", "/hello.txt")
        head = conn.response("HEAD")
        after = conn.response()
    assert head.status == 200
    assert head.h("content-length") == str(BIG_SIZE)
    for name in ("etag", "last-modified", "content-type", "accept-ranges", "cache-control"):
        assert head.h(name) == full.h(name)
    assert after.status == 200 and after.body == b"hello world\n"


def test_head_with_range(loop_server: ServerProcess) -> None:
    with Conn(loop_server) as conn:
        conn.send("HEAD", "/big.bin", {"Range": "bytes=100-199"})
        conn.send("GET", "/hello.txt")
        head = conn.response("HEAD")
        assert conn.response().body == b"hello world\n"
    assert head.status == 206
    assert head.h("content-length") == "100"
    assert head.h("content-range") == f"bytes 100-199/{BIG_SIZE}"


# --------------------------------------------------------------------------------------------
# validators, 304, Cache-Control


class TestConditional:
    def test_validators_on_every_file(self, server: ServerProcess, site: Site) -> None:
        r = get(server, "/hello.txt")
        st = os.stat(site.root / "hello.txt")
        etag = r.h("etag")
        assert etag is not None and etag.startswith('"') and etag.endswith('"')
        assert r.h("last-modified") == time.strftime(
            "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(int(st.st_mtime))
        )
        assert r.h("cache-control") == "no-cache"
        assert r.h("accept-ranges") == "bytes"
        assert get(server, "/hello.txt").h("etag") == etag  # stable

    def test_if_none_match(self, server: ServerProcess) -> None:
        etag = get(server, "/hello.txt").h("etag")
        assert etag
        with Conn(server) as conn:
            r = conn.request("GET", "/hello.txt", {"If-None-Match": etag})
            assert r.status == 304
            assert r.h("etag") == etag
            assert r.h("content-length") is None
            # no body was sent: the next answer on this connection parses cleanly
            assert conn.request("GET", "/hello.txt").body == b"hello world\n"
            r = conn.request("GET", "/hello.txt", {"If-None-Match": f'"nope", W/{etag}'})
            assert r.status == 304
            r = conn.request("HEAD", "/hello.txt", {"If-None-Match": etag})
            assert r.status == 304
            r = conn.request("GET", "/hello.txt", {"If-None-Match": '"other"'})
            assert r.status == 200 and r.body == b"hello world\n"
            r = conn.request("GET", "/hello.txt", {"If-None-Match": "*"})
            assert r.status == 304

    def test_if_modified_since(self, server: ServerProcess) -> None:
        last_modified = get(server, "/hello.txt").h("last-modified")
        assert last_modified
        with Conn(server) as conn:
            r = conn.request("GET", "/hello.txt", {"If-Modified-Since": last_modified})
            assert r.status == 304
            r = conn.request(
                "GET", "/hello.txt", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
            )
            assert r.status == 200 and r.body == b"hello world\n"
            r = conn.request("GET", "/hello.txt", {"If-Modified-Since": "garbage"})
            assert r.status == 200
            # If-None-Match takes precedence over If-Modified-Since
            r = conn.request(
                "GET", "/hello.txt", {"If-None-Match": '"x"', "If-Modified-Since": last_modified}
            )
            assert r.status == 200

    def test_if_match_and_unmodified_since(self, server: ServerProcess) -> None:
        r = get(server, "/hello.txt")
        etag, last_modified = r.h("etag"), r.h("last-modified")
        assert etag and last_modified
        assert get(server, "/hello.txt", {"If-Match": etag}).status == 200
        assert get(server, "/hello.txt", {"If-Match": '"x"'}).status == 412
        assert get(server, "/hello.txt", {"If-Unmodified-Since": last_modified}).status == 200
        assert (
            get(
                server, "/hello.txt", {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
            ).status
            == 412
        )

    def test_changed_file_is_served_fresh(self, server: ServerProcess, site: Site) -> None:
        path = site.root / "changing.txt"
        path.write_bytes(b"version one\n")
        first = get(server, "/changing.txt")
        assert first.body == b"version one\n"
        path.write_bytes(b"version two, longer\n")
        # Make sure the mtime moves even on coarse-timestamp filesystems.
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        second = get(server, "/changing.txt")
        assert second.body == b"version two, longer\n"
        assert second.h("content-length") == str(len(b"version two, longer\n"))
        assert second.h("etag") != first.h("etag")
        assert first.h("etag")
        again = get(server, "/changing.txt", {"If-None-Match": first.h("etag") or ""})
        assert again.status == 200 and again.body == b"version two, longer\n"

    def test_removed_file_is_404(self, server: ServerProcess, site: Site) -> None:
        path = site.root / "doomed.txt"
        path.write_bytes(b"soon gone\n")
        assert get(server, "/doomed.txt").status == 200
        path.unlink()
        assert get(server, "/doomed.txt").status == 404
        path.write_bytes(b"back again\n")
        assert get(server, "/doomed.txt").body == b"back again\n"


# --------------------------------------------------------------------------------------------
# ranges


class TestRanges:
    @pytest.mark.parametrize(
        "spec, start, end",
        [
            ("bytes=0-0", 0, 0),
            ("bytes=0-99", 0, 99),
            ("bytes=1000000-2999999", 1000000, 2999999),
            (f"bytes={BIG_SIZE - 10}-", BIG_SIZE - 10, BIG_SIZE - 1),
            ("bytes=-100", BIG_SIZE - 100, BIG_SIZE - 1),
            (f"bytes=5-{BIG_SIZE * 2}", 5, BIG_SIZE - 1),
            ("bytes=0-", 0, BIG_SIZE - 1),
        ],
    )
    def test_single_range(
        self, loop_server: ServerProcess, site: Site, spec: str, start: int, end: int
    ) -> None:
        r = get(loop_server, "/big.bin", {"Range": spec})
        assert r.status == 206
        assert r.h("content-range") == f"bytes {start}-{end}/{BIG_SIZE}"
        assert r.h("content-length") == str(end - start + 1)
        assert r.body == site.big[start : end + 1]

    @pytest.mark.parametrize(
        "spec", [f"bytes={BIG_SIZE}-", f"bytes={BIG_SIZE + 5}-{BIG_SIZE + 10}", "bytes=-0"]
    )
    def test_unsatisfiable(self, server: ServerProcess, spec: str) -> None:
        with Conn(server) as conn:
            r = conn.request("GET", "/big.bin", {"Range": spec})
            assert r.status == 416
            assert r.h("content-range") == f"bytes */{BIG_SIZE}"
            assert conn.request("GET", "/hello.txt").body == b"hello world\n"

    def test_empty_file(self, server: ServerProcess) -> None:
        r = get(server, "/empty.txt", {"Range": "bytes=0-"})
        assert r.status == 416 and r.h("content-range") == "bytes */0"
        r = get(server, "/empty.txt")
        assert r.status == 200 and r.body == b"" and r.h("content-length") == "0"

    @pytest.mark.parametrize("spec", ["bytes=5-1", "bytes=abc", "items=0-5", "bytes=0-1,x"])
    def test_invalid_range_ignored(self, server: ServerProcess, spec: str) -> None:
        r = get(server, "/hello.txt", {"Range": spec})
        assert r.status == 200 and r.body == b"hello world\n"

    def test_multiple_ranges_give_full_file(self, server: ServerProcess) -> None:
        r = get(server, "/hello.txt", {"Range": "bytes=0-1,5-6"})
        assert r.status == 200 and r.body == b"hello world\n"
        r = get(server, "/hello.txt", {"Range": "bytes=0-3,2-5"})  # overlapping: coalesced
        assert r.status == 206 and r.body == b"hello " and r.h("content-range") == "bytes 0-5/12"

    def test_if_range(self, server: ServerProcess) -> None:
        r = get(server, "/hello.txt")
        etag, last_modified = r.h("etag"), r.h("last-modified")
        assert etag and last_modified
        r = get(server, "/hello.txt", {"Range": "bytes=0-4", "If-Range": etag})
        assert r.status == 206 and r.body == b"hello"
        r = get(server, "/hello.txt", {"Range": "bytes=0-4", "If-Range": '"stale"'})
        assert r.status == 200 and r.body == b"hello world\n"
        r = get(server, "/hello.txt", {"Range": "bytes=0-4", "If-Range": last_modified})
        assert r.status == 206 and r.body == b"hello"
        r = get(
            server,
            "/hello.txt",
            {"Range": "bytes=0-4", "If-Range": "Sat, 01 Jan 2000 00:00:00 GMT"},
        )
        assert r.status == 200

    def test_304_wins_over_range(self, server: ServerProcess) -> None:
        etag = get(server, "/hello.txt").h("etag") or ""
        r = get(server, "/hello.txt", {"Range": "bytes=0-4", "If-None-Match": etag})
        assert r.status == 304


# --------------------------------------------------------------------------------------------
# precompressed siblings


class TestPrecompressed:
    def test_brotli_preferred(self, server: ServerProcess) -> None:
        r = get(server, "/app.js", {"Accept-Encoding": "gzip, deflate, br"})
        assert r.status == 200
        assert r.h("content-encoding") == "br"
        assert r.h("vary") == "Accept-Encoding"
        assert r.h("content-type") == "text/javascript; charset=utf-8"
        assert r.body == BR_BYTES

    def test_gzip(self, server: ServerProcess, site: Site) -> None:
        r = get(server, "/app.js", {"Accept-Encoding": "gzip"})
        assert r.h("content-encoding") == "gzip"
        assert r.h("vary") == "Accept-Encoding"
        assert r.body == (site.root / "app.js.gz").read_bytes()
        assert gzip.decompress(r.body) == JS
        r = get(server, "/app.js", {"Accept-Encoding": "br;q=0, gzip;q=0.5"})
        assert r.h("content-encoding") == "gzip"

    def test_identity_when_not_accepted(self, server: ServerProcess) -> None:
        for accept in (None, "identity", "br;q=0, gzip;q=0", "deflate"):
            r = get(server, "/app.js", {"Accept-Encoding": accept} if accept else None)
            assert r.h("content-encoding") is None
            assert r.h("vary") == "Accept-Encoding"  # a variant exists, so the answer varies
            assert r.body == JS

    def test_variant_has_its_own_etag(self, server: ServerProcess) -> None:
        plain = get(server, "/app.js")
        br = get(server, "/app.js", {"Accept-Encoding": "br"})
        gz = get(server, "/app.js", {"Accept-Encoding": "gzip"})
        assert len({plain.h("etag"), br.h("etag"), gz.h("etag")}) == 3
        r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-None-Match": gz.h("etag") or ""})
        assert r.status == 304 and r.h("vary") == "Accept-Encoding"
        r = get(server, "/app.js", {"Accept-Encoding": "br", "If-None-Match": gz.h("etag") or ""})
        assert r.status == 200 and r.body == BR_BYTES

    def test_only_one_sibling(self, server: ServerProcess) -> None:
        r = get(server, "/only-gz.css", {"Accept-Encoding": "br, gzip"})
        assert r.h("content-encoding") == "gzip"
        assert gzip.decompress(r.body) == b"p { margin: 0 }\n"
        r = get(server, "/only-gz.css", {"Accept-Encoding": "br"})
        assert r.h("content-encoding") is None and r.h("vary") == "Accept-Encoding"

    def test_no_vary_without_siblings(self, server: ServerProcess) -> None:
        assert get(server, "/hello.txt", {"Accept-Encoding": "gzip, br"}).h("vary") is None

    def test_range_on_variant(self, server: ServerProcess, site: Site) -> None:
        gz = (site.root / "app.js.gz").read_bytes()
        r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
        assert r.status == 206 and r.body == gz[:10]
        assert r.h("content-range") == f"bytes 0-9/{len(gz)}"

    def test_disabled(self, server: ServerProcess) -> None:
        r = get(server, "/nogz/app.js", {"Accept-Encoding": "gzip, br"})
        assert r.h("content-encoding") is None and r.h("vary") is None and r.body == JS

    def test_head_on_variant(self, server: ServerProcess) -> None:
        r = get(server, "/app.js", {"Accept-Encoding": "br"}, method="HEAD")
        assert r.h("content-encoding") == "br" and r.h("content-length") == str(len(BR_BYTES))


# --------------------------------------------------------------------------------------------
# large files: byte for byte, concurrently, bounded memory, files changing while sent


def test_big_file_byte_for_byte(loop_server: ServerProcess, site: Site) -> None:
    r = get(loop_server, "/big.bin")
    assert r.status == 200
    assert r.h("content-length") == str(BIG_SIZE)
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(site.big).hexdigest()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(server certificate and key, CA) made with trustme, for 127.0.0.1."""
    trustme = pytest.importorskip("trustme")
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    cert, ca_file = directory / "server.pem", directory / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_file))
    return str(cert), str(ca_file)


@pytest.mark.parametrize("loop", _loops())
def test_file_bodies_over_tls(site: Site, tls_files: tuple[str, str], loop: str) -> None:
    # sendfile cannot encrypt: over TLS the engine must fall back to reads, byte for byte.
    cert, ca_file = tls_files
    with _start(site, "--loop", loop, "--ssl-certfile", cert) as proc:
        assert proc.url.startswith("https://")
        context = ssl.create_default_context(cafile=ca_file)
        with httpx.Client(base_url=proc.url, verify=context, timeout=30) as client:
            r = client.get("/big.bin")
            assert r.status_code == 200 and r.headers["content-length"] == str(BIG_SIZE)
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(site.big).digest()
            r = client.get(
                "/big.bin", headers={"Range": "bytes=1000-2000999"}
            )  # large range: from the file
            assert r.status_code == 206 and r.content == site.big[1000:2001000]
            r = client.get("/hello.txt")  # small: read at once, sent with the head
            assert r.status_code == 200 and r.content == b"hello world\n"
            r = client.get("/app.js", headers={"Accept-Encoding": "gzip"})
            assert r.headers["content-encoding"] == "gzip" and r.content == JS  # httpx decodes


def test_big_file_with_httpx_streaming(loop_server: ServerProcess, site: Site) -> None:
    digest = hashlib.sha256()
    size = 0
    with httpx.stream("GET", loop_server.url + "/big.bin", timeout=30) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            digest.update(chunk)
            size += len(chunk)
    assert size == BIG_SIZE
    assert digest.hexdigest() == hashlib.sha256(site.big).hexdigest()


def test_big_file_twice_on_one_connection(loop_server: ServerProcess, site: Site) -> None:
    with Conn(loop_server) as conn:
        conn.send("GET", "/big.bin")
        conn.send("GET", "/big.bin", {"Range": "bytes=-1000"})
        conn.send("GET", "/hello.txt")
        assert conn.response().body == site.big
        assert conn.response().body == site.big[-1000:]
        assert conn.response().body == b"hello world\n"


def test_concurrent_big_downloads(loop_server: ServerProcess, site: Site) -> None:
    expected = hashlib.sha256(site.big).hexdigest()
    results: list[object] = []

    def download() -> None:
        try:
            results.append(hashlib.sha256(get(loop_server, "/big.bin").body).hexdigest())
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=download) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [expected] * 4


def _sparse_file(path: Path, size: int) -> None:
    # Sparse: a large file that costs no disk and reads as zeros.
    with open(path, "wb") as f:
        f.truncate(size)


def _read_body_counting(conn: Conn, length: int) -> tuple[int, bool]:
    """Read up to ``length`` body bytes without keeping them: (bytes read, all zero)."""
    got = len(conn.buf)
    zero = not conn.buf.strip(b"\0")
    conn.buf = b""
    while got < length:
        data = conn.sock.recv(1024 * 1024)
        if not data:
            break
        got += len(data)
        zero = zero and not data.strip(b"\0")
    return got, zero


def test_file_unlinked_while_sending_is_sent_whole(loop_server: ServerProcess, site: Site) -> None:
    path = site.root / f"unlinked-{loop_server.loop_name}.bin"  # type: ignore[attr-defined]
    _sparse_file(path, SPARSE_SIZE)
    with Conn(loop_server, rcvbuf=64 * 1024) as conn:
        conn.send("GET", "/" + path.name)
        status, headers = conn.read_head()
        assert status == 200 and headers["content-length"] == str(SPARSE_SIZE)
        path.unlink()  # the open descriptor keeps the data alive
        got, zero = _read_body_counting(conn, SPARSE_SIZE)
        assert (got, zero) == (SPARSE_SIZE, True)
        assert conn.request("GET", "/hello.txt").body == b"hello world\n"


def test_file_truncated_while_sending_closes_connection(
    loop_server: ServerProcess, site: Site, request: pytest.FixtureRequest
) -> None:
    """A file that shrinks mid-send cannot honour its Content-Length: the connection must be
    cut (so the client sees a short body), never left open with the stream out of step."""
    path = site.root / f"shrinking-{loop_server.loop_name}.bin"  # type: ignore[attr-defined]
    _sparse_file(path, SPARSE_SIZE)
    with Conn(loop_server, rcvbuf=64 * 1024) as conn:
        conn.send("GET", "/" + path.name)
        status, headers = conn.read_head()
        assert status == 200 and headers["content-length"] == str(SPARSE_SIZE)
        got, _ = _read_body_counting(conn, 1024 * 1024)
        with open(path, "r+b") as f:
            f.truncate(2 * 1024 * 1024)
        # Pipeline a second request: if the server wrongly believed the first response
        # complete, its answer would show up inside what we read as the first body.
        try:
            conn.send("GET", "/hello.txt")
        except OSError:
            pass  # already cut: fine
        rest = read_until_closed(conn.sock, 20)
    assert got + len(rest) < SPARSE_SIZE
    assert b"HTTP/1.1" not in rest


@pytest.mark.long
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for memory use")
@pytest.mark.parametrize("loop", _loops())
def test_large_file_memory_is_bounded(site: Site, loop: str) -> None:
    # twice the growth allowed below: a server that buffered the file (or read ahead of the
    # client by half of it) fails. 8 MiB is many times every buffer on the way (the client's
    # 64 KiB receive buffer, the server's read chunks); a correct server grows by a few KiB
    # here (0-4 KiB measured), so the size only needs to make buffering the file visible
    size = 8 * 1024 * 1024
    path = site.root / f"huge-{loop}.bin"
    _sparse_file(path, size)

    def memory(proc: ServerProcess, field: str) -> int:
        with open(f"/proc/{proc.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field}")

    # A fresh server, so its peak memory so far is its start-up footprint.
    with _start(site, "--loop", loop) as proc:
        assert get(proc, "/hello.txt").status == 200
        before = memory(proc, "VmRSS")
        with Conn(proc, rcvbuf=64 * 1024) as conn:
            conn.send("GET", "/" + path.name)
            status, headers = conn.read_head()
            assert status == 200 and headers["content-length"] == str(size)
            time.sleep(0.3)  # a slow client: the server must wait, not read ahead
            got, zero = _read_body_counting(conn, size)
        assert (got, zero) == (size, True)
        peak = memory(proc, "VmHWM")
    path.unlink()
    assert peak - before < size // 2, f"server grew by {(peak - before) >> 20} MiB"


# --------------------------------------------------------------------------------------------
# `peregrine static DIR` and the examples


def test_peregrine_static_command(site: Site) -> None:
    with ServerProcess(command=["static", str(site.root)]) as proc:
        r = get(proc, "/")
        assert r.status == 200 and r.body == b"<!doctype html><h1>home</h1>\n"
        assert r.h("cache-control") == "no-cache"
        assert get(proc, "/big.bin", {"Range": "bytes=0-9"}).body == site.big[:10]
        assert get(proc, "/%2e%2e/secret.txt").status == 404
        assert get(proc, "/.env").status == 404
        assert get(proc, "/app.js", {"Accept-Encoding": "br"}).h("content-encoding") == "br"
        assert get(proc, "/hello.txt", method="POST").status == 405


def test_peregrine_static_with_workers(site: Site) -> None:
    with ServerProcess(command=["static", str(site.root)], workers=2) as proc:
        for _ in range(10):
            assert get(proc, "/hello.txt").body == b"hello world\n"
        assert get(proc, "/big.bin").body == site.big


def test_peregrine_static_options(site: Site) -> None:
    args = [
        "--cache-control",
        "public, max-age=60",
        "--show-hidden",
        "--precompressed",
        "false",
        "--index",
        "page.txt",
    ]
    with ServerProcess(None, *args, command=["static", str(site.root)]) as proc:
        assert get(proc, "/hello.txt").h("cache-control") == "public, max-age=60"
        assert get(proc, "/.env").status == 200
        assert get(proc, "/app.js", {"Accept-Encoding": "br"}).h("content-encoding") is None
        assert get(proc, "/sub/").body == b"sub page\n"
        assert get(proc, "/../secret.txt").status == 404  # dot-segments stay inside the root


def test_peregrine_static_missing_directory(site: Site) -> None:
    result = run_peregrine("static", str(site.outer / "nope"), "--port", "0", timeout=30)
    assert result.returncode != 0
    assert "not a directory" in result.stderr


def test_example_dirserver() -> None:
    with ServerProcess(script=["examples/dirserver/app.py"]) as proc:
        r = get(proc, "/")
        assert r.status == 200 and b"<title>" in r.body
        assert r.h("content-type") == "text/html; charset=utf-8"
        assert get(proc, "/style.css").h("content-type") == "text/css; charset=utf-8"
        assert get(proc, "/app.js").h("content-type") == "text/javascript; charset=utf-8"
        r = get(proc, "/api/hello")
        assert r.status == 200 and b'"hello": "world"' in r.body
        assert get(proc, "/../app.py").status == 404  # dot-segments stay inside the root


def test_example_fileserver(site: Site) -> None:
    with ServerProcess(script=["examples/fileserver.py", str(site.root / "style.css")]) as proc:
        r = get(proc, "/any/path")
        assert r.status == 200 and r.body == b"body { color: red }\n"
    with ServerProcess(script=["examples/fileserver.py"]) as proc:
        r = get(proc, "/")
        assert r.status == 200 and b"FileServer" in r.body


FUTURE_SECONDS = 400 * 24 * 3600  # an mtime a bit more than a year ahead


STALL_SIZE = 32 * 1024 * 1024


def _tmpfs_dir() -> Path | None:
    """A directory on tmpfs (which stores any 64-bit mtime; ext4 clamps at 2446), or None."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    return shm


@pytest.fixture(scope="module")
def mtime_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    shm = _tmpfs_dir()
    if shm is not None:
        import tempfile

        outer = Path(tempfile.mkdtemp(prefix="peregrine-mtimes-", dir=shm))
    else:
        outer = tmp_path_factory.mktemp("mtimes")
    root = outer / "www"
    root.mkdir()
    (outer / "secret.txt").write_bytes(SECRET)
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "future.txt").write_bytes(b"from the future\n")
    future = int(time.time()) + FUTURE_SECONDS
    os.utime(root / "future.txt", (future, future))
    (root / "far-future.txt").write_bytes(b"far\n")
    os.utime(root / "far-future.txt", ns=(0, 10**17 * 10**9))  # year ~3e9 where the fs allows
    with open(root / "stall.bin", "wb") as f:
        f.truncate(STALL_SIZE)  # sparse: costs no disk
    yield root
    if shm is not None:
        import shutil

        shutil.rmtree(outer, ignore_errors=True)


@pytest.fixture(scope="module")
def mtime_server(mtime_site: Path) -> Iterator[ServerProcess]:
    with ServerProcess(APP, env={ROOT_ENV: str(mtime_site)}) as proc:
        yield proc


def _exchange(mtime_server: ServerProcess, headers: dict[str, str], target: str = "/hello.txt"):
    with Conn(mtime_server, timeout=4) as conn:
        return conn.request("GET", target, headers)


def test_range_with_thousands_of_digits_end_to_end(mtime_server: ServerProcess) -> None:
    r = _exchange(mtime_server, {"Range": "bytes=0-" + "9" * 5000})
    assert (r.status, r.body[:5]) == (206, b"hello")


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Modified-Since": YEAR_ZERO},
        {"If-Unmodified-Since": YEAR_ZERO},
        {"Range": "bytes=0-4", "If-Range": YEAR_ZERO},
    ],
    ids=["if-modified-since", "if-unmodified-since", "if-range"],
)
def test_year_zero_date_end_to_end(mtime_server: ServerProcess, headers: dict[str, str]) -> None:
    # An invalid date must be ignored (RFC 9110 section 13.1.3/13.1.4/13.1.5): full 200.
    r = _exchange(mtime_server, headers)
    assert r.status == 200 and r.body == b"hello world\n"


def test_future_mtime_is_not_sent_as_last_modified(mtime_server: ServerProcess) -> None:
    r = _exchange(mtime_server, {}, "/future.txt")
    assert r.status == 200
    last_modified = parsedate_to_datetime(r.h("last-modified") or "")
    date = parsedate_to_datetime(r.h("date") or "")
    assert last_modified <= date


def test_far_future_mtime_is_not_a_500(mtime_site: Path, mtime_server: ServerProcess) -> None:
    if os.stat(mtime_site / "far-future.txt").st_mtime < 253402300800:  # 10000-01-01
        pytest.skip("this filesystem clamps mtimes (tmpfs at /dev/shm shows the bug)")
    r = _exchange(mtime_server, {}, "/far-future.txt")
    assert r.status == 200 and r.body == b"far\n"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_stalled_client_is_dropped_during_a_file_body(mtime_site: Path, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with ServerProcess(
        APP, "--loop", loop, "--send-timeout", "0.5", env={ROOT_ENV: str(mtime_site)}
    ) as proc:
        with Conn(proc, rcvbuf=64 * 1024, timeout=4) as conn:
            conn.send("GET", "/stall.bin")
            status, headers = conn.read_head()
            assert status == 200 and headers["content-length"] == str(STALL_SIZE)
            time.sleep(2.0)  # read nothing for 4x the send timeout
            got = len(conn.buf)
            try:
                while got < STALL_SIZE:
                    data = conn.sock.recv(1024 * 1024)
                    if not data:
                        break
                    got += len(data)
            except (TimeoutError, ConnectionResetError):
                pass
    assert got < STALL_SIZE, "the server waited for the stalled client instead of dropping it"
