"""Sans-IO HTTP/1.x request parser: bytes in, complete requests out.

The byte-level grammar is llhttp's (through ``httptools``), run in its strict mode: it rejects
obs-fold, bad tokens, CR/LF/NUL in values, conflicting or malformed Content-Length and
Transfer-Encoding. On top of it this module adds what llhttp leaves to the server: size limits
(414, 431, 413), the Host requirement, HTTP/0.9 and version checks (400, 505), ``Expect``.

Every failure is a :class:`ProtocolError` carrying the status to answer with; the caller sends
it and closes, since a stream that failed to parse cannot be trusted to stay in sync.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

import httptools

from . import chunklines
from .errors import ProtocolError
from .request import Request
from .target import split_absolute_form

#: the parser's phases (``RequestParser.phase``), read by the connection to choose its timer
IDLE: Final = 0
HEAD: Final = 1
BODY: Final = 2

_HEADER_OVERHEAD: Final = 4  # ": " and CRLF around every field
_VERSIONS: Final = {"1.1": "1.1", "1.0": "1.0"}
_OWS: Final = (0x20, 0x09)
_CRLF: Final = (0x0D, 0x0A)
# header fields the parser must act on, found by their name's length first: a dict lookup by a
# small int, where looking up the name itself hashed a fresh bytes object for every field
_HOST: Final = 0
_CONTENT_LENGTH: Final = 1
_TRANSFER_ENCODING: Final = 2
_CONNECTION: Final = 3
_EXPECT: Final = 4
#: name length -> (lower-cased name, title-cased name, kind); no two special names share a length
_SPECIAL_BY_LENGTH: Final[dict[int, tuple[bytes, bytes, int]]] = {
    len(_name): (_name, _name.title(), _kind)
    for _name, _kind in (
        (b"host", _HOST),
        (b"content-length", _CONTENT_LENGTH),
        (b"transfer-encoding", _TRANSFER_ENCODING),
        (b"connection", _CONNECTION),
        (b"expect", _EXPECT),
    )
}
# decoded once: most requests use one of these
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}


_new_object = object.__new__  # see on_headers_complete
# mypyc gives its native classes __mypyc_attrs__: a compiled Request is built by calling it
_TWO_STEP_NEW: Final = not hasattr(Request, "__mypyc_attrs__")


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
        "phase",
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
        "_head_buf",
        "_method_pending",
        "_te_pending",
        "_replaying",
        "_chunk_tail",
        "_fast_max",
        "_host",
        "_in_pieces",
        "_again",
        "_chunk_left",
        "_chunk_line",
        "_chunk_state",
        "_chunk_scanned",
        "_chunk_digits",
        "_chunk_zeros",
        "_chunk_ext_left",
        "_trailer_size",
        "_chunk_trailers",
        "_trailer_count",
        "_special",
        "_line_tail",
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
        "_max_ext",
    )
    # first set in on_url, read in methods defined above it: declared here for mypy (and mypyc)
    _head_fed: int
    _line_tail: bytes

    def __init__(
        self,
        max_request_line: int = 8192,
        max_header_size: int = 32768,
        max_header_count: int = 100,
        max_body_size: int = 1 << 20,
        client: tuple[str, int] | None = None,
        scheme: str = "http",
        stream_bodies: bool = False,
        max_chunk_extensions: int = 16384,
    ) -> None:
        self.requests: list[Request] = []
        #: with ``stream_bodies``: what happened, in order (see :data:`BodyEvent`)
        self.events: list[Request | bytes | None] = []
        self.stream_bodies = stream_bodies
        #: how many messages have been completed (heads and bodies)
        self.completed = 0
        #: IDLE between requests, HEAD while the head arrives, BODY while the body does
        self.phase = IDLE
        #: how many requests have begun; lets the caller notice a new one within one feed
        self.begun = 0
        self.expect_continue = False
        self.upgrade_data: bytes | None = None
        self._max_line = max_request_line
        self._max_head = max_header_size
        self._max_count = max_header_count
        self._max_body = max_body_size
        self._max_ext = max_chunk_extensions
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
        self._head_buf = bytearray()  # the head in progress, when it spans several feeds
        self._method_pending = False
        self._te_pending = False
        self._replaying = False
        # (stream_bodies too: the events a whole feed reported are taken back by _feed_again)
        self._fast_max = max_header_size
        self._host = b"\x00"  # the last Host value found valid (never this one)
        self._in_pieces = False
        self._again = False
        self._line_tail = b""
        self._content_length = 0
        # where a chunked body is (see _feed_chunked)
        self._chunk_left = 0  # bytes of chunk data and CRLF still to come
        self._chunk_line = bytearray()  # a chunk-size line held back until its end comes
        self._chunk_state = chunklines.START  # the grammar's state after _chunk_scanned bytes
        self._chunk_scanned = 0  # of the chunk-size line in progress
        self._chunk_digits = 0  # its size's digits so far
        self._chunk_zeros = 0  # its size's leading zeros so far
        self._chunk_ext_left = max_chunk_extensions  # for the rest of this body
        self._trailer_size = 0  # bytes of the trailer section received
        self._chunk_trailers = False  # after the last chunk
        self._chunk_tail = b""  # the trailer section's last bytes, for a blank line split
        self.on_url(b"")  # sets the per-message fields
        self.phase = IDLE
        self.begun = 0
        self._parser = httptools.HttpRequestParser(self)

    def release(self) -> None:
        """Let go of llhttp's parser, for a caller done with this one (idle or closed).

        llhttp's parser holds bound methods of this object, so the two form a reference cycle:
        left as it is, a dropped parser is freed only by the cyclic garbage collector, whose
        full passes then stop the worker for a time that grows with the heap (~100 ms at 1,000
        busy connections). Without the cycle both are freed at once. Not to be fed afterwards.
        """
        self._parser = None  # type: ignore[assignment]  # (never read again)

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raise :class:`ProtocolError` when the stream is malformed.

        Every head is measured as received (request line, fields, whitespace and line ends), and
        its limit and its refusal status are the same however TCP split the bytes. For that
        llhttp gets the bytes in pieces that end where a head or a body ends (_feed_pieces).
        A read that cannot hold a head over the limit and ends a line is fed whole first, as
        nearly every read of small requests is; should it turn out to need those positions (an
        error, a chunked body, a head it leaves unfinished after a complete request), it is
        parsed again in pieces.
        """
        # Locals, not the attributes, are narrowed: the callbacks feed_data runs change the
        # attributes, which a type checker (and mypyc, which trusts it) would not notice.
        upgrade_data, upgrade_request = self.upgrade_data, self._upgrade_request
        if upgrade_data is not None:
            self.upgrade_data = upgrade_data + data
            return
        if upgrade_request is not None:
            self._collect_upgrade_body(data)
            return
        # (IDLE is 0; _fast_max is max_header_size, or -1 while only pieces will do)
        if not self.phase and data and len(data) <= self._fast_max and data[-1] == 10:
            completed = self.completed
            begun = self.begun
            reported = len(self.events)
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                rest = data[exc.args[0] :]
                if self._upgrade_request is not None:
                    self._collect_upgrade_body(rest)
                else:
                    self.upgrade_data = rest
                return
            except httptools.HttpParserError as exc:
                if self._error is not None and not self._again:
                    raise self._error from None  # a check of ours: due where it fired
                if self.completed == completed and str(exc).startswith("Data after"):
                    # a message in an earlier read closed the stream; a fresh llhttp in
                    # _feed_again would not know it
                    raise _classify(exc) from None
                self._feed_again(data, completed, begun, reported)
                return
            if self.phase and self.phase == HEAD:
                if self.completed != completed:
                    self._feed_again(data, completed, begun, reported)
                else:
                    self._partial_head(data, 0, len(data), IDLE)
            return
        self._feed_pieces(data)

    def _feed_again(self, data: bytes, completed: int, begun: int, reported: int) -> None:
        """Undo what feeding ``data`` whole did, and parse it in pieces instead (``reported``:
        how many events there were before; the caller routes them only after ``feed``)."""
        done = self.completed - completed
        if done:
            del self.requests[len(self.requests) - done :]
        del self.events[reported:]
        self.completed = completed
        self.begun = begun
        self.phase = IDLE
        self._special = True
        self._error = None
        self._again = False
        self.expect_continue = False
        self._request = None
        self._head_buf.clear()
        self._parser = httptools.HttpRequestParser(self)
        self._feed_pieces(data)

    def _feed_pieces(self, data: bytes) -> None:
        outer = self._in_pieces
        self._in_pieces = True
        try:
            self._feed_each_piece(data)
        finally:
            self._in_pieces = outer

    def _feed_each_piece(self, data: bytes) -> None:
        """Feed llhttp ``data`` in pieces that end where a head or a body ends."""
        if self._method_pending:
            self._continue_unknown_method(data)
            return
        if self._te_pending:
            self._continue_pending_te(data)
            return
        n = len(data)
        pos = 0
        while pos < n:
            phase = self.phase
            begun = self.begun
            if phase == BODY:
                if self._codings is not None:
                    pos = self._feed_chunked(data, pos)
                    continue
                end = pos + self._content_length - self._body_size
                if end <= pos:
                    end = n  # not expected: llhttp ends such a message at its head
            else:
                end = self._head_end(data, pos)
            if end >= n:
                end = n
                piece = data if pos == 0 else data[pos:]
            else:
                piece = data[pos:end]
            try:
                self._parser.feed_data(piece)
            except httptools.HttpParserUpgrade as exc:
                rest = data[pos + exc.args[0] :]
                if self._upgrade_request is not None:
                    self._collect_upgrade_body(rest)
                else:
                    self.upgrade_data = rest
                return
            except httptools.HttpParserError as exc:
                if self._error is not None:
                    raise self._error from None
                if phase == BODY or str(exc).startswith("Data after"):
                    # (bytes after a message that closes the connection: refused as such,
                    # whatever they are; a fresh llhttp, in a replay or a re-parse without
                    # tabs, would judge them as a head of their own)
                    raise _classify(exc) from None
                head = self._head_bytes(data, pos, end, phase)
                if self._reparse_normalized(head):
                    if self.upgrade_data is None and self._upgrade_request is None:
                        # go on in this loop: feeding the rest recursively would nest one
                        # level per such head, and a read holds hundreds of them
                        pos = end
                        continue
                    if end < n:
                        self.feed(data[end:])  # to the upgrade's bytes
                    return
                self._refuse_head(exc, head)
                # a verdict that waits for the end of a method name, or of the head
                if self._te_pending:
                    self._continue_pending_te(data[end:])
                else:
                    self._continue_unknown_method(data[end:])
                return
            if phase == BODY:
                pass
            elif self.phase == HEAD or (phase == self.phase == IDLE and self.begun == begun):
                self._partial_head(data, pos, end, phase)
                if end < n:  # the head goes on past max_header_size
                    self._fail(431, "request header fields too large")
            elif self._head_buf:
                self._head_buf.clear()
            pos = end

    def _head_end(self, data: bytes, pos: int) -> int:
        """Where the piece of ``data`` from ``pos`` that belongs to the head in progress ends.

        That is at the blank line that ends the head, or at the end of ``data``, or where the
        head reaches ``max_header_size``: a head still going on there is refused with 431 once
        it is fed (unless llhttp refuses one of its bytes first).
        """
        buf = self._head_buf
        start = pos
        if self.phase == IDLE:
            n = len(data)
            while start < n and data[start] in _CRLF:
                start += 1  # empty lines before a request: llhttp skips them
        elif buf:
            # the blank line may straddle the previous piece
            tail = bytes(buf[-3:])
            k = (tail + data[pos : pos + 3]).find(b"\r\n\r\n")
            if k >= 0 and len(buf) + k + 4 - len(tail) <= self._max_head:
                return pos + k + 4 - len(tail)
        room = self._max_head - len(buf)
        e = data.find(b"\r\n\r\n", start, start + room)
        if e >= 0:
            return e + 4
        return start + room

    def _head_bytes(self, data: bytes, pos: int, end: int, phase: int) -> bytes:
        """The bytes of the head in progress, up to ``end`` (for a refusal's verdict)."""
        if phase == IDLE:
            while pos < end and data[pos] in _CRLF:
                pos += 1
        return bytes(self._head_buf) + data[pos:end]

    def _partial_head(self, data: bytes, pos: int, end: int, phase: int) -> None:
        """Book-keeping and limits for a head still incomplete after the piece ``data[pos:end]``."""
        if phase == IDLE:
            while pos < end and data[pos] in _CRLF:
                pos += 1
            if pos == end:
                return  # empty lines only
            if self.phase == IDLE:
                # llhttp is inside a request line it reports only at the target: the request
                # (and its header timeout) starts now, at its first byte.
                self.on_url(b"")
        buf = self._head_buf
        before = len(buf)
        buf += data[pos:end]
        # while the request line is the last line begun, and also when it ended in this piece
        # (fields reported from the same piece must not hide it)
        if not self._headers or buf.find(b"\n", 0, before) < 0:
            self._check_http09(data[pos:end])

    def _reparse_normalized(self, head: bytes) -> bool:
        """Parse a whole head again with what llhttp wrongly refuses made spaces, if any.

        That is the tabs of trailing whitespace, which is not part of a field value (RFC 9110
        §5.5), where llhttp takes ``chunked<TAB>`` for an unknown transfer coding but accepts
        ``chunked<SP>``; and the empty list elements that end a Transfer-Encoding value
        (``chunked,``, ``chunked, ,``), which a recipient must accept (RFC 9110 §5.6.1) and
        llhttp takes for a coding after ``chunked``. The head keeps its length, so its limit
        is measured as before; the field values reported lose that whitespace and those commas.
        """
        if not head.endswith(b"\r\n\r\n"):
            return False
        first = head.index(b"\n") + 1  # the request line keeps its bytes
        fields = _TRAILING_OWS.sub(_spaces, head[first:])
        fields = _TE_TRAILING_EMPTY_ELEMENTS.sub(_keep_codings, fields)
        if fields == head[first:]:
            return False
        # begin the message again in a fresh llhttp
        request = self._request
        if (
            self.stream_bodies
            and request is not None
            and self.events
            and self.events[-1] is request
        ):
            self.events.pop()  # its head is reported again below
        self._parser = httptools.HttpRequestParser(self)
        self.phase = IDLE
        self.begun -= 1
        self._special = True
        self.expect_continue = False
        self._request = None
        self._head_buf.clear()
        self.feed(head[:first] + fields)
        return True

    def _refuse_head(self, exc: Exception, head: bytes) -> None:
        """Raise the status for a head llhttp refused: the one its bytes would get one at a time.

        Checks made in callbacks run when llhttp reports a span, which depends on where the
        reads ended (a field reaches ``on_header`` only when the next one's name is reported).
        So the head is replayed in a fresh parser in pieces cut where those checks are due:
        one byte into every line, and one byte past ``max_request_line`` in the target.
        """
        if str(exc) == "Invalid method encountered":
            status = _unknown_method_status(head, self._max_head)
            if status is None:
                self._method_pending = True  # the verdict waits for the end of the name
                self._fast_max = -1
                self._head_buf = bytearray(head)
                return
            raise ProtocolError(
                status, "method not implemented" if status == 501 else str(exc)
            ) from None
        if str(exc) == _TE_REFUSED and not head.endswith(b"\r\n\r\n") and not self._replaying:
            # maybe only empty list elements after "chunked", which llhttp refuses as soon as
            # it sees the comma: the verdict waits for the end of the head
            self._te_pending = True
            self._head_buf = bytearray(head)
            return
        if not self._replaying:
            error = self._replay(head)
            if error is not None:
                raise error from None
        raise _classify(exc) from None

    def _replay(self, head: bytes) -> ProtocolError | None:
        cuts = set()
        i = head.find(b"\n")
        while 0 <= i < len(head) - 2:
            cuts.add(i + 2)
            i = head.find(b"\n", i + 1)
        target = _TARGET_START.match(head)
        if target is not None:
            cuts.add(target.end() + self._max_line + 1)
        replay = RequestParser(
            self._max_line,
            self._max_head,
            self._max_count,
            self._max_body,
            max_chunk_extensions=self._max_ext,
        )
        replay._replaying = True
        start = 0
        for cut in sorted(c for c in cuts if c < len(head)) + [len(head)]:
            try:
                replay.feed(head[start:cut])
            except ProtocolError as exc:
                return exc
            start = cut
        return None

    def _continue_pending_te(self, data: bytes) -> None:
        """Go on with a head llhttp refused at a comma in its Transfer-Encoding value.

        Once the head is complete it is parsed again without the empty list elements that end
        that value (:meth:`_reparse_normalized`), or refused with llhttp's 400 when that does
        not help. A head that passes ``max_header_size`` first is replayed without them up to
        there: 431 if the limit is its first problem, the status of the first one otherwise.
        """
        buf = self._head_buf
        before = len(buf)
        buf += data[: self._max_head + 1 - before]
        e = buf.find(b"\r\n\r\n", max(0, before - 3), self._max_head)
        if e < 0 and len(buf) <= self._max_head:
            return  # the head goes on in a later read
        self._te_pending = False
        if e < 0:
            head = _TE_TRAILING_EMPTY_ELEMENTS.sub(_keep_codings, bytes(buf))
            raise self._replay(head) or ProtocolError(431, "request header fields too large")
        end = e + 4 - before
        if not self._reparse_normalized(bytes(buf[: e + 4])):
            raise ProtocolError(400, _TE_REFUSED)
        if end < len(data):
            self.feed(data[end:])

    def _continue_unknown_method(self, data: bytes) -> None:
        buf = self._head_buf
        buf += data[: self._max_head + 1 - len(buf)]
        status = _unknown_method_status(bytes(buf), self._max_head)
        if status is not None:
            self._method_pending = False
            detail = "method not implemented" if status == 501 else "Invalid method encountered"
            raise ProtocolError(status, detail)

    def _feed_chunked(self, data: bytes, pos: int) -> int:
        """Feed the chunked body from ``data[pos]``; return where its message ended (or len).

        llhttp gets chunk data as it comes, but chunk-size lines only whole and judged first
        (:meth:`_take_chunk_line`): one still incomplete is held back until its end comes. The
        trailer section is measured as received (:meth:`_feed_trailers`). Knowing where the
        chunks are also tells where the message ends, hence where the next head begins.
        """
        n = len(data)
        fed = i = pos
        while i < n:
            if self._chunk_left:  # chunk data and the CRLF after it
                step = min(self._chunk_left, n - i)
                self._chunk_left -= step
                i += step
                continue
            if self._chunk_trailers:
                self._feed_body(data[fed:i])
                return self._feed_trailers(data, i)
            lf = data.find(b"\n", i)
            held = self._chunk_line
            if lf < 0:
                self._feed_body(data[fed:i])
                held += data[i:]
                self._take_chunk_line(held, False)
                return n
            if not held and _PLAIN_CHUNK_LINE.fullmatch(data, i, lf + 1):
                size = int(data[i : lf - 1], 16)  # the common line: llhttp takes it in place
            else:
                # what precedes the line first: its verdict (a chunk over max_body_size, a
                # missing CRLF after the data) comes first in byte order
                self._feed_body(data[fed:i])
                fed = i
                was_held = bool(held)
                if was_held:
                    held += data[i : lf + 1]
                    line = bytes(held)
                    held.clear()
                else:
                    line = data[i : lf + 1]
                size, fixed = self._take_chunk_line(line, True)
                if was_held or fixed != line:
                    # held, or without its BWS: llhttp gets the line on its own
                    self._feed_body(fixed)
                    fed = lf + 1
            i = lf + 1
            if size:
                self._chunk_left = size + 2
            else:
                self._chunk_trailers = True
                self._chunk_tail = b"\r\n"  # the last-chunk line's own line end
                self._trailer_size = 0
        self._feed_body(data[fed:] if fed else data)
        return n

    def _take_chunk_line(self, line: bytes | bytearray, complete: bool) -> tuple[int, bytes]:
        """Judge a chunk-size line, or the start of one while ``complete`` is False.

        Chunk extensions are bounded by ``max_chunk_extensions`` for the whole body: every byte
        of a chunk-size line counts but its line end and the first 16 digits of its size (a size
        has at most 16 significant ones: leading zeros past them count). The verdict is the one
        the first problem in byte order calls for, a byte that cannot continue the line (400) or
        the first byte past the limit (413), so it is the same however the line was split. The
        state of the grammar is kept between reads, so that a line dribbled in is scanned once.
        Returns the chunk size and the line to give llhttp (without BWS); for a line still
        incomplete, ``(0, b"")``.
        """
        scanned = self._chunk_scanned
        digits = self._chunk_digits
        if digits == scanned:  # all digits so far: the size may go on in the new bytes
            digits = self._chunk_digits = _HEX_RUN.match(line, digits).end()  # type: ignore[union-attr]
            if self._chunk_zeros == scanned:
                self._chunk_zeros = _ZEROS.match(line, scanned).end()  # type: ignore[union-attr]
        limit_at = min(digits, 16) + self._chunk_ext_left  # the first byte past the limit
        n = len(line)
        stop = min(n, limit_at)
        if line[stop : stop + 1] == b"\r":  # a line end there is not past the limit
            stop += 1
            if line[stop : stop + 1] == b"\n":
                stop += 1
        # (scanned once, and never past a byte that already refused the line)
        unscanned = bytes(line[scanned:stop])
        state, _ = chunklines.advance(self._chunk_state, unscanned, 0, stop - scanned)
        self._chunk_state = state
        self._chunk_scanned = stop
        zeros = self._chunk_zeros
        # more than 16 significant digits overflow llhttp's 64 bits: an error at the 17th
        if state == chunklines.ERROR or (digits - zeros > 16 and zeros + 16 < limit_at):
            self._fail(400, "invalid chunk-size line")
        if n > stop:
            self._fail(413, "chunk extensions larger than max_chunk_extensions")
        if not complete:
            return 0, b""
        # (a complete line ends at its first LF: with a CR before it, it is END, else ERROR)
        self._chunk_ext_left -= n - 2 - min(digits, 16)
        self._chunk_state = chunklines.START
        self._chunk_scanned = self._chunk_digits = self._chunk_zeros = 0
        text = bytes(line)
        return int(text[:digits], 16), chunklines.normalize(text)

    def _feed_trailers(self, data: bytes, pos: int) -> int:
        """Feed the trailer section from ``data[pos]``; return where the message ended (or len).

        The section (every field line and the blank line that ends it) is measured as received
        against ``max_header_size``, as a head is: llhttp gets the bytes up to the limit, and
        a section still going on past it is refused with 431 (unless llhttp refused a byte of
        it first), however the section was split.
        """
        n = len(data)
        room = self._max_head - self._trailer_size
        tail = self._chunk_tail
        k = (tail + data[pos : pos + 3]).find(b"\r\n\r\n")  # a blank line straddling reads
        if k >= 0:
            end = pos + k + 4 - len(tail)
        else:
            end = data.find(b"\r\n\r\n", pos, pos + room)
            if end >= 0:
                end += 4
        if end >= 0 and end - pos <= room:
            self._feed_body(data[pos:end])
            self._chunk_trailers = False
            self._chunk_tail = b""
            return end
        stop = min(n, pos + room)
        self._feed_body(data[pos:stop])
        if stop < n:
            self._fail(431, "trailer section larger than max_header_size")
        self._trailer_size += n - pos
        self._chunk_tail = (tail + data[pos:])[-3:]
        return n

    def _feed_body(self, piece: bytes) -> None:
        """Give llhttp a piece of a chunked body."""
        if piece:
            try:
                self._parser.feed_data(piece)
            except httptools.HttpParserError as exc:
                if self._error is not None:
                    raise self._error from None
                raise _classify(exc) from None

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
            self.phase = IDLE

    def _check_http09(self, data: bytes) -> None:
        # "GET /" + CRLF is a whole HTTP/0.9 request: its client waits for an answer rather than
        # sending headers, so refuse it as soon as the line ends, not at the header timeout.
        if 10 not in data:  # the line goes on: keep its start, until it is too long to be one
            # (a line dribbled a byte at a time is then not copied again at every read)
            if len(self._line_tail) <= self._max_line + 32:
                self._line_tail += data
            return
        text = self._line_tail + data
        lines = text.split(b"\n")
        self._line_tail = lines[-1][-(self._max_line + 32) :]
        if len(lines) > 1 and self._url:
            # any line this read completed: a later line may have ended in the same read
            request_line = self._parser.get_method() + b" " + self._url
            for line in lines[:-1]:
                if line.rstrip(b"\r") == request_line:
                    self._fail(400, "HTTP/0.9 request line")

    def _fail(self, status: int, detail: str) -> None:
        # Raised inside a callback, the exception stops llhttp and feed() re-raises this one;
        # raised from feed() itself, it simply propagates.
        if self.phase == HEAD and self._url and self._parser.get_http_version() == "0.9":
            # the HTTP/0.9 request line came first in byte order: a field check due in the same
            # read (417, 413, 431) must not answer for it, or the status depends on the split
            status, detail = 400, "HTTP/0.9 request line"
        self._error = ProtocolError(status, detail)
        raise self._error

    # --- llhttp callbacks ---------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        if self.phase != HEAD:
            # The message begins at its first URL byte: per-message fields start here, once per
            # request. (Not in llhttp's on_message_begin: one Python callback fewer per request;
            # nor in a helper method: one call fewer, ~1% per request on CPython 3.11 to 3.13,
            # bench/README.md. ``on_url(b"")`` just begins a message.)
            self.phase = HEAD
            self.begun += 1
            self._url = url
            self._headers: list[tuple[bytes, bytes]] = []
            self._head_size = 0
            self._has_host = False
            self._line_tail = b""
            if self._special:
                # only requests with framing/connection headers dirtied these
                self._special = False
                self._content_length = 0
                self._codings: list[bytes] | None = None
                self._has_connection = False
                self._trailer_count = 0
                self._chunk_ext_left = self._max_ext
            if self._body_size:  # (not _body: with stream_bodies it stays None)
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
        if self.phase == BODY:
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
        special = _SPECIAL_BY_LENGTH.get(len(name))
        if special is None:
            return
        lname, title, kind = special
        if (
            name != title
            and name != lname
            and ((name[0] | 32) != lname[0] or name.lower() != lname)  # (a cheap first filter)
        ):
            return
        if kind == _HOST:
            if self._has_host:
                self._fail(400, "more than one Host header")
            self._has_host = True
            if value != self._host:  # most connections send one Host value throughout
                if value not in _valid_hosts:
                    self._check_host(value)
                self._host = value
        else:
            self._special = True
            self._on_special_header(kind, value)

    def _check_host(self, value: bytes) -> None:
        # RFC 9112 §3.2: a Host whose value is not uri-host [":" port] is answered with 400
        if not _is_host(value, _HOST_VALUE):
            self._fail(400, "invalid Host header")
        if len(_valid_hosts) >= 256:
            _valid_hosts.clear()  # a bound on what clients can make us remember
        _valid_hosts.add(value)

    def _on_special_header(self, kind: int, value: bytes) -> None:
        if kind == _CONTENT_LENGTH:
            # llhttp has checked the digits and rejected a second, different value
            self._content_length = int(value)
            if self._content_length > self._max_body:
                self._fail(413, "request body larger than max_body_size")
        elif kind == _TRANSFER_ENCODING:
            if self._codings is None:
                self._codings = []
            # empty list elements (", chunked") are allowed and ignored (RFC 9110 §5.6.1)
            codings = [c for c in (e.strip(b" \t").lower() for e in value.split(b",")) if c]
            if not codings:
                self._fail(400, "empty Transfer-Encoding")
            self._codings += codings
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
        if 35 in url:  # b"#": a fragment is never sent in a request target (RFC 9112 §3.2)
            self._fail(400, "fragment in request target")
        if url[0] == 47:  # "/": origin-form, by far the commonest
            if 63 in url:  # b"?" as an int: one memchr (see request.decode_path)
                path, _, query = url.partition(b"?")
            else:
                path, query = url, b""
        else:
            path, query = self._other_form(url)
        method = parser.get_method()
        if method == b"GET":
            # most requests: comparing llhttp's fresh bytes costs ~400 instructions less than
            # hashing them for _METHODS
            name = "GET"
        else:
            name = _METHODS.get(method) or method.decode("ascii")
            if method == b"CONNECT":
                keep_alive = self._check_connect()
        # Request(...), in two steps: calling a class runs __init__ through type.__call__ in a
        # fresh interpreter frame; calling the method directly is inlined (~380 instructions
        # fewer per request, 1.0%, on CPython 3.11; 1.5% on 3.13; bench/README.md). Same object,
        # same __init__.
        # (A compiled Request, a native class, refuses object.__new__: there the plain call is
        # the fast one.)
        if _TWO_STEP_NEW:
            request = _new_object(Request)
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
        else:
            request = Request(
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
        self._request = request
        self.phase = BODY
        if self.stream_bodies:
            self.events.append(request)

    def _other_form(self, url: bytes) -> tuple[bytes, bytes]:
        """Path and query of a target not in origin-form (RFC 9112 §3.2.2-3.2.4)."""
        method = self._parser.get_method()
        if url == b"*":
            if method != b"OPTIONS":
                self._fail(400, "asterisk-form target for a method other than OPTIONS")
            return url, b""
        if method == b"CONNECT":
            return url, b""  # authority-form, checked by _check_connect
        return split_absolute_form(url)

    def _check_connect(self) -> bool:
        # llhttp hands everything after a CONNECT head over as tunnel data. A CONNECT has no
        # content (RFC 9110 §9.3.6), and we tunnel nothing: the handler answers it (501 unless
        # it sets another status, see Response), then the connection closes.
        if not _is_host(self._url, _AUTHORITY):
            self._fail(400, "CONNECT target is not host:port")
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
        if codings and not self._in_pieces:
            # fed whole: llhttp must not read this chunked body before _feed_chunked follows it
            self._again = True
            raise _FeedAgain
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
        self.phase = IDLE


# RFC 3986 §3.2.2: host = IP-literal / IPv4address / reg-name (IPv4address is a reg-name too)
_REG_NAME = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
_IP_LITERAL = rb"\[(?:([0-9A-Fa-f:.]+)|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
_URI_HOST = rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb")"
_HOST_VALUE: Final = re.compile(_URI_HOST + rb"(?::[0-9]*)?")  # the Host field (RFC 9112 §3.2)
_AUTHORITY: Final = re.compile(_URI_HOST + rb":[0-9]+")  # authority-form, CONNECT's target (§3.2.3)
# Host values seen valid; most clients send one of a handful, and a set lookup is cheaper than
# the match (bounded: see _check_host)
_valid_hosts: Final[set[bytes]] = set()


def _is_host(value: bytes, grammar: re.Pattern[bytes]) -> bool:
    match = grammar.fullmatch(value)
    if match is None:
        return False
    if match.group(1) is not None:  # [IPv6address]
        try:
            ipaddress.IPv6Address(match.group(1).decode("ascii"))
        except ValueError:
            return False
    return True


# a chunk-size line without extensions, as nearly every chunked body has (16 digits at most: a
# longer size overflows, or has leading zeros that count against max_chunk_extensions)
_PLAIN_CHUNK_LINE = re.compile(rb"[0-9A-Fa-f]{1,16}\r\n")
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]*")
_ZEROS = re.compile(rb"0*")


class _FeedAgain(Exception):
    """Raised in a callback to stop llhttp: the read is parsed again in pieces."""


# (each run of whitespace is tried once, from its start: linear in a long run of spaces)
_TRAILING_OWS = re.compile(rb"(?<![ \t])[ \t]+(?=\r\n)")
# a Transfer-Encoding field line up to its last coding, then empty list elements to its end
# (or to the end of what has come of the head)
_TE_TRAILING_EMPTY_ELEMENTS = re.compile(
    rb"(?im)^(transfer-encoding:[^\r\n]*?[^ \t,\r\n])([ \t]*,[ \t,]*)(?=\r\n|\Z)"
)
_TE_REFUSED = "Invalid `Transfer-Encoding` header value"  # llhttp's message


def _spaces(match: re.Match[bytes]) -> bytes:
    return b" " * len(match.group())


def _keep_codings(match: re.Match[bytes]) -> bytes:
    """The field line of a _TE_TRAILING_EMPTY_ELEMENTS match with its empty elements as spaces."""
    return match.group(1) + b" " * len(match.group(2))


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
# the request line up to its target: method, then the spaces llhttp allows
_TARGET_START = re.compile(rb"[^ \r\n]+ +")


def _classify(exc: Exception) -> ProtocolError:
    """Turn an llhttp error into the status a client should see."""
    message = str(exc) or "malformed request"
    if message == "Invalid HTTP version":
        return ProtocolError(505, message)  # well-formed "HTTP/x.y", not 1.0/1.1
    return ProtocolError(400, message)


def _unknown_method_status(head: bytes, max_head: int) -> int | None:
    """The status for a head whose method llhttp does not know; None until its name ends.

    A syntactically valid method (a token followed by a space) llhttp does not know is 501
    (RFC 9110 §9.1); anything else there is 400. A name still going on past ``max_header_size``
    is 431, as any head is.
    """
    end = _TOKEN.match(head).end()  # type: ignore[union-attr]  # matches the empty string
    if end < len(head) and end < max_head:
        return 501 if end and head[end] == 32 else 400
    if len(head) > max_head:
        return 431
    return None
