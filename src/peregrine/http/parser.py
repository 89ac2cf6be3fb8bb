"""Sans-IO HTTP/1.x request parser: bytes in, complete requests out.

The byte-level grammar is llhttp's (through ``httptools``), run in its strict mode: it rejects
obs-fold, bad tokens, CR/LF/NUL in values, conflicting or malformed Content-Length and
Transfer-Encoding. On top of it this module adds what llhttp leaves to the server: size limits
(414, 431, 413), the Host requirement, HTTP/0.9 and version checks (400, 505), ``Expect``.

Every failure is a :class:`ProtocolError` carrying the status to answer with; the caller sends
it and closes, since a stream that failed to parse cannot be trusted to stay in sync.
"""

from __future__ import annotations

import re

import httptools

from .errors import ProtocolError
from .request import Request

#: parser states, readable by the connection to choose its timer
IDLE, HEAD, BODY = 0, 1, 2

_HEADER_OVERHEAD = 4  # ": " and CRLF around every field
_VERSIONS = {"1.1": "1.1", "1.0": "1.0"}
_OWS = (0x20, 0x09)
# header fields the parser must act on, found by one dict lookup for the usual spellings
_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _EXPECT = range(5)
_SPECIAL_HEADERS = {}
for _name, _kind in (
    (b"host", _HOST),
    (b"content-length", _CONTENT_LENGTH),
    (b"transfer-encoding", _TRANSFER_ENCODING),
    (b"connection", _CONNECTION),
    (b"expect", _EXPECT),
):
    for _spelling in (_name, _name.title(), _name.upper()):
        _SPECIAL_HEADERS[_spelling] = _kind
_SPECIAL_LENGTHS = frozenset(len(n) for n in _SPECIAL_HEADERS)
# decoded once: most requests use one of these
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}


_new_object = object.__new__  # see on_headers_complete


class RequestParser:
    """Feeds bytes to llhttp and collects the requests they complete.

    After :meth:`feed`, ``requests`` holds every request completed so far (the caller pops them),
    ``expect_continue`` is set when the request in progress waits for ``100 Continue``, and
    ``upgrade_data`` holds the bytes that followed an upgrade request (the parser is finished then).

    With ``stream_bodies`` (the ASGI and WSGI interfaces, whose applications read bodies as they
    arrive) ``requests`` stays empty and ``events`` says what happened, in order: a
    :class:`Request` when a head is complete (its ``body`` stays empty), ``bytes`` for a piece of
    the body of the latest head, ``None`` when that message is complete.
    """

    __slots__ = (
        "requests",
        "events",
        "stream_bodies",
        "completed",
        "state",
        "begun",
        "expect_continue",
        "upgrade_data",
        "_parser",
        "_url",
        "_headers",
        "_head_size",
        "_body",
        "_body_size",
        "_has_host",
        "_content_length",
        "_codings",
        "_has_connection",
        "_head_fed",
        "_trailer_count",
        "_special",
        "_line_tail",
        "_chunks",
        "_body_fed",
        "_upgrade_request",
        "_upgrade_length",
        "_upgrade_body",
        "_error",
        "_request",
        "_client",
        "_scheme",
        "_max_line",
        "_max_head",
        "_max_count",
        "_max_body",
    )

    def __init__(
        self,
        max_request_line: int = 8192,
        max_header_size: int = 32768,
        max_header_count: int = 100,
        max_body_size: int = 1 << 20,
        client: tuple[str, int] | None = None,
        scheme: str = "http",
        stream_bodies: bool = False,
    ) -> None:
        self.requests: list[Request] = []
        #: with ``stream_bodies``: what happened, in order (see :data:`BodyEvent`)
        self.events: list[Request | bytes | None] = []
        self.stream_bodies = stream_bodies
        #: how many messages have been completed (heads and bodies)
        self.completed = 0
        #: IDLE between requests, HEAD while the head arrives, BODY while the body does
        self.state = IDLE
        #: how many requests have begun; lets the caller notice a new one within one feed
        self.begun = 0
        self.expect_continue = False
        self.upgrade_data: bytes | None = None
        self._max_line = max_request_line
        self._max_head = max_header_size
        self._max_count = max_header_count
        self._max_body = max_body_size
        self._client = client
        self._scheme = scheme
        self._error: ProtocolError | None = None
        self._request: Request | None = None
        self._upgrade_request: Request | None = None
        self._upgrade_length = 0
        self._upgrade_body = b""
        self._special = True  # so that the first on_url sets every field
        self._body: list[bytes] | None = None
        self._body_size = 0
        self.on_url(b"")  # sets the per-message fields
        self.state = IDLE
        self.begun = 0
        self._parser = httptools.HttpRequestParser(self)

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raise :class:`ProtocolError` when the stream is malformed."""
        if self.upgrade_data is not None:
            self.upgrade_data += data
            return
        if self._upgrade_request is not None:
            self._collect_upgrade_body(data)
            return
        state, begun, completed = self.state, self.begun, self.completed
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self._upgrade_request is not None:
                self._collect_upgrade_body(data[exc.args[0] :])
            else:
                self.upgrade_data = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            if self._error is not None:
                raise self._error from None
            alone = state == IDLE and self.begun == begun and self.completed == completed
            raise _classify(exc, data if alone else b"") from None
        if self.state != IDLE:
            same = self.begun == begun
            if self.state == HEAD:
                self._check_partial_head(
                    data, state == HEAD and same, not same and self.completed == completed
                )
            elif state == BODY and same and self._codings is not None:
                self._check_chunk_overhead(len(data))
        elif (
            self.begun == begun
            and self.completed == completed
            and data.strip(b"\r\n")
            and self.upgrade_data is None
            and self._upgrade_request is None
        ):
            # llhttp is inside a request line it reports only at the target: the request (and
            # its header timeout) starts now, at its first byte.
            self.on_url(b"")
            self._check_partial_head(data, False, True)

    def _collect_upgrade_body(self, data: bytes) -> None:
        # llhttp stops at the head of an upgrade request, body or not. Should the handler decline
        # the upgrade, that body must not be parsed as requests (smuggling): read it here.
        self._upgrade_body += data
        request = self._upgrade_request
        assert request is not None
        need = self._upgrade_length
        if len(self._upgrade_body) >= need:
            request.body = self._upgrade_body[:need]
            self.upgrade_data = self._upgrade_body[need:]
            self._upgrade_body = b""
            self._upgrade_request = None
            self.completed += 1
            if self.stream_bodies:
                if need:
                    self.events.append(request.body)
                self.events.append(None)
            else:
                self.requests.append(request)
            self.state = IDLE

    def _check_partial_head(self, data: bytes, continued: bool, starts_here: bool) -> None:
        """Limits on a head still incomplete after a feed (llhttp would just wait for more).

        ``continued``: all of ``data`` went to a head begun in an earlier feed; ``starts_here``:
        the head began in ``data`` with no request before it, so all of ``data`` is its own.
        """
        if continued or starts_here:
            # llhttp buffers a header line it has not finished: bound what a client can make it
            # hold by counting every byte fed while one head is in progress.
            self._head_fed = self._head_fed + len(data) if continued else len(data)
            if self._head_fed > self._max_head:
                self._fail(431, "request header fields too large")
        if not self._headers:
            self._check_http09(data)

    def _check_http09(self, data: bytes) -> None:
        # "GET /" + CRLF is a whole HTTP/0.9 request: its client waits for an answer rather than
        # sending headers, so refuse it as soon as the line ends, not at the header timeout.
        text = self._line_tail + data
        lines = text.split(b"\n")
        self._line_tail = lines[-1][-(self._max_line + 32) :]
        if (
            len(lines) > 1
            and self._url
            and lines[-2].rstrip(b"\r") == (self._parser.get_method() + b" " + self._url)
        ):
            self._fail(400, "HTTP/0.9 request line")

    def _check_chunk_overhead(self, fed: int) -> None:
        # Chunk sizes, extensions and trailer fields are all "framing": llhttp keeps no limit on
        # them, so bound them like a head (plus a little per chunk for the size lines).
        self._body_fed += fed
        if self._body_fed - self._body_size > self._max_head + 32 * self._chunks:
            self._fail(431, "chunk extensions or trailer fields too large")

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def _fail(self, status: int, detail: str) -> None:
        # Raised inside a callback, the exception stops llhttp and feed() re-raises this one;
        # raised from feed() itself, it simply propagates.
        self._error = ProtocolError(status, detail)
        raise self._error

    # --- llhttp callbacks ---------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        if self.state != HEAD:
            # The message begins at its first URL byte: per-message state starts here, once per
            # request. (Not in llhttp's on_message_begin: one Python callback fewer per request;
            # nor in a helper method: one call fewer. ``on_url(b"")`` just begins a message.)
            self.state = HEAD
            self.begun += 1
            self._url = url
            self._headers: list[tuple[bytes, bytes]] = []
            self._head_size = 0
            self._has_host = False
            self._head_fed = 0
            self._line_tail = b""
            if self._special:
                # only requests with framing/connection headers dirtied these
                self._special = False
                self._content_length = 0
                self._codings: list[bytes] | None = None
                self._has_connection = False
                self._trailer_count = 0
                self._chunks = 0
                self._body_fed = 0
            if self._body is not None:
                self._body = None
                self._body_size = 0
        else:
            self._url += url
        if len(self._url) > self._max_line:
            self._fail(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace; it is not the value
        size = self._head_size = self._head_size + len(name) + len(value) + _HEADER_OVERHEAD
        if self.state == BODY:
            self._on_trailer()
            return
        headers = self._headers
        headers.append((name, value))
        if size > self._max_head or len(headers) > self._max_count:
            self._fail(
                431,
                "request header fields too large"
                if size > self._max_head
                else "too many header fields",
            )
        kind = _SPECIAL_HEADERS.get(name)
        if kind is None:
            if len(name) not in _SPECIAL_LENGTHS:
                return
            kind = _SPECIAL_HEADERS.get(name.lower())
            if kind is None:
                return
        if kind == _HOST:
            if self._has_host:
                self._fail(400, "more than one Host header")
            self._has_host = True
        else:
            self._special = True
            self._on_special_header(kind, value)

    def _on_special_header(self, kind: int, value: bytes) -> None:
        if kind == _CONTENT_LENGTH:
            # llhttp has checked the digits and rejected a second, different value
            self._content_length = int(value)
            if self._content_length > self._max_body:
                self._fail(413, "request body larger than max_body_size")
        elif kind == _TRANSFER_ENCODING:
            if self._codings is None:
                self._codings = []
            self._codings += (c.strip().lower() for c in value.split(b","))
        elif kind == _CONNECTION:
            self._has_connection = True
        elif kind == _EXPECT:
            if value.lower() != b"100-continue":
                self._fail(417, "unsupported expectation")
            self.expect_continue = True

    def _on_trailer(self) -> None:
        # a chunked trailer field: bounded like headers, never merged into them (RFC 9110 §6.5.1)
        self._special = True
        self._trailer_count += 1
        if self._trailer_count > self._max_count or self._head_size > self._max_head:
            self._fail(431, "trailer fields too large")

    def on_headers_complete(self) -> None:
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        if keep_alive and not self._has_connection:
            # llhttp keeps alive without a Connection header only for HTTP/x.y with x, y > 0, and
            # its strict version check lets only 1.1 through of those: skip the costly
            # get_http_version() on the common path.
            version = "1.1"
        else:
            version = self._version()
        if not self._has_host and version == "1.1":
            self._fail(400, "HTTP/1.1 request without Host")
        if self._special:
            keep_alive = self._check_framing(version, keep_alive)
        url = self._url
        if url[0] == 47:  # "/": origin-form, by far the commonest
            if 63 in url:  # b"?" as an int: one memchr (see request.decode_path)
                path, _, query = url.partition(b"?")
            else:
                path, query = url, b""
        elif url == b"*":
            path, query = url, b""
        else:
            path, query = _absolute_form(url)
        method = parser.get_method()
        if method == b"GET":
            # most requests: comparing llhttp's fresh bytes costs ~400 instructions less than
            # hashing them for _METHODS
            name = "GET"
        else:
            name = _METHODS.get(method) or method.decode("ascii")
            if method == b"CONNECT":
                keep_alive = self._check_connect()
        # Request(...), in two steps: on CPython 3.11 calling a class runs __init__ through
        # type.__call__ in a fresh interpreter frame; calling the method directly is inlined
        # (~350 instructions fewer per request). Same object, same __init__.
        request = self._request = _new_object(Request)
        request.__init__(  # type: ignore[misc]
            name,
            path,
            query,
            version,
            self._headers,
            b"",
            self._client,
            keep_alive,
            self._scheme,
        )
        self.state = BODY
        if self.stream_bodies:
            self.events.append(request)

    def _check_connect(self) -> bool:
        # llhttp hands everything after a CONNECT head over as tunnel data. A CONNECT has no
        # content (RFC 9110 §9.3.6), and we tunnel nothing: answer it, then close.
        if self._content_length or self._codings:
            self._fail(400, "CONNECT with a body")
        return False

    def _version(self) -> str:
        version = self._parser.get_http_version()
        if version in _VERSIONS:
            return _VERSIONS[version]
        if version == "0.9":
            self._fail(400, "HTTP/0.9 request line")
        self._fail(505, "HTTP version not supported")
        raise AssertionError  # unreachable: _fail raises

    def _check_framing(self, version: str, keep_alive: bool) -> bool:
        """Rules for requests with framing or connection headers; returns the final keep-alive."""
        codings = self._codings
        if codings and codings != [b"chunked"]:
            if codings[-1] != b"chunked":  # the body's length would be unknowable (RFC 9112 §6.3)
                self._fail(400, "the last transfer coding is not chunked")
            self._fail(501, "transfer coding not implemented")  # we decode no other coding
        if self.expect_continue and (
            version == "1.0" or (not self._content_length and not codings)
        ):
            # 100 Continue is an HTTP/1.1 feature (RFC 9110 §10.1.1), and only for a body
            self.expect_continue = False
        if (
            self._has_connection
            and (self._content_length or codings)
            and self._parser.should_upgrade()
        ):
            if codings:
                self._fail(400, "upgrade request with a chunked body")
            self._upgrade_length = self._content_length  # see _collect_upgrade_body
        if version == "1.0" and codings:
            return False  # chunked from an HTTP/1.0 client: faulty framing, close after it
        return keep_alive

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._fail(413, "request body larger than max_body_size")
        if self.stream_bodies:
            self.events.append(body)
        elif self._body is None:
            self._body = [body]
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        if self._upgrade_length:
            self._upgrade_request = request  # its body follows the upgrade; llhttp has stopped
            self._request = None
            return
        self.completed += 1
        if self.stream_bodies:
            self.events.append(None)
        else:
            body = self._body
            if body is not None:
                request.body = body[0] if len(body) == 1 else b"".join(body)
            self.requests.append(request)
        self._request = None
        self.expect_continue = False
        self.state = IDLE


def _absolute_form(url: bytes) -> tuple[bytes, bytes]:
    """Split ``http://host/path?q`` (absolute-form, RFC 9112 §3.2.2) into path and query."""
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise ProtocolError(400, "invalid request target") from None
    if not parsed.schema or parsed.schema.lower() not in (b"http", b"https"):
        raise ProtocolError(400, "invalid request target")
    return parsed.path or b"/", parsed.query or b""


_METHOD_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ ")


def _classify(exc: Exception, data: bytes) -> ProtocolError:
    """Turn an llhttp error into the status a client should see.

    ``data`` is what was fed when the request began in it (else empty).
    """
    message = str(exc) or "malformed request"
    if message == "Invalid HTTP version":
        return ProtocolError(505, message)  # well-formed "HTTP/x.y", not 1.0/1.1
    if message == "Invalid method encountered" and _METHOD_TOKEN.match(data.lstrip(b"\r\n")):
        # a syntactically valid method llhttp does not know (RFC 9110 §9.1)
        return ProtocolError(501, "method not implemented")
    return ProtocolError(400, message)
