"""Review of issue 5 (static files): regressions found by review, fixed since.

Each test reproduced a defect the review found (they were strict xfails until the fix).
Some are end to end (a real server, ``tests.util.static_app``); the races are reproduced
in-process, deterministically, by doing the attacker's move at the exact point of the
window (wrapping ``os.open`` / ``os.readlink`` for the duration of one call).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from peregrine.http.response import Response
from peregrine.util import DirServer
from peregrine.util.conditional import parse_http_date
from peregrine.util.ranges import UNSATISFIABLE, ByteRange, evaluate_range

from ..helpers import ServerProcess
from .test_static_e2e import Conn
from .test_static_unit import _body, _request, _response

APP = "tests.util.static_app:Handler"
ROOT_ENV = "PEREGRINE_TEST_STATIC_ROOT"
SECRET = b"TOP SECRET: never serve this\n"
YEAR_ZERO = "Sun, 06 Nov 0000 08:49:37 GMT"  # well-formed IMF-fixdate, year 0
FUTURE_SECONDS = 400 * 24 * 3600  # an mtime a bit more than a year ahead
STALL_SIZE = 32 * 1024 * 1024


def _tmpfs_dir() -> Path | None:
    """A directory on tmpfs (which stores any 64-bit mtime; ext4 clamps at 2446), or None."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    return shm


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    shm = _tmpfs_dir()
    if shm is not None:
        import tempfile

        outer = Path(tempfile.mkdtemp(prefix="peregrine-review-", dir=shm))
    else:
        outer = tmp_path_factory.mktemp("review")
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
def server(site: Path) -> Iterator[ServerProcess]:
    with ServerProcess(APP, env={ROOT_ENV: str(site)}) as proc:
        yield proc


def _exchange(server: ServerProcess, headers: dict[str, str], target: str = "/hello.txt"):
    with Conn(server, timeout=4) as conn:
        return conn.request("GET", target, headers)


# --------------------------------------------------------------------------------------------
# Request headers that crash the handler (500 + a traceback in the log for each request)


def test_range_with_thousands_of_digits_is_not_an_error() -> None:
    # The grammar is 1*DIGIT; the head limit (32 KiB) lets 5000 digits through.
    assert evaluate_range("bytes=0-" + "9" * 5000, 10) == ByteRange(0, 9)  # to the end
    assert evaluate_range("bytes=" + "9" * 5000 + "-", 10) == UNSATISFIABLE  # past the end
    assert evaluate_range("bytes=-" + "9" * 5000, 10) == ByteRange(0, 9)  # the whole file


def test_range_with_thousands_of_digits_end_to_end(server: ServerProcess) -> None:
    r = _exchange(server, {"Range": "bytes=0-" + "9" * 5000})
    assert r.status == 206 and r.body.startswith(b"hello")


def test_http_date_year_zero_is_invalid_not_an_error() -> None:
    assert parse_http_date(YEAR_ZERO) is None
    assert parse_http_date("Sun Nov  6 08:49:37 0000") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Modified-Since": YEAR_ZERO},
        {"If-Unmodified-Since": YEAR_ZERO},
        {"Range": "bytes=0-4", "If-Range": YEAR_ZERO},
    ],
    ids=["if-modified-since", "if-unmodified-since", "if-range"],
)
def test_year_zero_date_end_to_end(server: ServerProcess, headers: dict[str, str]) -> None:
    # An invalid date must be ignored (RFC 9110 section 13.1.3/13.1.4/13.1.5): full 200.
    r = _exchange(server, headers)
    assert r.status == 200 and r.body == b"hello world\n"


# --------------------------------------------------------------------------------------------
# Last-Modified from a future mtime


def test_future_mtime_is_not_sent_as_last_modified(server: ServerProcess) -> None:
    r = _exchange(server, {}, "/future.txt")
    assert r.status == 200
    last_modified = parsedate_to_datetime(r.h("last-modified") or "")
    date = parsedate_to_datetime(r.h("date") or "")
    assert last_modified <= date


def test_far_future_mtime_is_not_a_500(site: Path, server: ServerProcess) -> None:
    if os.stat(site / "far-future.txt").st_mtime < 253402300800:  # 10000-01-01
        pytest.skip("this filesystem clamps mtimes (tmpfs at /dev/shm shows the bug)")
    r = _exchange(server, {}, "/far-future.txt")
    assert r.status == 200 and r.body == b"far\n"


# --------------------------------------------------------------------------------------------
# Races between the containment checks (lstat walk) and the open: TOCTOU


def _race_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "page.txt").write_bytes(b"public\n")
    (root / "sub" / "page.txt").write_bytes(b"public too\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "page.txt").write_bytes(SECRET)
    return root, outside


def _swap_before_open(monkeypatch: pytest.MonkeyPatch, swap) -> None:  # type: ignore[no-untyped-def]
    """Run ``swap()`` once, just before the first ``os.open`` of the request."""
    real_open = os.open
    done = []

    def racing_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not done:
            done.append(True)
            swap()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", racing_open)


def test_file_swapped_for_symlink_before_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = _race_tree(tmp_path)
    server = DirServer(root)

    def swap() -> None:  # the attacker (anyone who can write in the tree) wins the race
        os.remove(root / "page.txt")
        os.symlink(outside / "page.txt", root / "page.txt")

    _swap_before_open(monkeypatch, swap)
    resp = _response()
    server.serve(_request(target=b"/page.txt"), resp)
    monkeypatch.undo()
    assert SECRET not in _body(resp)


def test_directory_swapped_for_symlink_before_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = _race_tree(tmp_path)
    server = DirServer(root)

    def swap() -> None:
        os.rename(root / "sub", tmp_path / "sub-moved")
        os.symlink(outside, root / "sub")

    _swap_before_open(monkeypatch, swap)
    resp = _response()
    server.serve(_request(target=b"/sub/page.txt"), resp)
    monkeypatch.undo()
    assert SECRET not in _body(resp)


def test_symlink_replaced_while_resolved_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen for real: flipping a name between a file and a symlink while requesting it gave
    # "OSError: [Errno 22] Invalid argument" from realpath's readlink in about 1 request in 400.
    root = tmp_path / "root"
    root.mkdir()
    (root / "target.txt").write_bytes(b"inside\n")
    os.symlink(root / "target.txt", root / "x.txt")
    server = DirServer(root)
    real_readlink = os.readlink
    done = []

    def racing_readlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not done and os.fspath(path).endswith("x.txt"):
            done.append(True)
            os.remove(root / "x.txt")  # the link becomes a plain file between lstat and readlink
            (root / "x.txt").write_bytes(b"now a file\n")
        return real_readlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", racing_readlink)
    resp = _response()
    try:
        server.serve(_request(target=b"/x.txt"), resp)
    finally:
        monkeypatch.undo()
    assert resp.status == 404  # the name changed under the lookup: answered as missing
    _body(resp)


# --------------------------------------------------------------------------------------------
# Response.send_file with a path: a FIFO blocks the worker


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_send_file_path_to_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[object] = []

    def call() -> None:
        try:
            Response().send_file(str(fifo))
            outcome.append("returned")
        except Exception as exc:  # refusing a non-regular file is fine
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(2)
    blocked = thread.is_alive()
    if blocked:  # release the thread: a writer lets open() return
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        thread.join(5)
        os.close(fd)
    assert not blocked


# --------------------------------------------------------------------------------------------
# The send timeout does not apply to files sent with loop.sendfile (asyncio)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_stalled_client_is_dropped_during_a_file_body(site: Path, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with ServerProcess(
        APP, "--loop", loop, "--send-timeout", "0.5", env={ROOT_ENV: str(site)}
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
