"""The response a handler fills in, and its serialisation to bytes.

A response has one of four kinds of body:
- bytes (``set_body``), sent with ``Content-Length`` in the same write as the head;
- a stream (``await write(chunk)`` or ``stream(async_iterable)``), sent chunked on HTTP/1.1 and
  delimited by closing the connection on HTTP/1.0;
- a file (``send_file``), sent with ``Content-Length`` straight from the file;
- nothing, for 1xx/204/304.
This module builds the head's bytes and records what the body is; it opens a file handed to
``send_file`` by path, and ``write`` waits on the connection. The sending itself is the
connection's (``peregrine.aio.connection``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterable, Callable
from typing import IO, TYPE_CHECKING, Any, Final

from .._build import mypyc_attr
from ..config import Config
from .status import STATUS_LINES

if TYPE_CHECKING:
    import asyncio

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE: Final = re.compile(rb"[\r\n\x00]")

# Header names the server computes itself: letting a handler set them could desynchronise the
# connection (a wrong Content-Length is request smuggling waiting to happen).
_FRAMING: Final = frozenset((b"content-length", b"transfer-encoding"))
# names set_header must look at: framing (refused), and the ones the server would add itself
_SPECIAL: Final = _FRAMING | {b"connection", b"date", b"server"}


def _encode(text: str | bytes, what: str) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {what} {text!r} has characters outside ISO-8859-1") from None


#: One header field, validated and encoded (see :func:`check_header`): a plain tuple, not a
#: NamedTuple, because CPython's fast paths for indexing and unpacking take exact tuples only
#: (a NamedTuple cost ~400 instructions per request, measured with bench/hotpath.sh).
Checked = tuple[bytes, bytes, bytes, bytes]
#: its fields: the name and value as sent, the name lower-cased, and ``name: value\r\n``
NAME, VALUE, LNAME, LINE = range(4)


def _check_header(name: str | bytes, value: str | bytes | int) -> Checked:
    bname = _encode(name, "name")
    if not _TOKEN.fullmatch(bname):
        raise ValueError(f"invalid header name {name!r}")
    if isinstance(value, int):
        value = str(value)
    bvalue = _encode(value, "value")
    if _FORBIDDEN_IN_VALUE.search(bvalue):
        raise ValueError(f"header value for {name!r} contains CR, LF or NUL")
    bvalue = bvalue.strip(b" \t")
    return bname, bvalue, bname.lower(), bname + b": " + bvalue + b"\r\n"


# Handlers set the same few headers on every response; validating each pair once, then looking it
# up, takes most of the header cost off the hot path. Bounded so varying values cannot grow it.
_checked: Final[dict[tuple[object, object, type], Checked]] = {}
_CHECKED_MAX: Final = 4096


def check_header(name: str | bytes, value: str | bytes | int) -> Checked:
    """Encode and validate one header field: ``(name, value, lower-cased name, line)`` as bytes.

    Raises ``ValueError`` on anything that could split the response (CR, LF, NUL), a name that is
    not a token, or text outside ISO-8859-1.
    """
    key = (name, value, type(value))  # the type keeps True apart from 1
    checked = _checked.get(key)
    if checked is None:
        checked = _check_header(name, value)
        if len(_checked) < _CHECKED_MAX:
            _checked[key] = checked
    return checked


def open_regular_file(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading, refusing anything but a regular file with ``ValueError``.

    O_NONBLOCK: opening a FIFO or a device must not block the event loop (a FIFO's open waits
    for a writer); the check after opening then refuses it.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"{os.fspath(path)!r} is not a regular file")
    return os.fdopen(fd, "rb")


# A native class in the compiled build: the connection reads and writes its fields in a C struct,
# not through a dictionary (~6,000 instructions fewer per request than the regular class it was,
# bench/hotpath.sh). Native classes take no attributes besides their own, so the server hands
# handlers a subclass written in Python
# (peregrine.http.handler_response.Response, never compiled), which has a __dict__ and weak
# references (tests/http/test_extensible.py).
@mypyc_attr(allow_interpreted_subclasses=True)
class Response:
    """What the handler answers. ``status`` defaults to 200.

    The ``Response`` the server hands to handlers, ``peregrine.Response``, is a subclass that
    takes a handler's or middleware's own attributes and weak references in both builds
    (``peregrine.http.handler_response``); this class, compiled, takes only its own fields.

    The fields read for every response are set in ``__init__``: Python 3.11 reads an instance
    attribute much faster than a class default through an instance (measured: ~1,000 instructions
    per request for the six below). Fields only unusual responses use stay class defaults.
    """

    #: ``(file object, offset, count)`` after :meth:`send_file`
    file: tuple[Any, int, int] | None = None
    stream_source: AsyncIterable[bytes | str] | None = None
    upgrade_factory: Callable[..., asyncio.Protocol] | None = None
    _has_connection = False
    #: body bytes of a streamed response sent so far (for the access log)
    _bytes_streamed = 0

    def __init__(self, conn: Any = None, request: Any = None) -> None:
        # The fields as checked (see check_header), and their lines joined: the head is then
        # one join of a few pieces, however many headers were set.
        self._fields: list[Checked] = []
        self._block = b""
        self._conn = conn
        self._request = request
        #: the status code; the reason phrase comes from the standard table
        self.status = 200
        #: the whole body, for responses that are not streamed or sent from a file
        self.body: bytes | bytearray | memoryview = b""  # a handler may assign any bytes-like
        #: True when the handler asked for ``Connection: close``
        self.close_connection = False
        self._has_date = False
        self._has_server = False
        #: True after stream(), send_file() or upgrade(): the answer is more than a bytes body,
        #: and the connection checks this one flag instead of three fields
        self._stream_file_or_upgrade = False

    @property
    def config(self) -> Config:
        """The settings of the server this response belongs to (the defaults for a response
        made on its own, as in tests). ``peregrine.ws.upgrade`` reads its WebSocket options here.
        """
        conn = self._conn
        if conn is None:
            return Config()  # a fresh one: Config is mutable, a shared default could be changed
        config: Config = conn.config
        return config

    # --- headers ------------------------------------------------------------------------------

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The header fields set so far, as ``(name, value)`` bytes pairs (a copy)."""
        return [(f[NAME], f[VALUE]) for f in self._fields]

    def set_header(self, name: str | bytes, value: str | bytes | int) -> None:
        """Set a header, replacing any field of the same name (case-insensitive)."""
        # (``is None``, not ``or``: in the compiled build a tuple tested for truth, or put in a
        # list after ``or`` unpacked it, is boxed into a new tuple each time)
        checked = _checked.get((name, value, type(value)))
        if checked is None:
            checked = check_header(name, value)
        _, bvalue, lname, line = checked
        if lname in _SPECIAL:
            self._note_special(lname, bvalue)
        fields = self._fields
        if not fields:
            fields.append(checked)
            self._block = line  # (the block of no fields is empty: no concatenation)
        elif any(f[LNAME] == lname for f in fields):
            self._fields = fields = [f for f in fields if f[LNAME] != lname]
            fields.append(checked)
            self._block = b"".join([f[LINE] for f in fields])
        else:
            fields.append(checked)
            self._block += line

    def add_header(self, name: str | bytes, value: str | bytes | int) -> None:
        """Add a header field, keeping any others of the same name (e.g. ``Set-Cookie``)."""
        checked = _checked.get((name, value, type(value)))
        if checked is None:  # (see set_header)
            checked = check_header(name, value)
        _, bvalue, lname, line = checked
        if lname in _SPECIAL:
            self._note_special(lname, bvalue)
        self._fields.append(checked)
        self._block += line

    def _add_checked(self, fields: tuple[Checked, ...], block: bytes) -> None:
        """Add fields made by :func:`check_header` before, none of them special (framing,
        Connection, Date, Server), with their lines joined in ``block``: for a server that sends
        the same header block again and again (``util.static``: one per cached file)."""
        self._fields.extend(fields)
        self._block += block

    def get_header(self, name: str) -> str | None:
        """The first value set for ``name`` (case-insensitive), or None."""
        lname = name.lower().encode("latin-1")
        for field in self._fields:
            if field[LNAME] == lname:
                return field[VALUE].decode("latin-1")
        return None

    def _note_special(self, lname: bytes, bvalue: bytes) -> None:
        if lname in _FRAMING:
            raise ValueError(
                f"{lname.decode()} is set by the server from the body; use set_body, write or send_file"
            )
        if lname == b"connection":
            self._has_connection = True
            if b"close" in bvalue.lower():
                self.close_connection = True
        elif lname == b"date":
            self._has_date = True
        elif lname == b"server":
            self._has_server = True

    # --- bodies -------------------------------------------------------------------------------

    def set_body(self, body: bytes | bytearray | memoryview | str) -> None:
        """The whole body at once (``str`` is encoded as UTF-8). Content-Length follows from it.

        Anything else raises ``TypeError``: ``bytes(42)`` would be 42 NUL bytes, not "42".
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            if not isinstance(body, (bytearray, memoryview)):
                raise TypeError(
                    f"set_body() takes bytes, bytearray, memoryview or str, not "
                    f"{type(body).__name__} (for a number, pass str(value))"
                )
            body = bytes(body)
        self.body = body

    def stream(self, source: AsyncIterable[bytes | str]) -> None:
        """Send the chunks of an async iterable as the body once the handler returns."""
        self.stream_source = source
        self._stream_file_or_upgrade = True

    async def write(self, chunk: bytes | str) -> None:
        """Send part of a streamed body now; waits while the client is not reading.

        The first call sends the head (chunked on HTTP/1.1, close-delimited on HTTP/1.0).
        """
        if self._conn is None:
            raise RuntimeError("this response is not attached to a connection")
        await self._conn.write_stream_chunk(self, chunk)

    @property
    def streaming(self) -> bool:
        """True once the head of a streamed body has been sent."""
        return self._conn is not None and bool(self._conn.is_streaming(self))

    def send_file(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        offset: int = 0,
        count: int | None = None,
    ) -> None:
        """Make the body ``count`` bytes of ``file`` from ``offset`` (to its end when None).

        ``file`` is a path or a binary file object; the server closes it once sent. Content-Length
        is set from ``count``. The bytes go straight from the file (``sendfile`` where possible).
        """
        if isinstance(file, (str, os.PathLike)):
            file = open_regular_file(file)
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        if offset < 0 or count < 0:
            file.close()
            raise ValueError("offset and count must not be negative")
        self.file = (file, offset, count)
        self._stream_file_or_upgrade = True

    def upgrade(self, factory: Callable[..., asyncio.Protocol]) -> None:
        """Switch protocols after this (101) response; see ``docs/internals.md``."""
        self.upgrade_factory = factory
        self._stream_file_or_upgrade = True

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def serialize_head(
    resp: Response,
    content_length: int | None,
    keep_alive: bool,
    http10: bool,
    date_line: bytes,
    server_line: bytes,
    chunked: bool = False,
    keep_alive_line: bytes = b"Connection: keep-alive\r\n",
) -> bytes:
    """The status line and header block of ``resp``, ending with the blank line.

    ``content_length`` None means no Content-Length (streams, 1xx/204/304). ``date_line`` and
    ``server_line`` are the pre-formatted ``Date``/``Server`` lines (``server_line`` may be empty);
    a header of the same name set by the handler wins. ``keep_alive_line`` is what tells an
    HTTP/1.0 client its connection stays open (``Keep-Alive: timeout=N`` may follow).
    """
    status = resp.status
    line = _STATUS_LINE_AT[status] if 0 <= status < 600 else None
    if line is None:
        raise ValueError(f"invalid status code {status!r}")
    if resp._has_date:
        date_line = b""
    if resp._has_server:
        server_line = b""
    if content_length is None or status < 200 or status == 204 or status == 304:
        # has_no_body(status), inlined: this runs once per response, and a call costs more
        length_line = b""
    else:
        # (``is not None``, not ``or``: compiled, a truth test of bytes is a C call)
        cached = _LENGTH_LINES.get(content_length)
        length_line = cached if cached is not None else _length_line(content_length)
    if (
        status == 101
        or (keep_alive and not http10)
        or (resp._has_connection and (keep_alive or resp.close_connection))
    ):
        connection_line = b""  # nothing to say, or the handler's own Connection field says it
    else:
        connection_line = keep_alive_line if keep_alive else b"Connection: close\r\n"
    return b"".join(
        (
            line,
            date_line,
            server_line,
            resp._block,
            length_line,
            b"Transfer-Encoding: chunked\r\n" if chunked else b"",
            connection_line,
            b"\r\n",
        )
    )


# The status lines by code, None where there is none: compiled, indexing this list by the native
# int costs ~130 instructions less than looking STATUS_LINES up by a boxed one.
_STATUS_LINE_AT: Final[list[bytes | None]] = [STATUS_LINES.get(code) for code in range(600)]

# Bodies often have the same few sizes: their Content-Length lines are made once.
_LENGTH_LINES: Final[dict[int, bytes]] = {}


def _length_line(length: int) -> bytes:
    line = b"Content-Length: %d\r\n" % length
    if len(_LENGTH_LINES) < 4096:
        _LENGTH_LINES[length] = line
    return line
