"""The open-file cache of DirServer and FileServer: fresh after changes, bounded, no leaks, still safe.

The servers are driven in-process with real Request/Response objects on a temporary tree;
open descriptors are counted in /proc/self/fd (Linux).
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from peregrine.http.headers import Headers
from peregrine.http.request import Request
from peregrine.http.response import Response
from peregrine.util import DirServer, FileServer
from peregrine.util.filecache import OpenFileCache
from peregrine.util.static import SMALL_FILE, make_static_handler

LONG = 60_000  # ms: nothing expires during a test
SHORT = 50  # ms: expires after a short sleep

needs_proc_fd = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd"
)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _get(server, target: bytes, method: str = "GET", headers=()):
    path, _, query = target.partition(b"?")
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    resp = Response()
    server.serve(Request(method, path, query, "1.1", Headers(raw)), resp)
    return resp


def _body(resp) -> bytes:
    if resp.file is not None:
        f, offset, count = resp.file
        try:
            return os.pread(f.fileno(), count, offset)
        finally:
            f.close()
    return bytes(resp.body)


def _expire() -> None:
    time.sleep(SHORT / 1000 * 2)


def _replace(path, data: bytes) -> None:
    """Write ``data`` next to ``path`` and rename it over ``path`` (an atomic replace)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET\n")
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / ".env").write_bytes(b"PASSWORD=1\n")
    (root / "sub").mkdir()
    (root / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    os.symlink(tmp_path / "secret.txt", root / "link-out.txt")
    os.symlink(tmp_path, root / "dir-out")
    os.symlink(tmp_path / "secret.txt", root / "hello.txt.gz")  # sibling escaping the root
    return root


@pytest.fixture
def servers():
    made = []

    def make(*args, **kwargs):
        server = (kwargs.pop("cls", DirServer))(*args, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


class TestFreshness:
    def test_atomic_replace_is_served_fresh_at_once(self, root, servers):
        server = servers(root, open_file_cache_ms=LONG)
        assert _body(_get(server, b"/hello.txt")) == b"hello world\n"
        _replace(root / "hello.txt", b"version two\n")
        # The old file has no links left: the fstat of the cached descriptor shows it.
        assert _body(_get(server, b"/hello.txt")) == b"version two\n"

    def test_replaced_file_with_another_link_is_fresh_after_the_interval(self, root, servers):
        os.link(root / "hello.txt", root.parent / "keep.txt")  # the old inode stays linked
        server = servers(root, open_file_cache_ms=SHORT)
        first = _get(server, b"/hello.txt")
        assert _body(first) == b"hello world\n"
        _replace(root / "hello.txt", b"version two, longer\n")
        _expire()
        resp = _get(server, b"/hello.txt")
        assert _body(resp) == b"version two, longer\n"
        assert resp.get_header("ETag") != first.get_header("ETag")

    def test_within_the_interval_a_still_linked_old_file_is_served_whole(self, root, servers):
        os.link(root / "hello.txt", root.parent / "keep.txt")
        server = servers(root, open_file_cache_ms=LONG)
        first = _get(server, b"/hello.txt")
        _replace(root / "hello.txt", b"version two, longer\n")
        resp = _get(server, b"/hello.txt")
        # Stale for at most the interval, but consistent: the old bytes with their own validators.
        assert _body(resp) == b"hello world\n"
        assert resp.get_header("ETag") == first.get_header("ETag")

    def test_file_rewritten_in_place_is_served_fresh_at_once(self, root, servers):
        server = servers(root, open_file_cache_ms=LONG)
        first = _get(server, b"/hello.txt")
        path = root / "hello.txt"
        path.write_bytes(b"HELLO WORLD\n")  # same size, same inode
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        resp = _get(server, b"/hello.txt")
        assert _body(resp) == b"HELLO WORLD\n"
        assert resp.get_header("ETag") != first.get_header("ETag")

    def test_deleted_file_becomes_404(self, root, servers):
        server = servers(root, open_file_cache_ms=LONG)
        assert _get(server, b"/hello.txt").status == 200
        (root / "hello.txt").unlink()
        assert _get(server, b"/hello.txt").status == 404

    def test_deleted_file_with_another_link_becomes_404_after_the_interval(self, root, servers):
        os.link(root / "hello.txt", root.parent / "keep.txt")
        server = servers(root, open_file_cache_ms=SHORT)
        assert _get(server, b"/hello.txt").status == 200
        (root / "hello.txt").unlink()
        _expire()
        assert _get(server, b"/hello.txt").status == 404

    def test_new_precompressed_sibling_is_found_after_the_interval(self, root, servers):
        (root / "app.js").write_bytes(b"plain\n")
        server = servers(root, open_file_cache_ms=SHORT)
        gzip = [("Accept-Encoding", "gzip")]
        assert _get(server, b"/app.js", headers=gzip).get_header("Content-Encoding") is None
        (root / "app.js.gz").write_bytes(b"GZ")
        _expire()
        resp = _get(server, b"/app.js", headers=gzip)
        assert resp.get_header("Content-Encoding") == "gzip"
        assert _body(resp) == b"GZ"
        assert _body(_get(server, b"/app.js")) == b"plain\n"  # not accepted: the file itself

    def test_unchanged_file_keeps_its_descriptor_across_revalidation(self, root, servers):
        server = servers(root, open_file_cache_ms=SHORT)
        _get(server, b"/hello.txt")
        fd = server._cache._entries[("hello.txt",)].fd
        _expire()
        assert _body(_get(server, b"/hello.txt")) == b"hello world\n"
        assert server._cache._entries[("hello.txt",)].fd == fd

    def test_file_server_replace_and_delete(self, root, servers):
        path = root / "hello.txt"
        server = servers(path, cls=FileServer, open_file_cache_ms=LONG)
        assert _body(_get(server, b"/x")) == b"hello world\n"
        _replace(path, b"two\n")
        assert _body(_get(server, b"/x")) == b"two\n"
        path.unlink()
        assert _get(server, b"/x").status == 404


class TestExactAnswersWithAWarmCache:
    def test_conditional_and_range(self, root, servers):
        server = servers(root, open_file_cache_ms=LONG)
        etag = _get(server, b"/hello.txt").get_header("ETag")
        assert _get(server, b"/hello.txt", headers=[("If-None-Match", etag)]).status == 304
        resp = _get(server, b"/hello.txt", headers=[("Range", "bytes=0-4")])
        assert (resp.status, _body(resp)) == (206, b"hello")
        assert _get(server, b"/hello.txt", headers=[("Range", "bytes=99-")]).status == 416

    def test_repeated_plain_answers_are_the_same_and_conditionals_still_exact(self, root, servers):
        day_ago = time.time() - 86400  # no Date of the file's own: the header block is reused
        os.utime(root / "hello.txt", (day_ago, day_ago))
        server = servers(root, open_file_cache_ms=LONG, cache_control="max-age=60")
        first, second, head = (
            _get(server, b"/hello.txt"),
            _get(server, b"/hello.txt"),
            _get(server, b"/hello.txt", method="HEAD"),
        )
        assert first.status == second.status == head.status == 200
        assert first.headers == second.headers == head.headers
        assert [n for n, _ in first.headers] == [
            b"ETag", b"Last-Modified", b"Cache-Control", b"Content-Type", b"Accept-Ranges"
        ]  # fmt: skip
        assert _body(first) == _body(second) == b"hello world\n"
        etag = first.get_header("ETag")
        assert _get(server, b"/hello.txt", headers=[("If-None-Match", etag)]).status == 304
        resp = _get(server, b"/hello.txt", headers=[("Range", "bytes=0-4")])
        assert (resp.status, _body(resp)) == (206, b"hello")
        # headers the caller set first are replaced, not doubled
        path, raw = b"/hello.txt", [(b"Host", b"t")]
        resp = Response()
        resp.set_header("Cache-Control", "private")
        server.serve(Request("GET", path, b"", "1.1", Headers(raw)), resp)
        assert [v for n, v in resp.headers if n.lower() == b"cache-control"] == [b"max-age=60"]

    def test_file_server_without_cache_answers_a_changed_file_with_its_new_validators(
        self, root, servers
    ):
        path = root / "hello.txt"
        os.utime(path, (time.time() - 86400,) * 2)
        server = servers(str(path), cls=FileServer, open_file_cache_ms=0)
        before = [_get(server, b"/") for _ in range(2)]
        path.write_bytes(b"version two, longer\n")
        os.utime(path, (time.time() - 3600,) * 2)
        after = _get(server, b"/")
        assert before[0].headers == before[1].headers
        assert after.get_header("ETag") != before[0].get_header("ETag")
        assert after.get_header("Last-Modified") != before[0].get_header("Last-Modified")
        assert _body(after) == b"version two, longer\n"

    def test_head_and_large_file_send_a_duplicate_of_the_cached_descriptor(self, root, servers):
        big = b"x" * (SMALL_FILE + 1)
        (root / "big.bin").write_bytes(big)
        server = servers(root, open_file_cache_ms=LONG)
        for _ in range(3):  # the response closing its file leaves the cached one open
            assert _body(_get(server, b"/big.bin")) == big
            head = _get(server, b"/hello.txt", method="HEAD")
            assert head.status == 200 and head.file is not None
            head.file[0].close()
        cached = server._cache._entries[("big.bin",)].fd
        assert os.pread(cached, 3, 0) == b"xxx"

    @pytest.mark.parametrize(
        "target",
        [
            b"/../secret.txt",
            b"/%2e%2e/secret.txt",
            b"/link-out.txt",
            b"/dir-out/secret.txt",
            b"/.env",
            b"/hello.txt/",
            b"/sub/../../secret.txt",
        ],
    )
    def test_refusals_hold_with_the_cache_warm(self, root, servers, target):
        cached = servers(root, open_file_cache_ms=LONG)
        uncached = servers(root, open_file_cache_ms=0)
        for warm in (b"/hello.txt", b"/sub/page.html", b"/link-out.txt", b"/.env"):
            _get(cached, warm)
        resp = _get(cached, target)
        assert (resp.status, _get(uncached, target).status) == (404, 404)
        assert b"SECRET" not in _body(resp) and b"PASSWORD" not in _body(resp)

    def test_sibling_escaping_the_root_stays_refused_when_cached(self, root, servers):
        server = servers(root, open_file_cache_ms=LONG)
        for _ in range(2):
            resp = _get(server, b"/hello.txt", headers=[("Accept-Encoding", "gzip")])
            assert resp.get_header("Content-Encoding") is None
            assert _body(resp) == b"hello world\n"

    def test_file_swapped_for_a_symlink_out_is_refused_after_the_interval(self, root, servers):
        server = servers(root, open_file_cache_ms=SHORT)
        assert _get(server, b"/hello.txt").status == 200
        tmp = root / "swap"
        os.symlink(root.parent / "secret.txt", tmp)
        os.replace(tmp, root / "hello.txt")
        _expire()
        resp = _get(server, b"/hello.txt")
        assert resp.status == 404 and b"SECRET" not in _body(resp)


@needs_proc_fd
class TestDescriptors:
    def test_eviction_closes_descriptors(self, root, servers):
        for i in range(10):
            (root / f"f{i}.txt").write_bytes(b"%d\n" % i)
        before = _open_fds()
        server = servers(root, open_file_cache_ms=LONG, open_file_cache_entries=3)
        for i in range(10):
            assert _body(_get(server, b"/f%d.txt" % i)) == b"%d\n" % i
        assert len(server._cache) == 3
        assert _open_fds() - before == 3
        server.close()
        assert _open_fds() == before

    def test_least_recently_used_is_evicted_first(self, root, servers):
        for i in range(3):
            (root / f"f{i}.txt").write_bytes(b"x")
        server = servers(root, open_file_cache_ms=LONG, open_file_cache_entries=2)
        _get(server, b"/f0.txt")
        _get(server, b"/f1.txt")
        _get(server, b"/f0.txt")  # f0 used last: f1 goes
        _get(server, b"/f2.txt")
        assert set(server._cache._entries) == {("f0.txt",), ("f2.txt",)}

    def test_deleted_and_replaced_files_leave_no_descriptor(self, root, servers):
        before = _open_fds()
        server = servers(root, open_file_cache_ms=LONG)
        _get(server, b"/hello.txt")
        _replace(root / "hello.txt", b"two\n")
        _get(server, b"/hello.txt")
        assert _open_fds() - before == 1
        (root / "hello.txt").unlink()
        assert _get(server, b"/hello.txt").status == 404
        assert _open_fds() == before

    def test_cache_off_holds_no_descriptor(self, root, servers):
        before = _open_fds()
        server = servers(root, open_file_cache_ms=0)
        for _ in range(3):
            assert _body(_get(server, b"/hello.txt")) == b"hello world\n"
        assert server._cache is None
        assert _open_fds() == before

    def test_static_handler_close_closes_the_cache(self, root):
        before = _open_fds()
        handler = make_static_handler(root)()
        resp = Response()
        handler.handle_request(Request("GET", b"/hello.txt", b"", "1.1", Headers([])), resp)
        assert _open_fds() - before == 1
        handler.close()
        assert _open_fds() == before


class TestSettings:
    def test_negative_interval_is_refused(self, root):
        with pytest.raises(ValueError):
            DirServer(root, open_file_cache_ms=-1)

    @pytest.mark.parametrize("valid, entries", [(0, 10), (1, 0)])
    def test_cache_bounds_are_checked(self, valid, entries):
        with pytest.raises(ValueError):
            OpenFileCache(valid, entries)


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="symlinks and /proc/self/fd")
