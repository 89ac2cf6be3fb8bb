"""The supervisor's metrics listener: a few lines of HTTP, never blocking the supervisor.

The supervisor is a single-threaded ``selectors`` loop that must stay responsive to signals and
to its workers, so nothing here blocks: the listening socket and each scrape connection are
non-blocking and registered in that selector with a callback. A request is read until the end of
its head (at most :data:`_MAX_HEAD` bytes); ``GET /metrics`` (or ``/``) gets the page, anything
else a 404/405/400, and the connection is closed after one answer. At most :data:`_MAX_PENDING`
scrapes wait at once and none longer than :data:`_PENDING_TIMEOUT`: a client that connects and
sends nothing cannot pile up descriptors.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections.abc import Callable

from .text import CONTENT_TYPE

log = logging.getLogger("peregrine")

_MAX_HEAD = 8192
_MAX_PENDING = 16
_PENDING_TIMEOUT = 5.0


class MetricsEndpoint:
    """Serves ``render()`` on ``host:port`` through ``selector``; close it with :meth:`close`."""

    def __init__(
        self, selector: selectors.BaseSelector, host: str, port: int, render: Callable[[], str]
    ) -> None:
        self.selector = selector
        self.render = render
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(64)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.address = self.sock.getsockname()
        #: scrape connections being read: socket -> (bytes so far, when it was accepted)
        self.pending: dict[socket.socket, tuple[bytes, float]] = {}
        selector.register(self.sock, selectors.EVENT_READ, self._accept)

    def _accept(self) -> None:
        self._expire()
        for _ in range(_MAX_PENDING):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("metrics listener: accept() failed: %s", exc)
                return
            if len(self.pending) >= _MAX_PENDING:
                oldest = min(self.pending, key=lambda s: self.pending[s][1])
                self._drop(oldest)
            conn.setblocking(False)
            self.pending[conn] = (b"", time.monotonic())
            self.selector.register(conn, selectors.EVENT_READ, lambda c=conn: self._read(c))

    def _read(self, conn: socket.socket) -> None:
        head, since = self.pending[conn]
        try:
            data = conn.recv(_MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        head += data
        if b"\r\n\r\n" not in head and b"\n\n" not in head:
            if len(head) >= _MAX_HEAD:
                self._answer(conn, 431, "request head too large\n")
            else:
                self.pending[conn] = (head, since)
            return
        line = head.split(b"\n", 1)[0].decode("latin-1").split()
        if len(line) != 3 or not line[2].startswith("HTTP/"):
            self._answer(conn, 400, "bad request\n")
        elif line[0] not in ("GET", "HEAD"):
            self._answer(conn, 405, "only GET\n")
        elif line[1].split("?", 1)[0] not in ("/metrics", "/"):
            self._answer(conn, 404, "the metrics are at /metrics\n")
        else:
            try:
                page = self.render()
            except Exception:
                log.exception("metrics: rendering failed")
                self._answer(conn, 500, "rendering failed\n")
                return
            self._answer(conn, 200, page, CONTENT_TYPE, head_only=line[0] == "HEAD")

    def _answer(
        self,
        conn: socket.socket,
        status: int,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        head_only: bool = False,
    ) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(
            status, "Request Header Fields Too Large" if status == 431 else "Internal Server Error"
        )
        body = text.encode("utf-8")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        try:
            # the page is a few KB: the socket's send buffer takes it whole; if not, it is cut
            conn.send(head if head_only else head + body)
        except OSError:
            pass
        self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self.pending.pop(conn, None)
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _expire(self) -> None:
        now = time.monotonic()
        for conn, (_, since) in list(self.pending.items()):
            if now - since > _PENDING_TIMEOUT:
                self._drop(conn)

    def close(self) -> None:
        """Close the listener and any scrape still being read."""
        for conn in list(self.pending):
            self._drop(conn)
        try:
            self.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()
