"""Raw WSGI applications for the tests, one route per rule (``tests.wsgi.apps:app``).

State the tests ask about later (calls counted, iterables closed) lives in this module, which
the server process imports once: ``/closed?tag=T`` and ``/calls?tag=T`` report it.
"""

from __future__ import annotations

import contextvars
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

Start = Callable[..., Any]

CLOSED: set[str] = set()
CALLS: dict[str, int] = {}
_lock = threading.Lock()


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}


def _text(start: Start, body: bytes, status: str = "200 OK") -> list[bytes]:
    start(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Tracked:
    """An iterable that records its close() under ``tag``; may fail after ``fail_after`` chunks."""

    def __init__(
        self, tag: str, chunks: Iterable[bytes], fail_after: int = -1, delay: float = 0.0
    ) -> None:
        self.tag = tag
        self.chunks = chunks
        self.fail_after = fail_after
        self.delay = delay

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_after:
                raise RuntimeError("failed while producing the body")
            if i and self.delay:
                time.sleep(self.delay)
            yield chunk

    def close(self) -> None:
        with _lock:
            CLOSED.add(self.tag)


def _count(tag: str) -> None:
    with _lock:
        CALLS[tag] = CALLS.get(tag, 0) + 1


def app(environ: dict[str, Any], start: Start) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    q = _query(environ)
    route = ROUTES.get(path)
    if route is None:
        return _text(start, b"no such route " + path.encode("latin-1"), "404 Not Found")
    return route(environ, start, q)


def environ_json(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    shown = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple)) or k == "x"}
    shown["wsgi.input.readable"] = hasattr(environ["wsgi.input"], "read")
    shown["wsgi.errors.writable"] = hasattr(environ["wsgi.errors"], "write")
    shown["wsgi.file_wrapper.callable"] = callable(environ["wsgi.file_wrapper"])
    return _text(start, json.dumps(shown).encode())


def echo(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    _count(q.get("tag", "echo"))
    stream = environ["wsgi.input"]
    how = q.get("how", "read")
    if how == "read":
        data = stream.read()
    elif how == "read-1":
        data = stream.read(-1)
    elif how == "chunks":
        size = int(q.get("size", "1000"))
        parts = []
        while True:
            part = stream.read(size)
            if not part:
                break
            parts.append(part)
        data = b"".join(parts)
    elif how == "readline":
        parts = []
        while True:
            line = stream.readline()
            if not line:
                break
            parts.append(line)
        data = b"".join(parts)
    elif how == "readlines":
        data = b"".join(stream.readlines())
    elif how == "iter":
        data = b"".join(line for line in stream)
    else:
        raise ValueError(how)
    if "slow" in q:
        time.sleep(float(q["slow"]))
    return _text(start, data)


def slow_reader(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """Waits before reading the body, then reads it all: its length is the answer."""
    time.sleep(float(q.get("wait", "1")))
    total = 0
    while True:
        part = environ["wsgi.input"].read(65536)
        if not part:
            break
        total += len(part)
    return _text(start, str(total).encode())


def ignore_body(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    return _text(start, b"ignored")


def calls(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    with _lock:
        return _text(start, str(CALLS.get(q["tag"], 0)).encode())


def closed(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    with _lock:
        return _text(start, b"yes" if q["tag"] in CLOSED else b"no")


def sleep(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    time.sleep(float(q.get("s", "1")))
    return _text(start, b"slept")


_MEETINGS: dict[str, threading.Barrier] = {}


def _meeting(q: dict[str, str]) -> threading.Barrier:
    with _lock:
        return _MEETINGS.setdefault(q["tag"], threading.Barrier(int(q.get("n", "2")), timeout=10))


def meet(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """Wait until ``n`` requests with the same ``tag`` are all here ("met"), at most 10 s ("alone").

    Only requests that run at the same time can meet: it proves parallelism without timing it.
    """
    try:
        _meeting(q).wait()
    except threading.BrokenBarrierError:
        return _text(start, b"alone")
    return _text(start, b"met")


def waiting(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """How many requests wait in the meeting ``tag`` now."""
    return _text(start, str(_meeting(q).n_waiting).encode())


def stream(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """``n`` chunks; with ``gate=G``, chunk 1 is made only once a request joins ``/meet?tag=G``."""
    start("200 OK", [("Content-Type", "text/plain")])
    n = int(q.get("n", "3"))
    gate = q.get("gate")

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            if i == 1 and gate:
                _meeting({"tag": gate, "n": "2"}).wait()
            yield b"chunk %d\n" % i

    return Tracked(
        q.get("tag", "stream"),
        chunks(),
        fail_after=int(q.get("fail_after", "-1")),
        delay=float(q.get("delay", "0")),
    )


def big(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """``mb`` MiB of a generator's 64 KiB chunks (never held whole)."""
    size = int(q.get("mb", "200")) * 1024 * 1024
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in q:
        headers.append(("Content-Length", str(size)))
    start("200 OK", headers)
    block = b"x" * 65536
    return Tracked(q.get("tag", "big"), (block for _ in range(size // 65536)))


def rss(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return _text(start, line.split()[1].encode())  # kB
    return _text(start, b"0")


def fail_before(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    raise RuntimeError("failed before any output")


def fail_in_close(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    class Failing:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"body"])

        def close(self) -> None:
            raise RuntimeError("close failed")

    start("200 OK", [("Content-Type", "text/plain")])
    return Failing()


def start_twice(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    start("200 OK", [])
    start("200 OK", [])
    return [b"never"]


def exc_info_before(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    start("200 OK", [("X-First", "1")])
    try:
        raise ValueError("something went wrong")
    except ValueError:
        start("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced"]


def exc_info_after(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    write = start("200 OK", [("Content-Type", "text/plain")])
    write(b"first part\n")
    time.sleep(float(q.get("pause", "0")))  # lets the thread pool's loop send the head first
    try:
        raise ValueError("after output")
    except ValueError:
        start("500 Internal Server Error", [], sys.exc_info())  # re-raises
    return [b"never"]


def write_callable(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    write = start("200 OK", [("Content-Type", "text/plain")])
    write(b"written 1\n")
    write(b"written 2\n")
    return [b"returned\n"]


def bad_header(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    which = q.get("which", "crlf")
    if which == "crlf":
        headers = [("X-Bad", "a\r\nX-Injected: 1")]
    elif which == "name":
        headers = [("Bad Name", "x")]
    elif which == "bytes":
        headers = [(b"X-Bytes", b"x")]
    elif which == "status":
        return _text(start, b"x", "2000 Nope")
    else:
        headers = [("Content-Length", "ten")]
    start("200 OK", headers)
    return [b"never"]


def framing(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """The application tries to frame the body itself: Transfer-Encoding is dropped."""
    start("200 OK", [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")])
    return iter([b"hello ", b"world"])


def length_mismatch(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    start("200 OK", [("Content-Length", q.get("declared", "10"))])
    body = b"x" * int(q.get("sent", "5"))
    return [body] if q.get("kind") == "list" else iter([body[:2], body[2:]])


def failing_body(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """``chunks`` chunks of ``b"ab"`` (``delay`` s apart, so that the pool streams them), with
    Content-Length ``declared`` if given; the ``fail_at``-th raises ``error``: ``value`` (a
    ValueError whose message names Content-Length) or ``connection`` (the application's own
    ConnectionError). ``list=1``: the chunks as a list, made before the response starts."""
    headers = [("Content-Type", "text/plain")]
    if "declared" in q:
        headers.append(("Content-Length", q["declared"]))
    count = int(q.get("chunks", "3"))
    fail_at = int(q.get("fail_at", "-1"))
    delay = float(q.get("delay", "0"))
    errors: dict[str, Exception] = {
        "value": ValueError("the upstream sent a bad Content-Length"),
        "connection": ConnectionRefusedError("the database refused the connection"),
    }

    def chunks() -> Iterator[bytes]:
        for i in range(count):
            if i and delay:
                time.sleep(delay)
            if i == fail_at:
                raise errors[q.get("error", "value")]
            yield b"ab"

    start("200 OK", headers)
    return list(chunks()) if q.get("list") == "1" else chunks()


def status(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    code = q["code"]
    headers = [("Content-Type", "text/plain")]
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    start(f"{code} Whatever", headers)
    if environ["REQUEST_METHOD"] == "HEAD" and "length" in q:
        return []
    return iter([b"a body"]) if q.get("kind") == "iter" else [b"a body"]


def no_start(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    return [b"no start_response"]


def file_route(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    path = q["path"]
    kind = q.get("kind", "file")
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    wrapper = environ["wsgi.file_wrapper"]
    if kind == "file":
        f: Any = NoReadFile(path) if "no_read" in q else open(path, "rb")
        if "seek" in q:
            f.seek(int(q["seek"]))
    else:
        with open(path, "rb") as source:
            f = TrackedBytesIO(source.read(), q.get("tag", "bytesio"))
    start("200 OK", headers)
    return wrapper(f, int(q.get("block", "8192")))


class NoReadFile(io.FileIO):
    """A real file whose read() fails: it can only be sent by sendfile (or os.pread)."""

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        raise AssertionError("read() called: the file was not sent with sendfile")

    def close(self) -> None:
        with _lock:
            CLOSED.add("no_read_file")
        super().close()


class TrackedBytesIO(io.BytesIO):
    def __init__(self, data: bytes, tag: str) -> None:
        super().__init__(data)
        self.tag = tag

    def close(self) -> None:
        with _lock:
            CLOSED.add(self.tag)
        super().close()


def errors_stream(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    environ["wsgi.errors"].write("a line for the log\npartial ")
    environ["wsgi.errors"].write("line ends here\n")
    return _text(start, b"logged")


_SET_BY_A_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("set_by_a_request")


def context_var(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """What an earlier request left in a context variable (``seen=...``); ``?set=V`` sets it,
    ``&reset=1`` resets it before returning, ``&chunks=N`` answers in N chunks, each saying
    what the variable holds as the body is produced (the same context as the call)."""
    seen = _SET_BY_A_REQUEST.get("unset")
    token = _SET_BY_A_REQUEST.set(q["set"]) if "set" in q else None
    if token is not None and q.get("reset"):
        _SET_BY_A_REQUEST.reset(token)
    if "chunks" not in q:
        return _text(start, f"seen={seen}".encode())
    start("200 OK", [("Content-Type", "text/plain")])

    def chunks() -> Iterator[bytes]:
        for i in range(int(q["chunks"])):
            yield f"{i}:{_SET_BY_A_REQUEST.get('unset')};".encode()

    return chunks()


def scheduling_policy(environ: dict[str, Any], start: Start, q: dict[str, str]) -> Iterable[bytes]:
    """The scheduling policy of the thread running the application, as a number."""
    return _text(start, str(os.sched_getscheduler(0)).encode())


ROUTES: dict[str, Callable[[dict[str, Any], Start, dict[str, str]], Iterable[bytes]]] = {
    "/environ": environ_json,
    "/echo": echo,
    "/slow-reader": slow_reader,
    "/ignore-body": ignore_body,
    "/calls": calls,
    "/closed": closed,
    "/sleep": sleep,
    "/meet": meet,
    "/waiting": waiting,
    "/stream": stream,
    "/big": big,
    "/rss": rss,
    "/fail-before": fail_before,
    "/fail-in-close": fail_in_close,
    "/start-twice": start_twice,
    "/exc-info-before": exc_info_before,
    "/exc-info-after": exc_info_after,
    "/write": write_callable,
    "/bad-header": bad_header,
    "/framing": framing,
    "/length-mismatch": length_mismatch,
    "/failing-body": failing_body,
    "/status": status,
    "/no-start": no_start,
    "/file": file_route,
    "/errors": errors_stream,
    "/context-var": context_var,
    "/scheduling-policy": scheduling_policy,
}


def create_app() -> Callable[[dict[str, Any], Start], Iterable[bytes]]:
    """An application factory (``--factory``)."""
    return app


def oddly_named(env: dict[str, Any], respond: Start) -> Iterable[bytes]:
    """A WSGI app whose parameters are not named as PEP 3333 names them: ``--interface wsgi``."""
    return _text(respond, b"forced")
