"""Unit tests of the pure parts of static file serving, plus DirServer/FileServer driven in-process.

Tables first: Range parsing, conditional requests, ETags and dates, Accept-Encoding,
path splitting and containment, content types. Then DirServer and FileServer are called
directly with real Request/Response objects on a temporary tree (no sockets).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from peregrine.http.response import Response
from peregrine.util import DirServer
from peregrine.util.conditional import (
    evaluate_preconditions,
    http_date,
    if_range_allows,
    make_etag,
    parse_etags,
    parse_http_date,
)
from peregrine.util.mimetypes import DEFAULT_TYPE, guess_type, is_text_type
from peregrine.util.negotiation import accepts_encoding, parse_accept_encoding
from peregrine.util.paths import BadPath, is_within, parse_prefix, quote_segments, split_target
from peregrine.util.ranges import (
    FULL,
    MAX_RANGES,
    UNSATISFIABLE,
    ByteRange,
    content_range,
    evaluate_range,
    unsatisfied_content_range,
)

# --------------------------------------------------------------------------------------------
# RFC 9110 section 14: Range


class TestRange:
    @pytest.mark.parametrize(
        "header, size, expected",
        [
            (None, 100, FULL),
            ("bytes=0-0", 100, ByteRange(0, 0)),
            ("bytes=0-9", 100, ByteRange(0, 9)),
            ("bytes=10-19", 100, ByteRange(10, 19)),
            ("bytes=90-", 100, ByteRange(90, 99)),
            ("bytes=0-", 100, ByteRange(0, 99)),
            ("bytes=-10", 100, ByteRange(90, 99)),
            ("bytes=-100", 100, ByteRange(0, 99)),
            ("bytes=-1000", 100, ByteRange(0, 99)),  # longer suffix: the whole thing
            ("bytes=50-1000", 100, ByteRange(50, 99)),  # end clamped
            ("bytes=99-99", 100, ByteRange(99, 99)),
            ("BYTES=0-1", 100, ByteRange(0, 1)),  # unit is case-insensitive
            ("bytes= 0-1 ", 100, ByteRange(0, 1)),  # OWS around elements
            # unsatisfiable -> 416
            ("bytes=100-", 100, UNSATISFIABLE),
            ("bytes=100-200", 100, UNSATISFIABLE),
            ("bytes=-0", 100, UNSATISFIABLE),
            ("bytes=0-", 0, UNSATISFIABLE),
            ("bytes=200-300, 400-", 100, UNSATISFIABLE),
            # invalid -> ignored (200)
            ("bytes=5-1", 100, FULL),
            ("bytes=a-b", 100, FULL),
            ("bytes=", 100, FULL),
            ("bytes=-", 100, FULL),
            ("bytes=1", 100, FULL),
            ("bytes=+1-2", 100, FULL),
            ("bytes=1-+2", 100, FULL),
            ("bytes=1_0-20", 100, FULL),
            ("bytes=\u0661-2", 100, FULL),  # non-ASCII digit
            ("bytes=0-1, x", 100, FULL),  # one bad spec spoils the set
            ("bytes 0-1", 100, FULL),
            ("items=0-1", 100, FULL),  # unknown unit
            ("bytes=0-1;x", 100, FULL),
            # multiple ranges: coalesced when possible, else the full 200
            ("bytes=0-9, 20-29", 100, FULL),
            ("bytes=0-9, 5-19", 100, ByteRange(0, 19)),
            ("bytes=0-9, 10-19", 100, ByteRange(0, 19)),  # adjacent
            ("bytes=10-19, 0-9", 100, ByteRange(0, 19)),
            ("bytes=0-9, 200-", 100, ByteRange(0, 9)),  # unsatisfiable member dropped
            ("bytes=0-9, , 5-6", 100, ByteRange(0, 9)),  # empty list elements allowed
            ("bytes=0-, -10", 100, ByteRange(0, 99)),
            # zero-length representation: a suffix is satisfiable but selects nothing
            ("bytes=-5", 0, FULL),
        ],
    )
    def test_evaluate(self, header, size, expected):
        assert evaluate_range(header, size) == expected

    def test_too_many_ranges_ignored(self):
        header = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
        assert evaluate_range(header, 10_000) == FULL

    def test_huge_numbers(self):
        # Python ints do not overflow, but the answer must still be sane.
        assert evaluate_range("bytes=0-" + "9" * 40, 10) == ByteRange(0, 9)
        assert evaluate_range("bytes=" + "9" * 40 + "-", 10) == UNSATISFIABLE
        # int() refuses more than 4300 digits: such numbers never reach it
        assert evaluate_range("bytes=-" + "9" * 5000, 10) == ByteRange(0, 9)

    def test_leading_zeros_do_not_make_a_number_huge(self):
        assert evaluate_range("bytes=" + "0" * 5000 + "5-" + "0" * 5000 + "7", 10) == ByteRange(
            5, 7
        )
        assert evaluate_range("bytes=0-" + "0" * 30, 10) == ByteRange(0, 0)

    def test_content_range(self):
        assert content_range(ByteRange(0, 9), 100) == "bytes 0-9/100"
        assert unsatisfied_content_range(100) == "bytes */100"
        assert ByteRange(10, 19).length == 10


# --------------------------------------------------------------------------------------------
# RFC 9110 sections 8.8 and 13: validators and conditional requests

ETAG = '"abc-10"'
LM = 1_000_000_000  # 2001-09-09T01:46:40Z
LM_DATE = "Sun, 09 Sep 2001 01:46:40 GMT"
BEFORE = "Sun, 09 Sep 2001 01:46:39 GMT"
AFTER = "Sun, 09 Sep 2001 01:46:41 GMT"


class TestDates:
    @pytest.mark.parametrize(
        "text, expected",
        [
            ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777),  # IMF-fixdate
            ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777),  # obsolete RFC 850
            ("Sun Nov  6 08:49:37 1994", 784111777),  # asctime
            ("  Sun, 06 Nov 1994 08:49:37 GMT ", 784111777),
            ("sun, 06 nov 1994 08:49:37 GMT", 784111777),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 31 Feb 1994 08:49:37 GMT", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 25:49:37 GMT", None),
            ("yesterday", None),
            ("", None),
            (f"{LM_DATE}, {LM_DATE}", None),
            ("Sun, 06 Nov 0000 08:49:37 GMT", None),  # year 0: no such year
            ("Sun Nov  6 08:49:37 0000", None),
            ("Mon, 01 Jan 0001 00:00:00 GMT", -62135596800),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799),
        ],
    )
    def test_parse(self, text, expected):
        assert parse_http_date(text) == expected

    def test_format_roundtrip(self):
        assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
        assert http_date(LM) == LM_DATE
        for ts in (0, 951782400, 2_000_000_000):  # includes a leap day
            assert parse_http_date(http_date(ts)) == ts

    def test_format_clamps_to_four_digit_years(self):
        assert http_date(10**17) == "Fri, 31 Dec 9999 23:59:59 GMT"
        assert http_date(-(10**13)) == "Mon, 01 Jan 0001 00:00:00 GMT"


class TestEtag:
    # make_etag reads st_mtime_ns and st_size only.
    def test_make_etag_changes_with_mtime_and_size(self):
        st = types.SimpleNamespace(st_mtime_ns=5_000_000_000, st_size=10)
        a = make_etag(st)
        assert a == '"12a05f200-a"'
        assert make_etag(types.SimpleNamespace(st_mtime_ns=5_000_000_000, st_size=11)) != a
        assert make_etag(st, "-br") == '"12a05f200-a-br"'

    def test_make_etag_uses_nanoseconds(self):
        st1 = types.SimpleNamespace(st_mtime_ns=5_000_000_001, st_size=10)
        st2 = types.SimpleNamespace(st_mtime_ns=5_000_000_002, st_size=10)
        assert make_etag(st1) != make_etag(st2)

    @pytest.mark.parametrize(
        "value, expected",
        [
            ('"a"', [(False, '"a"')]),
            ('W/"a"', [(True, '"a"')]),
            ('"a", W/"b" ,"c"', [(False, '"a"'), (True, '"b"'), (False, '"c"')]),
            ('"a,b"', [(False, '"a,b"')]),  # commas are legal inside a tag
            ('""', [(False, '""')]),
            ("a", None),
            ('"a', None),
            ('"a" "b"', None),
            ('W/ "a"', None),
        ],
    )
    def test_parse_etags(self, value, expected):
        assert parse_etags(value) == expected


class TestPreconditions:
    @pytest.mark.parametrize(
        "method, headers, expected",
        [
            ("GET", {}, None),
            # If-None-Match (weak comparison) -> 304
            ("GET", {"if_none_match": ETAG}, 304),
            ("HEAD", {"if_none_match": ETAG}, 304),
            ("GET", {"if_none_match": "W/" + ETAG}, 304),
            ("GET", {"if_none_match": '"x", ' + ETAG}, 304),
            ("GET", {"if_none_match": "*"}, 304),
            ("GET", {"if_none_match": '"x"'}, None),
            ("GET", {"if_none_match": "garbage"}, None),
            # If-Modified-Since
            ("GET", {"if_modified_since": LM_DATE}, 304),
            ("GET", {"if_modified_since": AFTER}, 304),
            ("GET", {"if_modified_since": BEFORE}, None),
            ("GET", {"if_modified_since": "not a date"}, None),
            # If-None-Match present: If-Modified-Since is ignored
            ("GET", {"if_none_match": '"x"', "if_modified_since": AFTER}, None),
            ("GET", {"if_none_match": ETAG, "if_modified_since": BEFORE}, 304),
            # If-Match (strong comparison) -> 412 on mismatch
            ("GET", {"if_match": ETAG}, None),
            ("GET", {"if_match": "*"}, None),
            ("GET", {"if_match": '"x"'}, 412),
            ("GET", {"if_match": "W/" + ETAG}, 412),
            # If-Unmodified-Since
            ("GET", {"if_unmodified_since": LM_DATE}, None),
            ("GET", {"if_unmodified_since": BEFORE}, 412),
            ("GET", {"if_unmodified_since": "bad"}, None),
            ("GET", {"if_match": ETAG, "if_unmodified_since": BEFORE}, None),  # If-Match wins
            # order: If-Match fails first even when If-None-Match would give 304
            ("GET", {"if_match": '"x"', "if_none_match": ETAG}, 412),
            # If-Modified-Since only applies to GET/HEAD
            ("POST", {"if_modified_since": AFTER}, None),
            ("POST", {"if_none_match": ETAG}, 412),
        ],
    )
    def test_evaluate(self, method, headers, expected):
        assert evaluate_preconditions(method, ETAG, LM, **headers) == expected

    @pytest.mark.parametrize(
        "if_range, now, expected",
        [
            (None, LM + 100, True),
            (ETAG, LM + 100, True),
            ('"other"', LM + 100, False),
            ("W/" + ETAG, LM + 100, False),  # weak tags never match
            (LM_DATE, LM + 100, True),
            (BEFORE, LM + 100, False),
            (AFTER, LM + 100, False),  # must be exactly the Last-Modified date
            (LM_DATE, LM + 0.5, False),  # same second as now: weak date validator
            ("garbage", LM + 100, False),
        ],
    )
    def test_if_range(self, if_range, now, expected):
        assert if_range_allows(if_range, ETAG, LM, now) is expected


# --------------------------------------------------------------------------------------------
# RFC 9110 section 12.5.3: Accept-Encoding


class TestAcceptEncoding:
    @pytest.mark.parametrize(
        "header, br, gzip",
        [
            (None, False, False),
            ("", False, False),
            ("gzip", False, True),
            ("gzip, deflate, br", True, True),
            ("GZIP", False, True),
            ("x-gzip", False, True),
            ("br;q=0, gzip", False, True),
            ("br;q=0.5, gzip;q=0", True, False),
            ("*", True, True),
            ("*;q=0", False, False),
            ("br, *;q=0", True, False),
            ("gzip;q=0, *", True, False),
            ("identity", False, False),
            ("br;q=2", False, False),  # malformed qvalue: element skipped
            ("br;q=abc, gzip", False, True),
            ("br ; q=1.0", True, False),
            ("br, br;q=0", False, False),  # repeated: most restrictive wins
            # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), nothing looser
            ("br;q=0.001", True, False),
            ("br;q=1.000", True, False),
            ("br;q=1., gzip;q=0.", True, False),
            ("br;q=0.1234", False, False),
            ("br;q=1.001", False, False),
            ("br;q=.5", False, False),
            ("br;q=1e-3", False, False),
            ("br;q=0.5_0", False, False),
            ("br;q=+0.5", False, False),
            ("br;q=", False, False),
            ("br;q", False, False),
        ],
    )
    def test_accepts(self, header, br, gzip):
        accepted = parse_accept_encoding(header)
        assert accepts_encoding(accepted, "br") is br
        assert accepts_encoding(accepted, "gzip") is gzip


# --------------------------------------------------------------------------------------------
# Paths: splitting, decoding, rejecting, containment


class TestSplitTarget:
    @pytest.mark.parametrize(
        "raw, segments, trailing",
        [
            (b"/", (), True),
            (b"/index.html", ("index.html",), False),
            (b"/a/b/", ("a", "b"), True),
            (b"/a//b", ("a", "b"), False),  # repeated slashes collapse
            (b"//a", ("a",), False),
            (b"/hello%20world.txt", ("hello world.txt",), False),
            (b"/caf%C3%A9.txt", ("caf\u00e9.txt",), False),
            (b"/caf\xc3\xa9.txt", ("caf\u00e9.txt",), False),  # raw UTF-8
            (b"/100%25.txt", ("100%.txt",), False),
            (b"/a.txt?x=1", ("a.txt",), False),  # query never part of the name
            (b"/a.txt?x=/../../etc", ("a.txt",), False),
            (b"/a.txt#frag", ("a.txt",), False),
            (b"/a..b", ("a..b",), False),  # dots inside a name are fine
            (b"/..a", None, None),  # hidden
            (b"http://example.com/a/b", ("a", "b"), False),  # absolute-form
            (b"HTTPS://example.com", (), True),
        ],
    )
    def test_ok(self, raw, segments, trailing):
        if segments is None:
            with pytest.raises(BadPath):
                split_target(raw)
            return
        target = split_target(raw)
        assert target.segments == segments
        assert target.trailing_slash is trailing

    def test_query_dropped(self):
        assert split_target(b"/docs?a=1&b=/../x") == split_target(b"/docs")
        assert split_target(b"/d%2e?x").segments == ("d.",)

    @pytest.mark.parametrize(
        "raw, status",
        [
            (b"/..", 404),
            (b"/../secret.txt", 404),
            (b"/a/../../secret.txt", 404),
            (b"/a/./b", 404),
            (b"/%2e%2e/secret.txt", 404),
            (b"/%2E%2E/secret.txt", 404),
            (b"/.%2e/secret.txt", 404),
            (b"/%2e/x", 404),
            (b"/a%2f..%2f..%2fsecret.txt", 404),
            (b"/..%2fsecret.txt", 404),
            (b"/%2fetc/passwd", 404),
            (b"/%5c..%5csecret.txt", 404),
            (b"/..\\secret.txt", 404),
            (b"/a\\b", 404),
            (b"/secret.txt%00.html", 400),
            (b"/%00", 400),
            (b"/%", 400),
            (b"/%2", 400),
            (b"/%zz", 400),
            (b"/%+1", 400),
            (b"/% 1", 400),
            (b"/%ff.txt", 404),  # not UTF-8
            (b"secret.txt", 400),  # not an absolute path
            (b"*", 400),
            (b"/.env", 404),
            (b"/.git/config", 404),
            (b"/a/.hidden/b", 404),
            (b"/%2eenv", 404),  # an encoded dot is still a dot
        ],
    )
    def test_rejected(self, raw, status):
        with pytest.raises(BadPath) as info:
            split_target(raw)
        assert info.value.status == status

    def test_hidden_allowed_when_enabled(self):
        assert split_target(b"/.well-known/x", show_hidden=True).segments == (".well-known", "x")
        # but never the dot segments themselves
        with pytest.raises(BadPath):
            split_target(b"/../x", show_hidden=True)
        with pytest.raises(BadPath):
            split_target(b"/%2e%2e/x", show_hidden=True)

    @pytest.mark.skipif(os.name != "nt", reason="Windows-only name rules")
    @pytest.mark.parametrize("raw", [b"/C:/x", b"/a.txt.", b"/a.txt%20", b"/con", b"/NUL.txt"])
    def test_windows_names(self, raw):
        with pytest.raises(BadPath):
            split_target(raw)


class TestContainment:
    @pytest.mark.parametrize(
        "path, root, inside",
        [
            ("/srv/www", "/srv/www", True),
            ("/srv/www/a", "/srv/www", True),
            ("/srv/www/a/b/c", "/srv/www", True),
            ("/srv/www-secret", "/srv/www", False),  # prefix of a name, not a parent
            ("/srv/wwwx/a", "/srv/www", False),
            ("/srv", "/srv/www", False),
            ("/etc/passwd", "/srv/www", False),
            ("/etc/passwd", "/", True),
        ],
    )
    @pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
    def test_is_within(self, path, root, inside):
        assert is_within(path, root) is inside

    def test_prefix(self):
        assert parse_prefix("/") == ()
        assert parse_prefix("/static/") == ("static",)
        assert parse_prefix("/a/b") == ("a", "b")
        with pytest.raises(ValueError):
            parse_prefix("static/")

    def test_quote_segments(self):
        assert quote_segments(("a b", "caf\u00e9")) == "/a%20b/caf%C3%A9"
        assert quote_segments(()) == "/"
        assert quote_segments(("evil.example",)) == "/evil.example"
        assert quote_segments(("a?b#c",)) == "/a%3Fb%23c"


# --------------------------------------------------------------------------------------------
# Content types


class TestMimeTypes:
    @pytest.mark.parametrize(
        "name, expected",
        [
            ("index.html", "text/html; charset=utf-8"),
            ("INDEX.HTM", "text/html; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("a.webmanifest", "application/manifest+json; charset=utf-8"),
            ("x.svg", "image/svg+xml; charset=utf-8"),
            ("readme.txt", "text/plain; charset=utf-8"),
            ("feed.xml", "text/xml; charset=utf-8"),
            ("a.md", "text/markdown; charset=utf-8"),
            ("a.csv", "text/csv; charset=utf-8"),
            ("m.wasm", "application/wasm"),
            ("i.webp", "image/webp"),
            ("i.avif", "image/avif"),
            ("i.png", "image/png"),
            ("i.jpg", "image/jpeg"),
            ("i.gif", "image/gif"),
            ("i.ico", "image/x-icon"),
            ("f.woff2", "font/woff2"),
            ("f.woff", "font/woff"),
            ("f.ttf", "font/ttf"),
            ("f.otf", "font/otf"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("a.mp3", "audio/mpeg"),
            ("d.pdf", "application/pdf"),
            ("a.zip", "application/zip"),
            ("a.tar.gz", "application/gzip"),
            ("noext", DEFAULT_TYPE),
            ("weird.zzzz", DEFAULT_TYPE),
            ("dir.d/noext", DEFAULT_TYPE),
            ("a.doc", "application/msword"),  # from the stdlib table
        ],
    )
    def test_guess(self, name, expected):
        assert guess_type(name) == expected

    def test_text_types(self):
        assert is_text_type("text/anything")
        assert not is_text_type("image/png")


# --------------------------------------------------------------------------------------------
# DirServer / FileServer in-process, with real Request and Response objects


def _request(method="GET", target=b"/", headers=()):
    from peregrine.http.headers import Headers
    from peregrine.http.request import Request

    path, _, query = target.partition(b"?")
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return Request(method, path, query, "1.1", Headers(raw))


def _response():

    return Response()


def _call(server, method="GET", target=b"/", headers=()):
    resp = _response()
    server.serve(_request(method, target, headers), resp)
    return resp


def _body(resp):
    """The bytes the response would send (reads the file it holds, then closes it)."""
    if resp.file is not None:
        f, offset, count = resp.file
        try:
            f.seek(offset)
            return f.read(count)
        finally:
            f.close()
    return resp.body


def _h(resp, name):
    return resp.get_header(name)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET\n")
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "app.js").write_bytes(b"console.log('plain');\n")
    (root / "app.js.gz").write_bytes(b"GZ-BYTES")
    (root / "app.js.br").write_bytes(b"BR-BYTES")
    (root / "only.css").write_bytes(b"body{}\n")
    (root / "only.css.gz").write_bytes(b"GZ-CSS")
    (root / ".env").write_bytes(b"PASSWORD=1\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"sub index\n")
    (root / "noindex").mkdir()
    (root / "sp ace.txt").write_bytes(b"space\n")
    if hasattr(os, "symlink"):
        os.symlink(tmp_path / "secret.txt", root / "link-out.txt")
        os.symlink(tmp_path, root / "dir-out")
        os.symlink(root / "hello.txt", root / "link-in.txt")
        os.symlink(tmp_path / "secret.txt", root / "hello.txt.gz")  # sibling escaping the root
    return types.SimpleNamespace(root=root, tmp=tmp_path)


@pytest.fixture
def dirserver(tree):
    from peregrine.util import DirServer

    return DirServer(tree.root)


def _lookup_modes():
    from peregrine.util import beneath

    return ["race-free", "paths"] if beneath.RACE_FREE else ["paths"]


class TestDirServerInProcess:
    @pytest.fixture(autouse=True, params=_lookup_modes())
    def lookup_mode(self, request, monkeypatch):
        """Every test twice: files opened descriptor by descriptor, and by path (as on Windows)."""
        from peregrine.util import beneath

        monkeypatch.setattr(beneath, "RACE_FREE", request.param == "race-free")
        return request.param

    def test_index(self, dirserver):
        resp = _call(dirserver)
        assert resp.status == 200
        assert _h(resp, "Content-Type") == "text/html; charset=utf-8"
        assert _body(resp) == b"<h1>home</h1>\n"

    def test_file_headers(self, dirserver, tree):
        resp = _call(dirserver, target=b"/hello.txt")
        st = os.stat(tree.root / "hello.txt")
        assert resp.status == 200
        assert _h(resp, "ETag") == make_etag(st)
        assert _h(resp, "Last-Modified") == http_date(int(st.st_mtime))
        assert _h(resp, "Cache-Control") == "no-cache"
        assert _h(resp, "Accept-Ranges") == "bytes"
        assert _h(resp, "Vary") is None
        assert resp.file is None  # small: read at once, sent with the head
        assert _body(resp) == b"hello world\n"

    def test_large_file_is_sent_from_the_file(self, dirserver, tree):
        from peregrine.util.static import SMALL_FILE

        data = bytes(range(256)) * (SMALL_FILE // 256 + 1)
        (tree.root / "large.bin").write_bytes(data)
        resp = _call(dirserver, target=b"/large.bin")
        assert resp.status == 200 and resp.body == b""
        assert resp.file is not None and resp.file[1:] == (0, len(data))
        assert _body(resp) == data
        resp = _call(dirserver, target=b"/large.bin", headers=[("Range", "bytes=10-")])
        assert resp.status == 206 and resp.file[1:] == (10, len(data) - 10)
        assert _body(resp) == data[10:]
        # a small range of a large file is read at once
        resp = _call(dirserver, target=b"/large.bin", headers=[("Range", "bytes=10-19")])
        assert resp.status == 206 and resp.file is None and resp.body == data[10:20]

    def test_head_uses_the_file_not_a_read(self, dirserver):
        resp = _call(dirserver, method="HEAD", target=b"/hello.txt")
        assert resp.status == 200 and resp.file is not None and resp.file[1:] == (0, 12)
        resp.file[0].close()

    def test_file_changing_while_read_is_retried(self, dirserver, monkeypatch):
        from peregrine.util import static

        real = static._read_at
        calls = []

        def flaky(file, count, offset):
            calls.append(count)
            data = real(file, count, offset)
            return data[:-1] if len(calls) == 1 else data  # first read comes up short

        monkeypatch.setattr(static, "_read_at", flaky)
        resp = _call(dirserver, target=b"/hello.txt")
        assert resp.status == 200 and resp.body == b"hello world\n"
        assert _h(resp, "Content-Type") == "text/plain; charset=utf-8"
        assert len(calls) == 2

    def test_file_always_changing_gives_503(self, dirserver, monkeypatch):
        from peregrine.util import static

        monkeypatch.setattr(static, "_read_at", lambda file, count, offset: b"")
        resp = _call(dirserver, target=b"/hello.txt")
        assert resp.status == 503
        assert _h(resp, "ETag") is None

    def test_directory_redirect_keeps_query(self, dirserver):
        resp = _call(dirserver, target=b"/sub?x=1&y=%20")
        assert resp.status == 301
        assert _h(resp, "Location") == "/sub/?x=1&y=%20"

    def test_redirect_never_protocol_relative(self, dirserver):
        resp = _call(dirserver, target=b"//sub")
        assert resp.status == 301
        assert _h(resp, "Location") == "/sub/"

    def test_subdir_index_and_missing_index(self, dirserver):
        assert _body(_call(dirserver, target=b"/sub/")) == b"sub index\n"
        assert _call(dirserver, target=b"/noindex/").status == 404

    def test_trailing_slash_on_file(self, dirserver):
        assert _call(dirserver, target=b"/hello.txt/").status == 404

    def test_method_not_allowed(self, dirserver):
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            resp = _call(dirserver, method=method, target=b"/hello.txt")
            assert resp.status == 405
            assert _h(resp, "Allow") == "GET, HEAD"

    def test_hidden(self, tree):
        from peregrine.util import DirServer

        assert _call(DirServer(tree.root), target=b"/.env").status == 404
        resp = _call(DirServer(tree.root, show_hidden=True), target=b"/.env")
        assert resp.status == 200 and _body(resp) == b"PASSWORD=1\n"

    @pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
    def test_symlinks(self, dirserver):
        assert _call(dirserver, target=b"/link-out.txt").status == 404
        assert _call(dirserver, target=b"/dir-out/secret.txt").status == 404
        assert _call(dirserver, target=b"/dir-out/").status == 404
        resp = _call(dirserver, target=b"/link-in.txt")
        assert resp.status == 200 and _body(resp) == b"hello world\n"

    @pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
    def test_sibling_symlink_out_of_root_ignored(self, dirserver):
        resp = _call(dirserver, target=b"/hello.txt", headers=[("Accept-Encoding", "gzip")])
        assert resp.status == 200
        assert _h(resp, "Content-Encoding") is None
        assert _body(resp) == b"hello world\n"

    def test_percent_encoded_name(self, dirserver):
        assert _body(_call(dirserver, target=b"/sp%20ace.txt")) == b"space\n"

    def test_not_modified(self, dirserver):
        etag = _h(_call(dirserver, target=b"/hello.txt"), "ETag")
        resp = _call(dirserver, target=b"/hello.txt", headers=[("If-None-Match", etag)])
        assert resp.status == 304
        assert resp.file is None and resp.body == b""
        assert _h(resp, "ETag") == etag

    def test_ranges(self, dirserver):
        resp = _call(dirserver, target=b"/hello.txt", headers=[("Range", "bytes=0-4")])
        assert resp.status == 206
        assert _h(resp, "Content-Range") == "bytes 0-4/12"
        assert _body(resp) == b"hello"
        resp = _call(dirserver, target=b"/hello.txt", headers=[("Range", "bytes=50-")])
        assert resp.status == 416
        assert _h(resp, "Content-Range") == "bytes */12"
        resp = _call(dirserver, target=b"/empty.bin", headers=[("Range", "bytes=0-")])
        assert resp.status == 416
        assert _h(resp, "Content-Range") == "bytes */0"

    def test_if_range_mismatch_gives_full(self, dirserver):
        headers = [("Range", "bytes=0-4"), ("If-Range", '"stale"')]
        resp = _call(dirserver, target=b"/hello.txt", headers=headers)
        assert resp.status == 200
        assert _body(resp) == b"hello world\n"

    def test_precompressed(self, dirserver):
        resp = _call(dirserver, target=b"/app.js", headers=[("Accept-Encoding", "gzip, br")])
        assert _h(resp, "Content-Encoding") == "br"
        assert _h(resp, "Vary") == "Accept-Encoding"
        assert _h(resp, "Content-Type") == "text/javascript; charset=utf-8"
        assert _body(resp) == b"BR-BYTES"
        resp = _call(dirserver, target=b"/app.js", headers=[("Accept-Encoding", "gzip")])
        assert _h(resp, "Content-Encoding") == "gzip"
        assert _body(resp) == b"GZ-BYTES"
        plain = _call(dirserver, target=b"/app.js")
        assert _h(plain, "Content-Encoding") is None
        assert _h(plain, "Vary") == "Accept-Encoding"
        assert _body(plain) == b"console.log('plain');\n"
        assert len({_h(r, "ETag") for r in (resp, plain)}) == 2
        only_gz = _call(dirserver, target=b"/only.css", headers=[("Accept-Encoding", "br")])
        assert _h(only_gz, "Content-Encoding") is None
        assert _h(only_gz, "Vary") == "Accept-Encoding"

    def test_precompressed_disabled(self, tree):
        from peregrine.util import DirServer

        server = DirServer(tree.root, precompressed=False)
        resp = _call(server, target=b"/app.js", headers=[("Accept-Encoding", "br")])
        assert _h(resp, "Content-Encoding") is None and _h(resp, "Vary") is None

    def test_prefix(self, tree):
        from peregrine.util import DirServer

        server = DirServer(tree.root, prefix="/static/")
        assert _body(_call(server, target=b"/static/hello.txt")) == b"hello world\n"
        assert _call(server, target=b"/hello.txt").status == 404
        assert _call(server, target=b"/staticx/hello.txt").status == 404
        resp = _call(server, target=b"/static")
        assert resp.status == 301 and _h(resp, "Location") == "/static/"
        assert _body(_call(server, target=b"/static/")) == b"<h1>home</h1>\n"

    def test_cache_control_options(self, tree):
        from peregrine.util import DirServer

        server = DirServer(tree.root, cache_control=None)
        assert _h(_call(server, target=b"/hello.txt"), "Cache-Control") is None
        server = DirServer(
            tree.root,
            cache_control=lambda rel: "max-age=60" if rel.endswith(".txt") else None,
        )
        assert _h(_call(server, target=b"/hello.txt"), "Cache-Control") == "max-age=60"
        assert _h(_call(server, target=b"/app.js"), "Cache-Control") is None
        assert _h(_call(server, target=b"/sub/"), "Cache-Control") is None

    def test_index_options(self, tree):
        from peregrine.util import DirServer

        assert _call(DirServer(tree.root, index=None), target=b"/").status == 404
        (tree.root / "noindex" / "default.htm").write_bytes(b"dflt")
        server = DirServer(tree.root, index=("index.html", "default.htm"))
        assert _body(_call(server, target=b"/noindex/")) == b"dflt"
        with pytest.raises(ValueError):
            DirServer(tree.root, index="../x")

    def test_bad_root(self, tree):
        from peregrine.util import DirServer

        with pytest.raises(ValueError):
            DirServer(tree.root / "nope")
        with pytest.raises(ValueError):
            DirServer(tree.root / "hello.txt")

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
    def test_fifo_not_served(self, dirserver, tree):
        os.mkfifo(tree.root / "pipe")
        # Opening a FIFO to read waits for a writer unless it is opened non-blocking: the call
        # runs in a thread so that such a hang fails the test (after 5 s, a bound on the call
        # only) instead of hanging the suite; a writer opened then releases the thread.
        answered = []
        call = threading.Thread(
            target=lambda: answered.append(_call(dirserver, target=b"/pipe").status), daemon=True
        )
        call.start()
        call.join(5)
        if call.is_alive():
            os.close(os.open(tree.root / "pipe", os.O_WRONLY | os.O_NONBLOCK))
            call.join(5)
            pytest.fail("serving a FIFO blocked until a writer came")
        assert answered == [404]

    def test_file_changes_are_seen(self, dirserver, tree):
        target = tree.root / "hello.txt"
        first = _call(dirserver, target=b"/hello.txt")
        assert _body(first) == b"hello world\n"
        target.write_bytes(b"changed, and longer\n")
        os.utime(target, ns=(0, os.stat(target).st_mtime_ns + 1_000_000_000))
        second = _call(dirserver, target=b"/hello.txt")
        assert _body(second) == b"changed, and longer\n"
        assert _h(first, "ETag") != _h(second, "ETag")

    def test_removed_file(self, dirserver, tree):
        (tree.root / "hello.txt").unlink()
        assert _call(dirserver, target=b"/hello.txt").status == 404

    @pytest.mark.parametrize(
        "target, victim",
        [(b"/hello.txt", "hello.txt"), (b"/sub/", "sub/index.html"), (b"/app.js", "app.js.br")],
    )
    def test_file_removed_between_lookup_and_open(self, tree, target, victim):
        # The race made certain: the directories on the way have been looked up
        # (and opened) when the file goes, just before it is opened itself.
        from peregrine.util import DirServer
        from peregrine.util.beneath import Tree

        class Vanishing(Tree):
            def open(self, parent, name, *args):
                if "/".join(parent.segments + (name,)) == victim and (tree.root / victim).exists():
                    (tree.root / victim).unlink()
                return super().open(parent, name, *args)

        server = DirServer(tree.root)
        server._tree = Vanishing(server.root)
        resp = _call(server, target=target, headers=[("Accept-Encoding", "br")])
        if victim == "app.js.br":  # a sibling gone: the file itself is sent instead
            assert resp.status == 200 and _h(resp, "Content-Encoding") is None
            assert _body(resp) == b"console.log('plain');\n"
        else:
            assert resp.status == 404 and resp.file is None

    def test_file_removed_while_retried_gives_404(self, dirserver, tree, monkeypatch):
        from peregrine.util import static

        def short_then_gone(file, count, offset):
            (tree.root / "hello.txt").unlink()  # changed, then removed before the second look
            return b""

        monkeypatch.setattr(static, "_read_at", short_then_gone)
        assert _call(dirserver, target=b"/hello.txt").status == 404

    @pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
    def test_symlinks_inside_the_root(self, dirserver, tree):
        os.symlink("sub", tree.root / "sub-link")
        os.symlink(".", tree.root / "self")
        os.symlink("app.js.br", tree.root / "linked.js.br")
        (tree.root / "linked.js").write_bytes(b"plain\n")
        assert _body(_call(dirserver, target=b"/sub-link/")) == b"sub index\n"
        assert _body(_call(dirserver, target=b"/sub-link/index.html")) == b"sub index\n"
        assert _body(_call(dirserver, target=b"/self/")) == b"<h1>home</h1>\n"
        assert _body(_call(dirserver, target=b"/self/self/hello.txt")) == b"hello world\n"
        resp = _call(dirserver, target=b"/sub-link?q=1")
        assert resp.status == 301 and _h(resp, "Location") == "/sub-link/?q=1"
        resp = _call(dirserver, target=b"/linked.js", headers=[("Accept-Encoding", "br")])
        assert _h(resp, "Content-Encoding") == "br" and _body(resp) == b"BR-BYTES"

    @pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
    def test_no_descriptor_leaks(self, dirserver, tree):
        requests = [
            ("GET", b"/hello.txt", []),
            ("GET", b"/", []),
            ("GET", b"/sub", []),
            ("GET", b"/sub/", []),
            ("GET", b"/noindex/", []),
            ("GET", b"/nope", []),
            ("GET", b"/hello.txt/", []),
            ("GET", b"/link-out.txt", []),
            ("GET", b"/dir-out/secret.txt", []),
            ("GET", b"/link-in.txt", []),
            ("GET", b"/app.js", [("Accept-Encoding", "gzip")]),
            ("GET", b"/only.css", [("Accept-Encoding", "br")]),
            ("GET", b"/hello.txt", [("Range", "bytes=50-")]),
            ("GET", b"/hello.txt", [("If-None-Match", "*")]),
            ("HEAD", b"/hello.txt", []),
            ("POST", b"/hello.txt", []),
        ]

        def run_all():
            for method, target, headers in requests:
                _body(_call(dirserver, method, target, headers))

        run_all()  # warm up
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            run_all()
        assert len(os.listdir("/proc/self/fd")) == before

    def test_future_mtime(self, dirserver, tree):
        future = time.time() + 86400 * 400
        os.utime(tree.root / "hello.txt", (future, future))
        before = int(time.time())
        resp = _call(dirserver, target=b"/hello.txt")
        after = int(time.time())
        assert resp.status == 200
        last_modified = parse_http_date(_h(resp, "Last-Modified"))
        assert last_modified == parse_http_date(_h(resp, "Date"))
        assert before <= last_modified <= after  # now, taken during the call
        # comparisons use the replaced date too
        resp = _call(
            dirserver, target=b"/hello.txt", headers=[("If-Modified-Since", _h(resp, "Date"))]
        )
        assert resp.status == 304

    def test_old_file_leaves_date_to_the_server(self, dirserver, tree):
        os.utime(tree.root / "hello.txt", (LM, LM))
        resp = _call(dirserver, target=b"/hello.txt")
        assert _h(resp, "Last-Modified") == LM_DATE and _h(resp, "Date") is None

    def test_make_static_handler(self, tree):
        from peregrine.util import make_static_handler

        handler_cls = make_static_handler(tree.root, prefix="/s/")
        handler = handler_cls()
        resp = _response()
        handler.handle_request(_request(target=b"/s/hello.txt"), resp)
        assert _body(resp) == b"hello world\n"
        with pytest.raises(ValueError):
            make_static_handler(tree.root / "missing")


def test_servers_are_handlers(tree):
    from peregrine.util import DirServer, FileServer

    for server, target in (
        (DirServer(tree.root), b"/hello.txt"),
        (FileServer(tree.root / "hello.txt"), b"/x"),
    ):
        resp = _response()
        server.handle_request(_request(target=target), resp)
        assert _body(resp) == b"hello world\n"


class TestFileServerInProcess:
    def test_serves_any_path(self, tree):
        from peregrine.util import FileServer

        server = FileServer(tree.root / "hello.txt")
        for target in (b"/", b"/anything/else", b"/../../etc/passwd"):
            resp = _call(server, target=target)
            assert resp.status == 200
            assert _h(resp, "Content-Type") == "text/plain; charset=utf-8"
            assert _body(resp) == b"hello world\n"

    def test_content_type_override_and_missing(self, tree):
        from peregrine.util import FileServer

        server = FileServer(tree.root / "hello.txt", content_type="application/x-custom")
        assert _h(_call(server), "Content-Type") == "application/x-custom"
        assert _call(FileServer(tree.root / "nope.txt")).status == 404
        assert _call(FileServer(tree.root / "sub")).status == 404  # a directory

    def test_precompressed_and_methods(self, tree):
        from peregrine.util import FileServer

        server = FileServer(tree.root / "app.js")
        resp = _call(server, headers=[("Accept-Encoding", "gzip")])
        assert _h(resp, "Content-Encoding") == "gzip"
        assert _call(server, method="POST").status == 405


def test_public_exports():
    import peregrine.util as util

    assert {"DirServer", "FileServer", "make_static_handler"} <= set(util.__all__)
    assert sys.modules["peregrine.util.static"].DirServer is util.DirServer


class TestFileAnswer:
    """The decision alone (status, part of the file, headers), from a request and a stat."""

    NOW = LM + 3600.0  # the file changed an hour ago
    STAT = os.stat_result(
        (0o100644, 0, 0, 1, 0, 0, 1000, LM, LM, LM),
        {"st_mtime": float(LM), "st_mtime_ns": LM * 10**9},
    )
    ETAG = f'"{LM * 10**9:x}-3e8"'

    def answer(self, method="GET", headers=(), coding=None, vary=False, now=NOW):
        from peregrine.util.static import file_answer

        return file_answer(
            _request(method, b"/f.txt", headers),
            self.STAT,
            coding=coding,
            vary=vary,
            content_type="text/plain",
            cache_control="no-cache",
            now=now,
        )

    VALIDATORS = [("ETag", ETAG), ("Last-Modified", LM_DATE), ("Cache-Control", "no-cache")]
    FILE = [("Content-Type", "text/plain"), ("Accept-Ranges", "bytes")]

    @pytest.mark.parametrize(
        "method, headers, status, part, extra",
        [
            ("GET", [], 200, (0, 1000), []),
            ("HEAD", [], 200, (0, 1000), []),
            (
                "GET",
                [("Range", "bytes=10-19")],
                206,
                (10, 10),
                [("Content-Range", "bytes 10-19/1000")],
            ),
            (
                "GET",
                [("Range", "bytes=-5")],
                206,
                (995, 5),
                [("Content-Range", "bytes 995-999/1000")],
            ),
            ("GET", [("Range", "bytes=2000-")], 416, None, None),
            ("GET", [("If-None-Match", ETAG)], 304, None, None),
            ("GET", [("If-Modified-Since", LM_DATE)], 304, None, None),
            ("GET", [("If-Match", '"other"')], 412, None, None),
            # If-Range with another validator: the whole file, not the part
            ("GET", [("Range", "bytes=0-0"), ("If-Range", '"other"')], 200, (0, 1000), []),
        ],
    )
    def test_table(self, method, headers, status, part, extra):
        got_status, got_headers, got_part, text = self.answer(method, headers)
        assert (got_status, got_part) == (status, part)
        if status in (304, 412):
            assert got_headers == self.VALIDATORS and text is None
        elif status == 416:
            assert got_headers == [
                *self.VALIDATORS,
                ("Content-Range", "bytes */1000"),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]
            assert text == "416 Range Not Satisfiable\n"
        else:
            assert got_headers == [*self.VALIDATORS, *self.FILE, *extra] and text is None

    def test_variant_has_its_own_etag_and_says_so(self):
        _, headers, _, _ = self.answer(coding="gzip", vary=True)
        assert ("ETag", self.ETAG[:-1] + '-gzip"') in headers
        assert ("Vary", "Accept-Encoding") in headers
        assert ("Content-Encoding", "gzip") in headers

    def test_file_changed_this_second_gets_its_own_date(self):
        _, headers, _, _ = self.answer(now=LM + 0.5)
        assert headers[:3] == [
            ("Date", LM_DATE),
            ("ETag", self.ETAG),
            ("Last-Modified", LM_DATE),
        ]
        _, future, _, _ = self.answer(now=LM - 10.5)  # an mtime ahead of the clock
        assert ("Last-Modified", http_date(LM - 11)) in future


SECRET = b"TOP SECRET: never serve this\n"
YEAR_ZERO = "Sun, 06 Nov 0000 08:49:37 GMT"  # well-formed IMF-fixdate, year 0


def test_range_with_thousands_of_digits_is_not_an_error() -> None:
    # The grammar is 1*DIGIT; the head limit (32 KiB) lets 5000 digits through.
    assert evaluate_range("bytes=0-" + "9" * 5000, 10) in (ByteRange(0, 9), FULL)
    assert evaluate_range("bytes=" + "9" * 5000 + "-", 10) in (UNSATISFIABLE, FULL)
    assert evaluate_range("bytes=-" + "9" * 5000, 10) in (ByteRange(0, 9), FULL)


def test_http_date_year_zero_is_invalid_not_an_error() -> None:
    assert parse_http_date(YEAR_ZERO) is None
    assert parse_http_date("Sun Nov  6 08:49:37 0000") is None


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
    assert done, "the name did not change while it was resolved"
    # what was a link when looked at is not one when read, never an error. Before 3.13,
    # realpath raises EINVAL there and the name is answered as missing; 3.13's realpath takes a
    # name readlink refuses as a plain name, so the regular file now there (inside the root) is
    # served (both checked with the stdlib of 3.10, 3.12 and 3.13)
    if sys.version_info >= (3, 13):
        assert (resp.status, _body(resp)) == (200, b"now a file\n")
    else:
        assert (resp.status, _body(resp)) == (404, b"404 Not Found\n")
