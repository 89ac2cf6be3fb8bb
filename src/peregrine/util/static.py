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

Every request looks at the disk afresh (no cache that could go stale): the file
is opened first and its size and validators come from ``fstat`` on the open
descriptor, so the headers always describe the bytes that are sent, even if
the file is replaced meanwhile. Small bodies (up to :data:`SMALL_FILE`) are
read from that descriptor at once and sent with the head in one write; larger
ones go out with ``resp.send_file``, which streams them with bounded memory.

The pure parts live in sibling modules and are unit-tested on their own:
:mod:`.paths` (request target to safe segments), :mod:`.ranges`,
:mod:`.conditional` (ETag, dates, 304/412), :mod:`.negotiation`
(Accept-Encoding) and :mod:`.mimetypes`.
"""

from __future__ import annotations

import os
import stat
import time
from typing import IO, Any, Callable, Optional, Sequence, Union

from .conditional import evaluate_preconditions, http_date, if_range_allows, make_etag
from .mimetypes import guess_type
from .negotiation import accepts_encoding, parse_accept_encoding
from .paths import BadPath, is_within, parse_prefix, quote_segments, split_target
from .ranges import ByteRange, Unsatisfiable, content_range, evaluate_range, unsatisfied_content_range

__all__ = ["DirServer", "FileServer", "make_static_handler", "CacheControl"]

#: A Cache-Control policy: a fixed header value, None for no header, or a
#: function of the file's path relative to the root (``"css/site.css"``)
#: returning either. A function lets hashed assets be ``immutable`` while
#: HTML is revalidated.
CacheControl = Union[str, None, Callable[[str], Optional[str]]]

#: Default Cache-Control: caches may keep the file but must revalidate it
#: (cheaply, with ETag/Last-Modified and a 304) before each use, so an edited
#: file is never served stale.
DEFAULT_CACHE_CONTROL = "no-cache"

# Precompressed variants, in order of preference: (content coding, file suffix).
_PRECOMPRESSED = (("br", ".br"), ("gzip", ".gz"))

_ALLOW = "GET, HEAD"

_WINDOWS = os.name == "nt"

_REASONS = {
    301: "Moved Permanently",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    416: "Range Not Satisfiable",
    503: "Service Unavailable",
}

# O_NONBLOCK: if a FIFO takes the place of a file between stat and open, open()
# must not block the event loop waiting for a writer (the fstat check then
# rejects it). It has no effect on reads of regular files. O_NOCTTY: a terminal
# device must never become our controlling terminal.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
)


#: Bodies up to this size are read into memory and handed over as bytes: the
#: server then writes head and body at once, which beats streaming a file for
#: small files. Larger ones go through ``resp.send_file`` (bounded memory).
SMALL_FILE = 64 * 1024

# How often to reopen a small file that changed between fstat and read.
_ATTEMPTS = 3


class _NotFound(Exception):
    """The file vanished or is not a regular file: answer 404."""


class _Changed(Exception):
    """The file changed size between fstat and read: start again from a fresh open."""


def _header(req: Any, name: str) -> Optional[str]:
    # Repeated fields are joined as a list would be (RFC 9110 section 5.3): a
    # split If-None-Match still works, and two Range or date fields become
    # invalid and are ignored, as they must be.
    headers = req.headers
    value = headers.get(name)
    if value is None:
        return None  # the common case, one lookup
    values = headers.getall(name)
    return value if len(values) == 1 else ", ".join(values)


def _plain(resp: Any, status: int, extra: Sequence[tuple[str, str]] = ()) -> None:
    """A short text/plain error or redirect answer."""
    resp.status = status
    for name, value in extra:
        resp.set_header(name, value)
    resp.set_header("Content-Type", "text/plain; charset=utf-8")
    resp.set_body(f"{status} {_REASONS.get(status, '')}\n")


def _open_regular(path: str) -> tuple[IO[bytes], os.stat_result]:
    """Open ``path`` for reading and fstat the open descriptor; _NotFound unless a regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        # Removed since lookup, permissions, a dangling link, ...: nothing to serve.
        raise _NotFound(path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotFound(path)
        return open(fd, "rb", buffering=0), st
    except BaseException:
        os.close(fd)
        raise


def _read_at(file: IO[bytes], count: int, offset: int) -> bytes:
    """Up to ``count`` bytes at ``offset`` (fewer only at end of file)."""
    if hasattr(os, "pread"):
        return os.pread(file.fileno(), count, offset)
    file.seek(offset)  # Windows has no pread
    return file.read(count) or b""


def _stat_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class _Responder:
    """What DirServer and FileServer share: answering with one file's representation."""

    def __init__(self, cache_control: CacheControl, precompressed: bool) -> None:
        self.cache_control = cache_control
        self.precompressed = precompressed

    def _cache_control_for(self, relpath: str) -> Optional[str]:
        policy = self.cache_control
        return policy(relpath) if callable(policy) else policy

    def _resolve_sibling(self, path: str) -> Optional[str]:
        """The path to open for a precompressed sibling ``path``, or None if it may not be used."""
        return path if _stat_regular(path) else None

    def _respond_file(
        self, req: Any, resp: Any, path: str, name_path: str, relpath: str, content_type: str
    ) -> None:
        """Answer ``req`` with a file: 200, 206, 304, 412 or 416 (or 404 if it vanished).

        ``path`` is what to open; ``name_path`` is the file as the URL named it,
        which precompressed siblings are looked up next to (as nginx does);
        ``relpath`` is the name given to the Cache-Control policy.
        """
        chosen, coding = path, None
        vary = False
        if self.precompressed:
            # Look for siblings first (cheap stats that usually fail), and
            # parse Accept-Encoding only when there is something to choose.
            accepted: Optional[dict[str, float]] = None
            for enc, suffix in _PRECOMPRESSED:
                sibling = self._resolve_sibling(name_path + suffix)
                if sibling is None:
                    continue
                # The answer now depends on Accept-Encoding, whichever we pick.
                vary = True
                if accepted is None:
                    accepted = parse_accept_encoding(_header(req, "Accept-Encoding"))
                if accepts_encoding(accepted, enc):
                    chosen, coding = sibling, enc
                    break

        for _ in range(_ATTEMPTS):
            try:
                file, st = _open_regular(chosen)
            except _NotFound:
                _plain(resp, 404)
                return
            try:
                self._respond_open_file(req, resp, file, st, content_type, coding, vary, relpath)
                return
            except _Changed:
                file.close()
            except BaseException:
                file.close()
                raise
        # Rewritten on every look: a file in the middle of being written.
        _plain(resp, 503)

    def _respond_open_file(
        self,
        req: Any,
        resp: Any,
        file: IO[bytes],
        st: os.stat_result,
        content_type: str,
        coding: Optional[str],
        vary: bool,
        relpath: str,
    ) -> None:
        size = st.st_size
        etag = make_etag(st, "-" + coding if coding else "")
        last_modified = int(st.st_mtime)

        # Decide the status first, so that each header is set exactly once.
        status = evaluate_preconditions(
            req.method,
            etag,
            last_modified,
            if_match=_header(req, "If-Match"),
            if_none_match=_header(req, "If-None-Match"),
            if_modified_since=_header(req, "If-Modified-Since"),
            if_unmodified_since=_header(req, "If-Unmodified-Since"),
        )
        byte_range: Optional[ByteRange] = None
        if status is None:
            status = 200
            range_header = _header(req, "Range")
            if range_header is not None and if_range_allows(
                _header(req, "If-Range"), etag, last_modified, time.time()
            ):
                result = evaluate_range(range_header, size)
                if isinstance(result, ByteRange):
                    status, byte_range = 206, result
                elif isinstance(result, Unsatisfiable):
                    status = 416

        # A small body is read now, before any header is set, so a file that
        # changed since fstat can still be retried cleanly.
        data: Optional[bytes] = None
        if status in (200, 206) and req.method != "HEAD":
            offset, count = (byte_range.start, byte_range.length) if byte_range else (0, size)
            if count <= SMALL_FILE:
                data = _read_at(file, count, offset) if count else b""
                if len(data) != count:
                    raise _Changed(relpath)

        # add_header is enough on a fresh response and skips set_header's search
        # for an earlier value; if the caller set headers already, replace them.
        put = resp.set_header if resp.headers else resp.add_header
        resp.status = status
        # Validators and caching headers go on every answer about this file,
        # 304 included (RFC 9110 section 15.4.5).
        put("ETag", etag)
        put("Last-Modified", http_date(last_modified))
        cache_control = self._cache_control_for(relpath)
        if cache_control is not None:
            put("Cache-Control", cache_control)
        if vary:
            put("Vary", "Accept-Encoding")

        if status in (304, 412):
            file.close()
            return
        if status == 416:
            file.close()
            put("Content-Range", unsatisfied_content_range(size))
            put("Content-Type", "text/plain; charset=utf-8")
            resp.set_body("416 Range Not Satisfiable\n")
            return

        put("Content-Type", content_type)
        if coding is not None:
            put("Content-Encoding", coding)
        put("Accept-Ranges", "bytes")
        if byte_range is not None:
            put("Content-Range", content_range(byte_range, size))
        if data is not None:
            file.close()
            resp.set_body(data)
        elif byte_range is not None:
            resp.send_file(file, byte_range.start, byte_range.length)
        else:
            # count=size (not None): the length must be the one fstat saw on
            # this descriptor, the size the ETag was computed from.
            resp.send_file(file, 0, size)


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

    ``serve(req, resp)`` fills in ``resp`` and returns None; call it from a
    sync handler, or from an async one (it does not await: the body is sent by
    the server after the handler returns). ``handle_request`` is the same
    method, so an instance can also be given to ``Server`` as the handler.
    """

    def __init__(
        self,
        root: Union[str, "os.PathLike[str]"],
        prefix: str = "/",
        index: Union[str, Sequence[str], None] = "index.html",
        cache_control: CacheControl = DEFAULT_CACHE_CONTROL,
        show_hidden: bool = False,
        precompressed: bool = True,
    ) -> None:
        super().__init__(cache_control, precompressed)
        real_root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real_root):
            raise ValueError(f"static root is not a directory: {os.fspath(root)!r}")
        self.root = real_root
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

    def _checked(self, path: str) -> Optional[tuple[str, int]]:
        """Look at ``path``, whose parent is a real directory inside the root.

        Returns the path to use (free of symlinks, inside the root) and its
        ``st_mode``, or None if it does not exist or resolves outside the root.
        A plain ``lstat`` settles the common case in one system call; only a
        symlink (or, on Windows, anything: junctions do not show as links)
        costs a full ``realpath`` and a containment check.
        """
        try:
            st = os.lstat(path)
        except (OSError, ValueError):
            return None
        mode = st.st_mode
        if stat.S_ISLNK(mode) or _WINDOWS:
            real = os.path.realpath(path)
            if not is_within(real, self.root):
                return None
            try:
                mode = os.stat(real).st_mode
            except (OSError, ValueError):
                return None
            path = real
        return path, mode

    def _resolve_sibling(self, path: str) -> Optional[str]:
        # A precompressed sibling is a file like any other: it could be a
        # symlink pointing out of the root.
        found = self._checked(path)
        if found is None or not stat.S_ISREG(found[1]):
            return None
        return found[0]

    def serve(self, req: Any, resp: Any) -> None:
        """Answer ``req`` from the directory, filling in ``resp``."""
        if req.method not in ("GET", "HEAD"):
            _plain(resp, 405, (("Allow", _ALLOW),))
            return
        try:
            target = split_target(req.raw_path, self.show_hidden)
        except BadPath as exc:
            _plain(resp, exc.status)
            return

        segments = target.segments
        n = len(self._prefix_segments)
        if segments[:n] != self._prefix_segments:
            _plain(resp, 404)
            return
        rest = segments[n:]

        # Walk down from the root one segment at a time, so every directory on
        # the way is known to be real and inside the root before it is entered.
        sep = os.sep
        directory = path = self.root
        mode = stat.S_IFDIR  # the root was checked to be a directory
        for segment in rest:
            if not stat.S_ISDIR(mode):
                _plain(resp, 404)  # "file.txt/more" names nothing
                return
            directory = path
            found = self._checked(directory + segment if directory.endswith(sep) else directory + sep + segment)
            if found is None:
                _plain(resp, 404)
                return
            path, mode = found

        if stat.S_ISDIR(mode):
            if not target.trailing_slash and (rest or self._prefix_segments):
                # Relative links in the index page resolve against the URL, so
                # it must end with "/". The Location is rebuilt from validated
                # segments: echoing the request could turn "//evil.example"
                # into an open redirect.
                location = quote_segments(segments) + "/"
                query = req.query_string
                if query:
                    location += "?" + query
                _plain(resp, 301, (("Location", location),))
                return
            base = path if path.endswith(sep) else path + sep
            for name in self.index:
                found = self._checked(base + name)
                if found is not None and stat.S_ISREG(found[1]):
                    relpath = "/".join(rest + (name,))
                    self._respond_file(req, resp, found[0], base + name, relpath, guess_type(name))
                    return
            _plain(resp, 404)
            return

        if not stat.S_ISREG(mode) or target.trailing_slash:
            # FIFOs, sockets, devices are never served; "file.txt/" names nothing.
            _plain(resp, 404)
            return
        # Open the resolved path (the one checked to be inside); siblings and
        # Content-Type follow the name in the URL, not a symlink target's.
        name = rest[-1]
        url_path = directory + name if directory.endswith(sep) else directory + sep + name
        relpath = "/".join(rest)
        self._respond_file(req, resp, path, url_path, relpath, guess_type(name))

    #: A DirServer is a handler too: ``peregrine.Server(DirServer("public"))``.
    handle_request = serve

    def __repr__(self) -> str:
        return f"DirServer({self.root!r}, prefix={self.prefix!r})"


class FileServer(_Responder):
    """Serve one file, whatever the request path.

    :param path: the file. It is opened afresh on each request, so replacing
        it (or the symlink to it) takes effect at once; if it is missing the
        answer is 404.
    :param content_type: Content-Type to send; by default guessed from ``path``.
    :param cache_control: ``Cache-Control`` value (or None, or a function of the file name).
    :param precompressed: serve ``path.br`` / ``path.gz`` when present and accepted.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        content_type: Optional[str] = None,
        cache_control: CacheControl = DEFAULT_CACHE_CONTROL,
        precompressed: bool = True,
    ) -> None:
        super().__init__(cache_control, precompressed)
        self.path = os.path.abspath(os.fspath(path))
        self.content_type = content_type

    def serve(self, req: Any, resp: Any) -> None:
        """Answer ``req`` with the file, filling in ``resp``."""
        if req.method not in ("GET", "HEAD"):
            _plain(resp, 405, (("Allow", _ALLOW),))
            return
        name = os.path.basename(self.path)
        content_type = self.content_type or guess_type(name)
        self._respond_file(req, resp, self.path, self.path, name, content_type)

    #: A FileServer is a handler too: ``peregrine.Server(FileServer("app.html"))``.
    handle_request = serve

    def __repr__(self) -> str:
        return f"FileServer({self.path!r})"


def make_static_handler(root: Union[str, "os.PathLike[str]"], **options: Any) -> type:
    """A handler class that serves ``root`` with a :class:`DirServer` (``options`` are its keywords).

    The directory is checked now, so a typo fails at startup rather than on
    the first request; each worker process builds its own DirServer.
    """
    DirServer(root, **options)  # validate arguments early

    class StaticHandler:
        """Serves a directory (made by :func:`peregrine.util.static.make_static_handler`)."""

        def __init__(self) -> None:
            self.server = DirServer(root, **options)

        def handle_request(self, req: Any, resp: Any) -> None:
            self.server.serve(req, resp)

    StaticHandler.__qualname__ = StaticHandler.__name__ = "StaticHandler"
    return StaticHandler
