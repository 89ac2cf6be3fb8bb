"""The cheap paths taken for common requests give exactly the answers of the general ones.

Each shortcut in static serving (the plain-path fast path of ``split_target``, the
``faccessat`` hint for precompressed siblings, skipping header lookups when no conditional
header can be present, the per-name extension cache, descriptors instead of file objects)
is checked here against the long way round.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from peregrine.http.headers import Headers
from peregrine.http.request import Request
from peregrine.http.response import Response
from peregrine.util import DirServer, beneath, mimetypes
from peregrine.util.beneath import Dir, Tree
from peregrine.util.paths import BadPath, RequestPath, split_target, split_target_tuple

TARGETS = [
    b"/",
    b"/a",
    b"/a/",
    b"//a//b//",
    b"/static/6k.bin",
    b"/caf\xc3\xa9/x.txt",
    b"/a b/c",
    b"/\xff",
    b"/a/\xc3",
    b"/.env",
    b"/a/..",
    b"/a/./b",
    b"/%2e%2e/x",
    b"/a%2fb",
    b"/a%00",
    b"/a\\b",
    b"/a\x00b",
    b"/x.",
    b"/..x",
    b"/a.b.c/",
    b"/a%20b",
    b"/%zz",
]


def _split(raw: bytes, show_hidden: bool) -> object:
    try:
        return split_target_tuple(raw, show_hidden)
    except BadPath as exc:
        return exc.status


@pytest.mark.parametrize("show_hidden", [False, True])
@pytest.mark.parametrize("raw", TARGETS)
def test_split_fast_path_agrees_with_the_general_one(raw: bytes, show_hidden: bool) -> None:
    # A "?" sends any target the general way; the query itself is dropped by both.
    assert _split(raw, show_hidden) == _split(raw + b"?q=/../%zz", show_hidden)
    result = _split(raw, show_hidden)
    if isinstance(result, tuple):
        assert split_target(raw, show_hidden) == RequestPath(*result)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "app.js").write_bytes(b"plain\n")
    (root / "app.js.br").write_bytes(b"BR")
    (root / "page.txt").write_bytes(b"page\n")
    (root / "sub").mkdir()
    if hasattr(os, "symlink"):
        os.symlink("nowhere", root / "dangling.br")
    return root


@pytest.mark.skipif(not beneath.RACE_FREE, reason="the hint needs descriptors")
def test_may_exist(root: Path) -> None:
    tree = Tree(str(root.resolve()))
    parent = tree.open_dir(())
    assert parent is not None
    try:
        assert tree.may_exist(parent, "app.js.br")
        assert tree.may_exist(parent, "sub")
        assert not tree.may_exist(parent, "page.txt.br")
        assert not tree.may_exist(parent, "missing")
        if hasattr(os, "symlink"):
            assert tree.may_exist(parent, "dangling.br")  # a link is there, wherever it points
        assert tree.may_exist(Dir(None, ()), "missing")  # no descriptor: no hint
    finally:
        parent.close()


def _call(
    server: DirServer, target: bytes, headers: list[tuple[str, str]] = None, method: str = "GET"
) -> Response:
    if headers is None:
        headers = []
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    resp = Response()
    server.serve(Request(method, target, b"", "1.1", Headers(raw)), resp)
    return resp


def test_siblings_found_where_faccessat_is_refused(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sandbox may refuse faccessat2 (EPERM), which os.access reports as False: the
    # self-check on the root then turns the hint off instead of hiding every sibling.
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    server = DirServer(root)
    resp = _call(server, b"/app.js", [("Accept-Encoding", "br")])
    assert resp.status == 200 and resp.body == b"BR"
    assert (
        resp.get_header("Content-Encoding") == "br" and resp.get_header("Vary") == "Accept-Encoding"
    )
    resp = _call(server, b"/page.txt")
    assert resp.status == 200 and resp.body == b"page\n" and resp.get_header("Vary") is None


def test_conditional_headers_in_any_case_and_among_others(root: Path) -> None:
    server = DirServer(root)
    etag = _call(server, b"/page.txt").get_header("ETag")
    assert etag
    # Referer starts like Range but is none of them: a full answer.
    resp = _call(server, b"/page.txt", [("Referer", "http://x/"), ("Accept", "*/*")])
    assert resp.status == 200 and resp.body == b"page\n"
    assert _call(server, b"/page.txt", [("Referer", "x"), ("IF-NONE-MATCH", etag)]).status == 304
    assert _call(server, b"/page.txt", [("if-match", '"other"')]).status == 412
    resp = _call(server, b"/page.txt", [("rAnGe", "bytes=1-2")])
    assert resp.status == 206 and resp.body == b"ag"
    resp = _call(server, b"/page.txt", [("Range", "bytes=1-2"), ("If-Range", '"other"')])
    assert resp.status == 200 and resp.body == b"page\n"


def test_type_cache_reads_the_table_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mimetypes.guess_type("x.peregrine-test") == mimetypes.guess_type("x.peregrine-test")
    monkeypatch.setitem(mimetypes.TYPES, ".peregrine-test", "text/x-test")
    assert mimetypes.guess_type("x.peregrine-test") == "text/x-test"
    assert mimetypes.guess_type("X.PEREGRINE-TEST") == "text/x-test"
    assert mimetypes.guess_type("..peregrine-test") == mimetypes.DEFAULT_TYPE  # as splitext says


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_no_descriptor_leaks(root: Path) -> None:
    server = DirServer(root)
    etag = _call(server, b"/page.txt").get_header("ETag")
    requests: list[tuple[bytes, list[tuple[str, str]], str]] = [
        (b"/page.txt", [], "GET"),
        (b"/page.txt", [("If-None-Match", etag or "")], "GET"),
        (b"/page.txt", [("If-Match", '"x"')], "GET"),
        (b"/page.txt", [("Range", "bytes=100-")], "GET"),
        (b"/page.txt", [("Range", "bytes=1-")], "GET"),
        (b"/app.js", [("Accept-Encoding", "br")], "GET"),
        (b"/app.js", [("Accept-Encoding", "gzip")], "GET"),
        (b"/missing", [], "GET"),
        (b"/sub", [], "GET"),
        (b"/page.txt/", [], "GET"),
    ]

    def run() -> None:
        for target, headers, method in requests:
            resp = _call(server, target, headers, method)
            if resp.file is not None:
                resp.file[0].close()
        resp = _call(server, b"/page.txt", method="HEAD")
        assert resp.file is not None  # HEAD answers from the file, which the server closes
        resp.file[0].close()

    run()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        run()
    assert len(os.listdir("/proc/self/fd")) == before
