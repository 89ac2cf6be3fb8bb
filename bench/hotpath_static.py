"""Drive one Peregrine connection in-process to count the cost of serving a small static file.

Like ``hotpath.py`` (same counting transport, no sockets), but the handler is the benchmark's
static case: ``GET /static/6k.bin`` (6150 bytes, in a temporary directory) answered by
``peregrine.util.DirServer``, dispatched on ``req.path`` as ``bench/apps/peregrine_app.py`` does.
What is measured is Peregrine's Python work per request plus the file system calls DirServer
makes (their user-space side; callgrind does not count the kernel). Run it under callgrind with
``bench/hotpath_static.sh``.

``CONDITIONAL=1`` sends the file's ETag in If-None-Match (a browser revalidating its copy: the
answer is 304); ``OPEN_FILE_CACHE_MS=0`` turns the open-file cache off.

A body larger than ``DirServer``'s in-memory limit would go through ``send_file``, i.e. the
connection's async path: the loop is then run until every response is written
(``SIZE=100000 N=10 python bench/hotpath_static.py`` checks that the driver handles it).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from hotpath import CountingTransport, new_loop
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.util import DirServer
from peregrine.util.conditional import make_etag

SIZE = int(os.environ.get("SIZE", "6150"))
# What wrk sends (plus the Accept-Encoding of a typical client when ENCODING is set).
_ENCODING = os.environ.get("ENCODING")
REQUEST = (
    b"GET /static/6k.bin HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
    + (f"Accept-Encoding: {_ENCODING}\r\n".encode() if _ENCODING else b"")
    + b"\r\n"
)


_CONDITIONAL = os.environ.get("CONDITIONAL") == "1"
_CACHE_MS = float(os.environ.get("OPEN_FILE_CACHE_MS", "1000"))


class Handler:
    def __init__(self, root: str) -> None:
        self.static = DirServer(root, prefix="/static/", open_file_cache_ms=_CACHE_MS)

    def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
        if req.path.startswith("/static/"):
            self.static.serve(req, resp)
        else:
            resp.status = 404
            resp.set_body(b"")


class FileTransport(CountingTransport):
    """The counting transport, plus what ``send_file``'s path asks of a transport."""

    def __init__(self) -> None:
        super().__init__()
        self.first = b""  # the first response, kept to check it

    def write(self, data: bytes) -> None:  # type: ignore[override]
        if not self.writes:
            self.first += data
        self.writes += 1

    def writelines(self, data) -> None:  # type: ignore[no-untyped-def,override]
        if not self.writes:
            self.first += b"".join(data)
        self.writes += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "socket":
            return None  # no socket: send_file falls back to reading the file
        return super().get_extra_info(name, default)


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    loop = new_loop()
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "6k.bin"), "wb") as f:
            f.write(b"x" * SIZE)
        # An mtime well in the past, as a deployed file's: no "recent file" Date header.
        os.utime(os.path.join(root, "6k.bin"), (time.time() - 86400,) * 2)
        request = REQUEST
        if _CONDITIONAL:
            etag = make_etag(os.stat(os.path.join(root, "6k.bin")))
            request = REQUEST[:-2] + f"If-None-Match: {etag}\r\n\r\n".encode()
        connection = HttpConnection(ServerState(Config(), Handler(root), loop))
        transport = FileTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        feed = connection.data_received
        start = time.process_time()
        for _ in range(count):
            feed(request)
            if transport.writes < _ + 1:
                # The response went to the async path (send_file): let the loop finish it.
                loop.run_until_complete(asyncio.sleep(0))
                while transport.writes < _ + 1:
                    loop.run_until_complete(asyncio.sleep(0))
        elapsed = time.process_time() - start
        assert transport.writes >= count, transport.writes
        head, _, body = transport.first.partition(b"\r\n\r\n")
        status = b"304" if _CONDITIONAL else b"200"
        assert head.startswith(b"HTTP/1.1 " + status) and b"\r\netag: " in head.lower(), head
        assert _CONDITIONAL or SIZE > 65536 or body == b"x" * SIZE, len(body)
        connection.connection_lost(None)
    print(
        f"{count} requests, {elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath_static.sh)"
    )


if __name__ == "__main__":
    main()
