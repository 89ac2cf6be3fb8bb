"""Static files: :class:`DirServer` serves a directory tree, :class:`FileServer` one file.

Both fill in a response from inside any handler, sync or async::

    static = DirServer("public", prefix="/static/")

    class Handler:
        def handle_request(self, req, resp):
            if req.path.startswith("/static/"):
                return static.serve(req, resp)
            ...

:func:`make_static_handler` wraps a :class:`DirServer` into a handler class; it
is what ``peregrine static DIR`` runs.

Files are opened first and their size and validators come from ``fstat`` on
the open descriptor, so the headers describe the bytes that are sent, even if
the file is replaced meanwhile. An open-file cache (:mod:`.filecache`, like
nginx's ``open_file_cache``) keeps the descriptor, its ``fstat`` and the
missing precompressed siblings of recently served files for
``open_file_cache_ms`` (default 1000 ms; 0 turns it off): a file replaced on
disk (``mv new old``) or deleted is noticed at once when that leaves the old
file without links (an ``fstat`` of the cached descriptor on each use shows
it), as is a file rewritten in place; otherwise (the old file has another hard
link, a directory above it was renamed, a sibling appeared) within that time.
Until then the old file, still open, is served whole with its own validators. Small bodies (up to :data:`SMALL_FILE`) are
read from that descriptor at once and sent with the head in one write; larger
ones go out with ``resp.send_file``, which streams them with bounded memory.

Files are found by :mod:`.beneath`, which walks the tree one descriptor at a
time (``openat``-style, ``O_NOFOLLOW``), so a symlink swapped in during the
lookup cannot lead out of the root. The pure parts live in sibling modules and
are unit-tested on their own: :mod:`.paths` (request target to safe
segments), :mod:`.ranges`, :mod:`.conditional` (ETag, dates, 304/412),
:mod:`.negotiation` (Accept-Encoding) and :mod:`.mimetypes`.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..http.dates import http_date
from ..http.request import Request
from ..http.response import LINE, Checked, Response, check_header
from ..http.status import REASONS
from .beneath import FILE_FLAGS, Dir, Entry, Tree
from .conditional import evaluate_preconditions, if_range_allows, make_etag
from .filecache import CachedFile, OpenFileCache, same_file
from .mimetypes import guess_type
from .negotiation import accepts_encoding, parse_accept_encoding
from .paths import BadPath, parse_prefix, quote_segments, split_target_tuple
from .ranges import (
    ByteRange,
    Unsatisfiable,
    content_range,
    evaluate_range,
    unsatisfied_content_range,
)

__all__ = ["DirServer", "FileServer", "make_static_handler", "CacheControl"]

#: A Cache-Control policy: a fixed header value, None for no header, or a
#: function of the file's path relative to the root (``"css/site.css"``)
#: returning either. A function lets hashed assets be ``immutable`` while
#: HTML is revalidated.
CacheControl = str | None | Callable[[str], str | None]

#: Default Cache-Control: caches may keep the file but must revalidate it
#: (cheaply, with ETag/Last-Modified and a 304) before each use, so an edited
#: file is never served stale.
DEFAULT_CACHE_CONTROL = "no-cache"

# Precompressed variants, in order of preference: (content coding, file suffix).
_PRECOMPRESSED = (("br", ".br"), ("gzip", ".gz"))

_ALLOW = "GET, HEAD"

#: Default of ``open_file_cache_ms``: how long a cached open file is trusted.
DEFAULT_OPEN_FILE_CACHE_MS = 1000
#: Default of ``open_file_cache_entries``: open files kept (one descriptor each).
DEFAULT_OPEN_FILE_CACHE_ENTRIES = 1024

#: Bodies up to this size are read into memory and handed over as bytes: the
#: server then writes head and body at once, which beats streaming a file for
#: small files. Larger ones go through ``resp.send_file`` (bounded memory).
SMALL_FILE = 64 * 1024

# How often to reopen a small file that changed between fstat and read.
_ATTEMPTS = 3

# An open regular file: its descriptor (whoever holds the pair closes it) and its fstat. A
# plain descriptor, not a file object: most files are small and read with one pread, and
# only those sent with ``send_file`` are wrapped (which costs another fstat).
_Opened = tuple[int, os.stat_result]


class _Named:
    """A file as the request named it.

    ``open(suffix)`` opens it (``""``) or a precompressed sibling (``".br"``)
    afresh, returning None unless that is a regular file; ``relpath`` is the
    name given to the Cache-Control policy. ``kept``: the object outlives the
    request (it is in the open-file cache, or it is a FileServer's file), so
    what is decided about the file alone is worth keeping on it (``answers``).
    """

    __slots__ = ("open", "relpath", "content_type", "kept", "answers")

    def __init__(
        self,
        open: Callable[[str], _Opened | None],
        relpath: str,
        content_type: str,
        kept: bool = False,
    ) -> None:
        self.open = open
        self.relpath = relpath
        self.content_type = content_type
        self.kept = kept
        #: the per-file part of the answers about this file, while its key holds
        self.answers: _FileAnswers | None = None


class _Changed(Exception):
    """The file changed size between fstat and read: start again from a fresh open."""


def _header(req: Request, name: str) -> str | None:
    # Repeated fields are joined as a list would be (RFC 9110 section 5.3): a
    # split If-None-Match still works, and two Range or date fields become
    # invalid and are ignored, as they must be.
    headers = req.headers
    value = headers.get(name)
    if value is None:
        return None  # the common case, one lookup
    values = headers.getall(name)
    return value if len(values) == 1 else ", ".join(values)


# Each header lookup costs ~2,500 instructions (the first one also indexes all the
# headers), and most requests carry none of these: the raw names are scanned once instead.
_CONDITIONAL_NAMES = frozenset(
    [
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"range",
    ]
)
_CONDITIONAL_INITIALS = frozenset(b"iIrR")


def _conditional_fields(req: Request) -> dict[bytes, str] | None:
    """The conditional (If-*) and Range fields of ``req`` by lower-cased name; None without any.

    Repeated fields are joined as a list would be (RFC 9110 section 5.3), as :func:`_header`
    does: a split If-None-Match still works, and two Range or date fields become invalid and
    are ignored, as they must be.
    """
    found: dict[bytes, str] | None = None
    initials = _CONDITIONAL_INITIALS
    for name, value in req.headers.raw:
        # Only names starting with i or r are lower-cased and compared (Referer is one).
        if name and name[0] in initials:
            lname = name.lower()
            if lname in _CONDITIONAL_NAMES:
                text = value.decode("latin-1")
                if found is None:
                    found = {lname: text}
                else:
                    before = found.get(lname)
                    found[lname] = text if before is None else before + ", " + text
    return found


def _plain(resp: Response, status: int, extra: Sequence[tuple[str, str]] = ()) -> None:
    """A short text/plain error or redirect answer."""
    resp.status = status
    for name, value in extra:
        resp.set_header(name, value)
    resp.set_header("Content-Type", "text/plain; charset=utf-8")
    resp.set_body(f"{status} {REASONS.get(status, '')}\n")


def _regular(entry: Entry | None) -> _Opened | None:
    """``entry`` as an open file if it is a regular file; anything else is closed and None."""
    if entry is None or entry.fd is None:
        return None
    if not stat.S_ISREG(entry.st.st_mode):
        os.close(entry.fd)  # FIFOs, sockets, devices, directories are never served
        return None
    return entry.fd, entry.st


def _open_regular(path: str) -> _Opened | None:
    """Open ``path`` (symlinks followed) and fstat it; None unless a regular file."""
    try:
        fd = os.open(path, FILE_FLAGS)
    except (OSError, ValueError):
        # Removed, permissions, a dangling link, ...: nothing to serve.
        return None
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    return _regular(Entry(fd, st, ()))


_PREAD = hasattr(os, "pread")


def _read_at(fd: int, count: int, offset: int) -> bytes:
    """Up to ``count`` bytes at ``offset`` of the open file ``fd`` (fewer only at end of file)."""
    if _PREAD:
        return os.pread(fd, count, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pread
    return os.read(fd, count)


#: What to answer about one file, as :func:`file_answer` decides it: ``(status, headers, part,
#: text)``. ``headers``: every header to set, in order, each once; ``part``: ``(offset, count)``
#: of the file to send (for HEAD, to announce), None for no file body; ``text``: the body of an
#: answer that is not the file (416), else None. (A plain tuple: this runs once per request, and
#: a NamedTuple's constructor is a Python call.)
FileAnswer = tuple[int, list[tuple[str, str]], tuple[int, int] | None, str | None]


def file_answer(
    req: Request,
    st: os.stat_result,
    *,
    coding: str | None,
    vary: bool,
    content_type: str,
    cache_control: str | None,
    now: float,
) -> FileAnswer:
    """Decide the answer to ``req`` about a file with stat ``st``: 200, 206, 304, 412 or 416.

    ``coding`` is set when the file is a precompressed variant; ``vary``: the choice of
    variant depended on Accept-Encoding. Pure: no I/O, nothing changed; ``now`` is the time
    the response's Date is taken from.
    """
    size = st.st_size
    etag = _etag_of(st, coding)
    last_modified = int(st.st_mtime)
    # RFC 9110 section 8.8.2.1: a Last-Modified later than the Date sent
    # with it must be replaced by that Date (a future mtime: clock skew, a
    # copied file). The server's Date is refreshed once a second, so for a
    # file changed this last second we send our own Date, taken now.
    recent = last_modified >= int(now) - 1
    if recent:
        last_modified = min(last_modified, int(now))

    # Decide the status first, so that each header is set exactly once.
    status, byte_range = _decide(
        req.method, _conditional_fields(req), etag, last_modified, size, now
    )

    headers = _validator_headers(etag, last_modified, cache_control, vary)
    if recent:
        headers.insert(0, ("Date", http_date(int(now))))
    if status == 304 or status == 412:
        return status, headers, None, None
    if status == 416:
        headers.append(("Content-Range", unsatisfied_content_range(size)))
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return status, headers, None, "416 Range Not Satisfiable\n"

    headers += _content_headers(content_type, coding)
    if byte_range is None:
        return status, headers, (0, size), None
    headers.append(("Content-Range", content_range(byte_range, size)))
    return status, headers, (byte_range.start, byte_range.length), None


def _etag_of(st: os.stat_result, coding: str | None) -> str:
    return make_etag(st, "-" + coding if coding else "")


def _decide(
    method: str,
    fields: dict[bytes, str] | None,
    etag: str,
    last_modified: int,
    size: int,
    now: float,
) -> tuple[int, ByteRange | None]:
    """The status of an answer about a file with these validators and ``size``, and the range
    of a 206, from the request's conditional and Range ``fields`` (:func:`_conditional_fields`)."""
    if fields is None:
        return 200, None
    get = fields.get
    status = evaluate_preconditions(
        method,
        etag,
        last_modified,
        if_match=get(b"if-match"),
        if_none_match=get(b"if-none-match"),
        if_modified_since=get(b"if-modified-since"),
        if_unmodified_since=get(b"if-unmodified-since"),
    )
    if status is not None:
        return status, None
    range_header = get(b"range")
    if range_header is not None and if_range_allows(get(b"if-range"), etag, last_modified, now):
        result = evaluate_range(range_header, size)
        if isinstance(result, ByteRange):
            return 206, result
        if isinstance(result, Unsatisfiable):
            return 416, None
    return 200, None


def _validator_headers(
    etag: str, last_modified: int, cache_control: str | None, vary: bool
) -> list[tuple[str, str]]:
    """Validators and caching headers: on every answer about the file, 304 included (RFC 9110
    section 15.4.5)."""
    headers = [("ETag", etag), ("Last-Modified", http_date(last_modified))]
    if cache_control is not None:
        headers.append(("Cache-Control", cache_control))
    if vary:
        headers.append(("Vary", "Accept-Encoding"))
    return headers


def _content_headers(content_type: str, coding: str | None) -> list[tuple[str, str]]:
    """What an answer carrying (or announcing, for HEAD) the file adds to the validators."""
    headers = [("Content-Type", content_type)]
    if coding is not None:
        headers.append(("Content-Encoding", coding))
    headers.append(("Accept-Ranges", "bytes"))
    return headers


_Block = tuple[tuple[Checked, ...], bytes]


def _block(headers: list[tuple[str, str]]) -> _Block:
    """Header fields checked once, and their lines joined, for ``Response._add_checked``."""
    fields = tuple(check_header(name, value) for name, value in headers)
    return fields, b"".join([f[LINE] for f in fields])


class _FileAnswers:
    """What :func:`file_answer` decides from the file alone, kept with a file that outlives the
    request while ``key`` (identity, size, mtime, coding, Vary, Cache-Control) is the same: its
    validators, and the header blocks of its answers, checked once (``validator_``: 304 and
    412; ``full_``: 200 and 206, before Content-Range). Only for a file older than a second:
    a recent one gets a Date of its own (and maybe another Last-Modified) with each answer.
    """

    __slots__ = (
        "key",
        "etag",
        "last_modified",
        "validator_fields",
        "validator_block",
        "full_fields",
        "full_block",
    )

    def __init__(
        self,
        key: tuple[object, ...],
        st: os.stat_result,
        coding: str | None,
        vary: bool,
        content_type: str,
        cache_control: str | None,
    ) -> None:
        self.key = key
        self.etag = _etag_of(st, coding)
        self.last_modified = int(st.st_mtime)
        validators = _validator_headers(self.etag, self.last_modified, cache_control, vary)
        self.validator_fields, self.validator_block = _block(validators)
        self.full_fields, self.full_block = _block(
            validators + _content_headers(content_type, coding)
        )


class _Responder:
    """What DirServer and FileServer share: GET/HEAD only, and answering with one file."""

    def __init__(
        self,
        cache_control: CacheControl,
        precompressed: bool,
        open_file_cache_ms: float,
        open_file_cache_entries: int,
    ) -> None:
        self.cache_control = cache_control
        self.precompressed = precompressed
        if open_file_cache_ms < 0:
            raise ValueError(f"open_file_cache_ms must not be negative: {open_file_cache_ms!r}")
        self._cache: OpenFileCache[_Named] | None = (
            OpenFileCache(open_file_cache_ms / 1000, open_file_cache_entries)
            if open_file_cache_ms
            else None
        )

    def close(self) -> None:
        """Close the descriptors of the open-file cache (the server calls it when it stops).

        The server stays usable: the cache fills again on the next requests.
        """
        if self._cache is not None:
            self._cache.close()

    def serve(self, req: Request, resp: Response) -> None:
        """Answer ``req``, filling in ``resp``: 405 unless GET or HEAD."""
        if req.method not in ("GET", "HEAD"):
            _plain(resp, 405, (("Allow", _ALLOW),))
            return
        self._serve(req, resp)

    #: Each is a handler too: ``peregrine.Server(DirServer("public"))``.
    handle_request = serve

    def _serve(self, req: Request, resp: Response) -> None:
        raise NotImplementedError

    def _cache_control_for(self, relpath: str) -> str | None:
        policy = self.cache_control
        return policy(relpath) if callable(policy) else policy

    def _respond_cached(
        self, req: Request, resp: Response, key: tuple[str, ...], hit: CachedFile[_Named]
    ) -> None:
        self._respond_file(req, resp, hit.value, (hit.fd, hit.st), key, hit)

    def _cache_hit(self, key: tuple[str, ...]) -> CachedFile[_Named] | None:
        """The cached open file for ``key`` if it is recent and unchanged on its descriptor.

        One ``fstat`` of the cached descriptor per hit: a file rewritten in place
        (same inode) is noticed at once, so validators and body always agree; so
        is one unlinked or renamed over (no links left), unless it has other hard
        links, which only the revalidation after ``open_file_cache_ms`` notices.
        """
        cache = self._cache
        assert cache is not None
        hit = cache.get(key)
        if hit is None:
            return None
        st = os.fstat(hit.fd)
        if st.st_nlink == 0 or not same_file(hit.st, st):
            cache.discard(key, hit)
            return None
        return hit

    def _respond_file(
        self,
        req: Request,
        resp: Response,
        named: _Named,
        opened: _Opened | None = None,
        key: tuple[str, ...] = (),
        cached: CachedFile[_Named] | None = None,
    ) -> None:
        """Answer ``req`` with a file: 200, 206, 304, 412 or 416 (404 if it is gone, 503 if never still).

        ``opened`` is the file itself when the caller has opened it already;
        when ``cached`` is set, it is that cache entry's (under ``key``), which
        is only read (``pread``) or duplicated, never closed here.
        Precompressed siblings are looked up next to the file as the URL named
        it (as nginx does), whatever a symlink there points to.
        """
        suffix, coding, vary = "", None, False
        keep = cached is not None  # ``opened`` belongs to the cache
        if self.precompressed:
            # Siblings first (opens that usually fail at once), and parse
            # Accept-Encoding only when there is something to choose.
            accepted: dict[str, float] | None = None
            for enc, sibling_suffix in _PRECOMPRESSED:
                sibling = named.open(sibling_suffix)
                if sibling is None:
                    continue
                # The answer now depends on Accept-Encoding, whichever we pick.
                vary = True
                if accepted is None:
                    accepted = parse_accept_encoding(_header(req, "Accept-Encoding"))
                if accepts_encoding(accepted, enc):
                    if opened is not None and not keep:
                        os.close(opened[0])
                    opened, suffix, coding, keep = sibling, sibling_suffix, enc, False
                    break
                os.close(sibling[0])

        for _ in range(_ATTEMPTS):
            if opened is None:
                opened = named.open(suffix)
                if opened is None:  # removed since it was looked up
                    _plain(resp, 404)
                    return
            fd, st = opened
            try:
                send = self._respond_variant(req, resp, named, fd, st, coding, vary)
            except _Changed:
                if keep:
                    # The cached file changed in place: forget it, look it up afresh.
                    assert self._cache is not None and cached is not None
                    self._cache.discard(key, cached)
                    keep = False
                else:
                    os.close(fd)
                opened = None
                continue
            except BaseException:
                if not keep:
                    os.close(fd)
                raise
            # The response is complete; what is left is the descriptor.
            if send is None:
                if not keep:
                    os.close(fd)  # no body, or the body was read
                return
            # send_file closes what it is given: a cached descriptor goes as a duplicate
            # (sendfile and pread take explicit offsets, so sharing the file offset is harmless).
            handoff = os.dup(fd) if keep else fd
            try:
                file = open(handoff, "rb", buffering=0)
            except BaseException:
                os.close(handoff)
                raise
            resp.send_file(file, *send)  # which owns (and closes) it from now on
            return
        # Rewritten on every look: a file in the middle of being written.
        _plain(resp, 503)

    def _respond_variant(
        self,
        req: Request,
        resp: Response,
        named: _Named,
        fd: int,
        st: os.stat_result,
        coding: str | None,
        vary: bool,
    ) -> tuple[int, int] | None:
        """Fill in ``resp`` for the open file ``fd`` (a precompressed variant when ``coding`` is set).

        Returns None when the descriptor is not needed any more (answer without
        a body, or one read already), else the ``(offset, count)`` to send from
        it. The caller closes ``fd`` or hands it on; ``vary``: the choice of
        variant depended on Accept-Encoding. Raises :class:`_Changed` if the
        file changed under the read, before anything is set on ``resp``.
        """
        now = time.time()
        size = st.st_size
        cache_control = self._cache_control_for(named.relpath)
        part: tuple[int, int] | None
        text: str | None = None
        byte_range: ByteRange | None = None
        answers: _FileAnswers | None = None
        if named.kept and not resp._fields and int(st.st_mtime) < int(now) - 1:
            # What depends on the file alone is decided once per file (and its key), the
            # status per request: the same answers as file_answer's, without building and
            # checking the same header lines again. (Older than a second: no Date of its own.)
            key = (st.st_ino, st.st_dev, size, st.st_mtime_ns, coding, vary, cache_control)
            answers = named.answers
            if answers is None or answers.key != key:
                answers = named.answers = _FileAnswers(
                    key, st, coding, vary, named.content_type, cache_control
                )
            fields = _conditional_fields(req)
            if fields is None:  # the common case: a plain 200
                status, part = 200, (0, size)
            else:
                status, byte_range = _decide(
                    req.method, fields, answers.etag, answers.last_modified, size, now
                )
                if status == 304 or status == 412:
                    part = None
                elif byte_range is not None:
                    part = (byte_range.start, byte_range.length)
                elif status == 200:
                    part = (0, size)
                else:  # 416, rare: answered below as file_answer builds it
                    answers = None
        if answers is None:
            status, headers, part, text = file_answer(
                req,
                st,
                coding=coding,
                vary=vary,
                content_type=named.content_type,
                cache_control=cache_control,
                now=now,
            )
        # A small body is read now, before any header is set, so a file that
        # changed since fstat can still be retried cleanly.
        data: bytes | None = None
        if part is not None and req.method != "HEAD":
            offset, count = part
            if count <= SMALL_FILE:
                data = _read_at(fd, count, offset) if count else b""
                if len(data) != count:
                    raise _Changed(named.relpath)

        # add_header is enough on a fresh response and skips set_header's search
        # for an earlier value; if the caller set headers already, replace them.
        resp.status = status
        if answers is not None:
            if part is None:
                resp._add_checked(answers.validator_fields, answers.validator_block)
            else:
                resp._add_checked(answers.full_fields, answers.full_block)
                if byte_range is not None:
                    resp.add_header("Content-Range", content_range(byte_range, size))
        elif resp._fields:
            for name, value in headers:
                resp.set_header(name, value)
        else:
            for name, value in headers:
                resp.add_header(name, value)
        if text is not None:
            resp.set_body(text)
        if part is None or data is not None:
            if data is not None:
                resp.set_body(data)
            return None
        # for the whole file count is the size fstat saw on this descriptor, the size the ETag
        # was computed from (not None, "to the end", which could be longer by now)
        return part


class DirServer(_Responder):
    """Serve the files below a directory.

    :param root: the directory to serve. It is resolved (symlinks followed)
        once, here; nothing that resolves to a path outside it is ever served.
    :param prefix: the URL path the directory is mounted at, e.g.
        ``"/static/"``; requests outside it get 404.
    :param index: file name(s) served for a directory request (``/``, ``/docs/``),
        tried in order; None disables index files.
    :param cache_control: ``Cache-Control`` for files: a value, None for none,
        or a function of the path relative to the root.
    :param show_hidden: serve names starting with ``.`` (default: 404).
    :param precompressed: serve ``NAME.br`` / ``NAME.gz`` when present and the
        client accepts that coding.
    :param open_file_cache_ms: how long an open file (descriptor, ``fstat``,
        missing precompressed siblings) is reused without looking at the disk
        again; 0 disables the cache. After it, the file is looked up afresh with
        every check of a first lookup, so a replaced or deleted file is noticed.
    :param open_file_cache_entries: how many open files the cache keeps (least
        recently used ones are closed first). :meth:`close` closes them all.

    ``serve(req, resp)`` fills in ``resp`` and returns None; call it from a
    sync handler, or from an async one (it does not await: the body is sent by
    the server after the handler returns). ``handle_request`` is the same
    method, so an instance can also be given to ``Server`` as the handler.

    Files are opened beneath the root without following symlinks out of it,
    even when the tree changes during the lookup (see :mod:`.beneath`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        prefix: str = "/",
        index: str | Sequence[str] | None = "index.html",
        cache_control: CacheControl = DEFAULT_CACHE_CONTROL,
        show_hidden: bool = False,
        precompressed: bool = True,
        open_file_cache_ms: float = DEFAULT_OPEN_FILE_CACHE_MS,
        open_file_cache_entries: int = DEFAULT_OPEN_FILE_CACHE_ENTRIES,
    ) -> None:
        super().__init__(cache_control, precompressed, open_file_cache_ms, open_file_cache_entries)
        real_root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real_root):
            raise ValueError(f"static root is not a directory: {os.fspath(root)!r}")
        self.root = real_root
        self._tree = Tree(real_root)
        self.prefix = prefix
        self._prefix_segments = parse_prefix(prefix)
        if index is None:
            self.index: tuple[str, ...] = ()
        elif isinstance(index, str):
            self.index = (index,)
        else:
            self.index = tuple(index)
        for name in self.index:
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise ValueError(f"index must be a plain file name: {name!r}")
        self.show_hidden = show_hidden

    def _serve(self, req: Request, resp: Response) -> None:
        try:
            segments, trailing_slash = split_target_tuple(req.raw_path, self.show_hidden)
        except BadPath as exc:
            _plain(resp, exc.status)
            return
        n = len(self._prefix_segments)
        if segments[:n] != self._prefix_segments:
            _plain(resp, 404)
            return
        rest = segments[n:]
        cache = self._cache
        if cache is not None and rest and not trailing_slash:
            hit = self._cache_hit(rest)
            if hit is not None:
                self._respond_cached(req, resp, rest, hit)
                return
        parent = self._tree.open_dir(rest[:-1])
        if parent is None:
            _plain(resp, 404)
            return
        try:
            if not rest:
                self._serve_directory(req, resp, segments, trailing_slash, parent, rest)
                return
            entry = self._tree.open(parent, rest[-1])
            if entry is not None and stat.S_ISDIR(entry.st.st_mode):
                directory = entry.as_dir()
                try:
                    self._serve_directory(req, resp, segments, trailing_slash, directory, rest)
                finally:
                    directory.close()
                return
            opened = _regular(entry)
            if opened is None or trailing_slash:
                # Missing, outside the root, not a regular file, or "file.txt/".
                if opened is not None:
                    os.close(opened[0])
                if cache is not None and not trailing_slash:
                    cache.discard(rest)  # gone: do not keep its descriptor
                _plain(resp, 404)
                return
            if cache is not None:
                named = self._cached_named(parent, rest)
                self._respond_cached(req, resp, rest, cache.put(rest, *opened, named))
                return
            # Siblings and Content-Type follow the name in the URL, not a symlink target's.
            self._respond_file(req, resp, self._named(parent, rest[-1], rest), opened)
        finally:
            parent.close()

    def _serve_directory(
        self,
        req: Request,
        resp: Response,
        segments: tuple[str, ...],
        trailing_slash: bool,
        directory: Dir,
        rest: tuple[str, ...],
    ) -> None:
        if not trailing_slash and (rest or self._prefix_segments):
            # Relative links in the index page resolve against the URL, so it
            # must end with "/". The Location is rebuilt from validated
            # segments: echoing the request could turn "//evil.example" into
            # an open redirect.
            location = quote_segments(segments) + "/"
            query = req.query_string
            if query:
                location += "?" + query
            _plain(resp, 301, (("Location", location),))
            return
        for name in self.index:
            opened = _regular(self._tree.open(directory, name))
            if opened is not None:
                self._respond_file(req, resp, self._named(directory, name, rest + (name,)), opened)
                return
        _plain(resp, 404)  # no listings

    def _named(self, parent: Dir, name: str, segments: tuple[str, ...]) -> _Named:
        tree = self._tree

        def open_variant(suffix: str) -> _Opened | None:
            # A sibling is a file like any other: it could be a symlink out of the root.
            # Siblings are usually missing: ask first, without the cost of a failed open.
            if suffix and not tree.may_exist(parent, name + suffix):
                return None
            return _regular(tree.open(parent, name + suffix))

        return _Named(open_variant, "/".join(segments), guess_type(name))

    def _cached_named(self, parent: Dir, rest: tuple[str, ...]) -> _Named:
        """The file ``rest`` (in ``parent``) as kept in the cache: its missing siblings noted.

        A sibling that may exist is looked up afresh from the root when asked for (the
        cached entry holds no directory descriptor), with the checks of a first lookup.
        """
        tree = self._tree
        name = rest[-1]
        maybe = frozenset(
            sibling_suffix
            for _, sibling_suffix in _PRECOMPRESSED
            if self.precompressed and tree.may_exist(parent, name + sibling_suffix)
        )

        def open_variant(suffix: str) -> _Opened | None:
            if suffix and suffix not in maybe:
                return None  # missing when the entry was last checked
            directory = tree.open_dir(rest[:-1])
            if directory is None:
                return None
            try:
                if suffix and not tree.may_exist(directory, name + suffix):
                    return None
                return _regular(tree.open(directory, name + suffix))
            finally:
                directory.close()

        return _Named(open_variant, "/".join(rest), guess_type(name), kept=True)

    def __repr__(self) -> str:
        return f"DirServer({self.root!r}, prefix={self.prefix!r})"


class FileServer(_Responder):
    """Serve one file, whatever the request path.

    :param path: the file. It is opened afresh at most every
        ``open_file_cache_ms``, so replacing it (or the symlink to it) takes
        effect within that time; if it is missing the answer is 404.
    :param content_type: Content-Type to send; by default guessed from ``path``.
    :param cache_control: ``Cache-Control`` value (or None, or a function of the file name).
    :param precompressed: serve ``path.br`` / ``path.gz`` when present and accepted.
    :param open_file_cache_ms: how long the open file is reused before ``path`` is
        opened again (0: on every request); see :class:`DirServer`. Siblings are
        looked up on every request.
    :param open_file_cache_entries: as for :class:`DirServer` (one is enough here).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        content_type: str | None = None,
        cache_control: CacheControl = DEFAULT_CACHE_CONTROL,
        precompressed: bool = True,
        open_file_cache_ms: float = DEFAULT_OPEN_FILE_CACHE_MS,
        open_file_cache_entries: int = 1,
    ) -> None:
        super().__init__(cache_control, precompressed, open_file_cache_ms, open_file_cache_entries)
        self.path = os.path.abspath(os.fspath(path))
        self.content_type = content_type
        name = os.path.basename(self.path)
        self._file = _Named(self._open_variant, name, content_type or guess_type(name), kept=True)

    def _open_variant(self, suffix: str) -> _Opened | None:
        return _open_regular(self.path + suffix)

    def _serve(self, req: Request, resp: Response) -> None:
        cache = self._cache
        if cache is None:
            self._respond_file(req, resp, self._file)
            return
        hit = self._cache_hit(())
        if hit is None:
            opened = _open_regular(self.path)
            if opened is None:
                cache.discard(())
                _plain(resp, 404)
                return
            hit = cache.put((), *opened, self._file)
        self._respond_cached(req, resp, (), hit)

    def __repr__(self) -> str:
        return f"FileServer({self.path!r})"


def make_static_handler(root: str | os.PathLike[str], **options: Any) -> type:
    """A handler class that serves ``root`` with a :class:`DirServer` (``options`` are its keywords).

    The directory is checked now, so a typo fails at startup rather than on
    the first request; each worker process builds its own DirServer.
    """
    DirServer(root, **options)  # validate arguments early

    class StaticHandler:
        """Serves a directory (made by :func:`peregrine.util.static.make_static_handler`)."""

        def __init__(self) -> None:
            self.server = DirServer(root, **options)

        def handle_request(self, req: Request, resp: Response) -> None:
            self.server.serve(req, resp)

        def close(self) -> None:
            """Close the server's cached descriptors (called when the worker stops)."""
            self.server.close()

    StaticHandler.__qualname__ = StaticHandler.__name__ = "StaticHandler"
    return StaticHandler
