"""The server side of one HTTP/2 connection (RFC 9113), sans-IO.

:meth:`H2Connection.receive` takes bytes from the client and returns events
(:mod:`peregrine.http2.events`); the ``send_*`` methods queue response frames;
:meth:`H2Connection.data_to_send` hands out the bytes to write. No I/O, no clock of its own
(the rate limits read the ``clock`` given, ``time.monotonic`` by default).

What it enforces, and how it answers (RFC 9113 §5.4):

- stream errors (RST_STREAM, the connection goes on): malformed requests (§8.1.1) with
  PROTOCOL_ERROR, streams beyond SETTINGS_MAX_CONCURRENT_STREAMS with REFUSED_STREAM, frames on a
  half-closed stream with STREAM_CLOSED, a stream window overflow with FLOW_CONTROL_ERROR;
- connection errors (GOAWAY, then close): the frame errors of :mod:`.frames`, frames on idle
  streams, CONTINUATION out of place, HPACK errors (COMPRESSION_ERROR), connection window
  overflow (FLOW_CONTROL_ERROR);
- floods, answered with GOAWAY(ENHANCE_YOUR_CALM): streams reset (by the client, or refused
  by us) faster than ``max_resets`` per ``flood_window`` seconds (rapid reset, CVE-2023-44487);
  SETTINGS, PING, PRIORITY and empty DATA frames faster than ``max_control_frames`` per window;
  header blocks longer than ``max_header_block`` bytes or ``max_continuations`` frames, refused
  before they are decoded (the 2024 CONTINUATION floods). HPACK bombs are bounded by the
  decoder's table and header-list limits.

Flow control, receiving: the client may send what our windows allow; the caller returns window
with :meth:`H2Connection.acknowledge_data` as it consumes bytes. Sending: response bytes beyond
the client's windows wait in the stream's queue; :class:`WindowOpened` says when the queue has
drained, so a writer that waits for it keeps at most one write queued per stream.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable

from . import frames as f
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    StreamReset,
    WindowOpened,
)
from .frames import FrameError, FrameReader
from .hpack import Decoder, Encoder, HPACKError

# stream states (RFC 9113 §5.1) the server side sees; idle and closed streams have no object
OPEN, HALF_CLOSED_REMOTE, HALF_CLOSED_LOCAL = 1, 2, 3

_PSEUDO_ORDER = (b":method", b":scheme", b":authority", b":path")
# RFC 9113 §8.2.2: fields that only mean something to one HTTP/1.1 connection
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-z]")  # §8.2.1: lower-case tokens only
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
_STATUS = {code: b"%d" % code for code in range(100, 600)}
_CLOSED_MEMORY = 256
_SELF_DEPENDENT = 0x100  # not a wire flag: marks a HEADERS whose priority names its own stream  # closed stream ids remembered, to tell "closed" from "never opened"


class Limits:
    """The knobs of one connection; every one has a safe default."""

    __slots__ = (
        "max_concurrent_streams",
        "stream_window",
        "connection_window",
        "max_frame_size",
        "header_table_size",
        "max_header_list_size",
        "max_header_count",
        "max_header_block",
        "max_continuations",
        "max_resets",
        "max_control_frames",
        "flood_window",
        "lingering",
    )

    def __init__(
        self,
        max_concurrent_streams: int = 100,
        stream_window: int = 65_535,
        connection_window: int = 1 << 20,
        max_frame_size: int = f.MIN_MAX_FRAME_SIZE,
        header_table_size: int = 4096,
        max_header_list_size: int = 32 * 1024,
        max_header_count: int = 100,
        max_header_block: int | None = None,
        max_continuations: int = 32,
        max_resets: int = 200,
        max_control_frames: int = 1000,
        flood_window: float = 10.0,
    ) -> None:
        #: SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (REFUSED_STREAM beyond)
        self.max_concurrent_streams = max_concurrent_streams
        #: SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may send ahead
        self.stream_window = stream_window
        #: the connection's receive window (raised from 65,535 at the start)
        self.connection_window = connection_window
        #: SETTINGS_MAX_FRAME_SIZE we accept
        self.max_frame_size = max_frame_size
        #: SETTINGS_HEADER_TABLE_SIZE: the HPACK table the client's encoder may use
        self.header_table_size = header_table_size
        #: SETTINGS_MAX_HEADER_LIST_SIZE: decoded header list (name + value + 32 per field)
        self.max_header_list_size = max_header_list_size
        #: most fields in a request (then 431)
        self.max_header_count = max_header_count
        #: largest compressed header block (HEADERS + CONTINUATION), checked before decoding
        self.max_header_block = (
            max_header_block if max_header_block is not None else 2 * max_header_list_size + 1024
        )
        #: most CONTINUATION frames in one header block
        self.max_continuations = max_continuations
        #: stream resets (client RST_STREAM on a live stream, or REFUSED_STREAM) per window
        self.max_resets = max_resets
        #: SETTINGS, PING, PRIORITY and empty DATA frames per window
        self.max_control_frames = max_control_frames
        #: the window of the two rate limits above, in seconds
        self.flood_window = flood_window
        #: not a setting but the connection's count of streams ended early (reset) whose
        #: application still runs, kept by the caller: they keep their place among
        #: max_concurrent_streams until it returns, so resetting streams cannot run more
        #: applications at once than the limit (rapid reset). Here rather than on H2Connection,
        #: whose 30th instance attribute would overflow CPython's shared key table and make
        #: every attribute access slower (+2.7k instructions per request, bench/hotpath_h2.py);
        #: each connection has its own Limits (aio/h2connection.py's limits_from)
        self.lingering = 0


class _Stream:
    __slots__ = (
        "id",
        "state",
        "send_window",
        "recv_window",
        "recv_unacked",
        "content_length",
        "received",
        "queue",
        "queued",
        "end_queued",
        "headers_sent",
        "trailers",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.state = OPEN
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_unacked = 0
        self.content_length = -1
        self.received = 0
        # response bytes waiting for window; made on first need (most responses fit the window)
        self.queue: deque[bytes] | None = None
        self.queued = 0
        self.end_queued = False  # END_STREAM goes out once the queue is empty
        self.headers_sent = False
        #: trailer fields that end the stream once the queue is empty (instead of empty DATA)
        self.trailers: list[tuple[bytes, bytes]] | None = None


class _ConnectionError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _RateCounter:
    """Counts events in fixed windows of ``window`` seconds; ``hit`` is False past ``limit``."""

    __slots__ = ("limit", "window", "clock", "count", "started")

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.count = 0
        self.started = clock()

    def hit(self) -> bool:
        self.count += 1
        if self.count <= self.limit:
            return True
        now = self.clock()
        if now - self.started >= self.window:
            self.started = now
            self.count = 1
            return True
        return False


class H2Connection:
    """The server end of one HTTP/2 connection: bytes in, events and bytes out."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] | None = None):
        limits = self.limits = limits or Limits()
        clock = clock or time.monotonic
        self.reader = FrameReader(limits.max_frame_size)
        self.decoder = Decoder(limits.header_table_size, limits.max_header_list_size)
        self.encoder = Encoder()
        self.streams: dict[int, _Stream] = {}
        #: ids of recently closed streams -> True when we reset them (their frames are dropped)
        self.closed_streams: dict[int, bool] = {}
        self._closed_order: deque[int] = deque()
        self.highest_stream_id = 0
        self.peer_max_frame_size = f.MIN_MAX_FRAME_SIZE
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.send_window = f.DEFAULT_WINDOW  # the connection's, towards the client
        self.recv_window = limits.connection_window
        self.recv_unacked = 0
        #: True once a GOAWAY went out (graceful or not): no new streams are taken
        self.goaway_sent = False
        #: the last stream id our GOAWAY promised to answer (later ones are ignored)
        self.goaway_last_stream = f.MAX_WINDOW
        #: True after a connection error or a received GOAWAY with an error: stop everything
        self.closed = False
        self._preface_pending = f.PREFACE
        self._settings_seen = False
        # a header block being received: stream id, flags of its HEADERS, pieces, size
        self._block_stream = 0
        self._block_flags = 0
        self._block: list[bytes] = []
        self._block_size = 0
        self._out: list[bytes] = []
        self._blocked: dict[int, _Stream] = {}  # streams with queued bytes, in arrival order
        self._resets = _RateCounter(limits.max_resets, limits.flood_window, clock)
        self._controls = _RateCounter(limits.max_control_frames, limits.flood_window, clock)
        self._valid_fields: dict[tuple[bytes, bytes], bool] = {}
        # header block -> the request it made, valid while the HPACK table is at _cache_version
        self._request_cache: dict[bytes, RequestReceived] = {}
        self._cache_version = 0

    # --- starting ---------------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our SETTINGS (and the connection window raise): the server's preface."""
        limits = self.limits
        settings = [
            (f.SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
            (f.SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
            (f.SETTINGS_ENABLE_PUSH, 0),
        ]
        if limits.stream_window != f.DEFAULT_WINDOW:
            settings.append((f.SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window))
        if limits.max_frame_size != f.MIN_MAX_FRAME_SIZE:
            settings.append((f.SETTINGS_MAX_FRAME_SIZE, limits.max_frame_size))
        if limits.header_table_size != 4096:
            settings.append((f.SETTINGS_HEADER_TABLE_SIZE, limits.header_table_size))
        self._out.append(f.settings_frame(settings))
        if limits.connection_window > f.DEFAULT_WINDOW:
            self._out.append(f.window_update_frame(0, limits.connection_window - f.DEFAULT_WINDOW))

    # --- output -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the client since the last call."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    # --- input --------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Process bytes from the client; the events they complete, in order."""
        if self.closed:
            return []
        events: list[Event] = []
        if self._preface_pending:
            data = self._check_preface(data, events)
            if not data:
                return events
        try:
            frames = self.reader.feed(data)
        except FrameError as exc:
            self._connection_error(exc.code, exc.detail, events)
            return events
        for frame in frames:
            try:
                self._handle_frame(frame, events)
            except FrameError as exc:
                if exc.stream_id:
                    self._stream_error(exc.stream_id, exc.code, events)
                else:
                    self._connection_error(exc.code, exc.detail, events)
                    break
            except _ConnectionError as exc:
                self._connection_error(exc.code, exc.detail, events)
                break
            except HPACKError as exc:
                self._connection_error(f.COMPRESSION_ERROR, str(exc), events)
                break
        return events

    def _check_preface(self, data: bytes, events: list[Event]) -> bytes:
        pending = self._preface_pending
        head = data[: len(pending)]
        if not pending.startswith(head):
            self._connection_error(f.PROTOCOL_ERROR, "invalid connection preface", events)
            return b""
        self._preface_pending = pending[len(head) :]
        return data[len(head) :]

    def _handle_frame(self, frame: f.Frame, events: list[Event]) -> None:
        kind, flags, stream_id, payload = frame
        if self._block_stream:
            if kind != f.CONTINUATION or stream_id != self._block_stream:
                raise _ConnectionError(f.PROTOCOL_ERROR, "header block interrupted")
            self._continuation(flags, payload, events)
            return
        if not self._settings_seen:
            if kind != f.SETTINGS or flags & f.FLAG_ACK:
                raise _ConnectionError(f.PROTOCOL_ERROR, "the preface must end with SETTINGS")
            self._settings_seen = True
        if kind == f.HEADERS:
            self._headers(flags, stream_id, payload, events)
        elif kind == f.DATA:
            self._data(flags, stream_id, payload, events)
        elif kind == f.WINDOW_UPDATE:
            self._window_update(stream_id, payload, events)
        elif kind == f.RST_STREAM:
            self._rst_stream(stream_id, payload, events)
        elif kind == f.SETTINGS:
            self._settings(flags, stream_id, payload, events)
        elif kind == f.PING:
            f.check_ping(payload, stream_id)
            if not flags & f.FLAG_ACK:
                self._count_control()
                self._out.append(f.ping_ack_frame(payload))
        elif kind == f.PRIORITY:
            if not stream_id:
                raise _ConnectionError(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise FrameError(f.FRAME_SIZE_ERROR, "PRIORITY payload not 5 bytes", stream_id)
            self._count_control()
            f.parse_priority_fields(payload, stream_id)
        elif kind == f.GOAWAY:
            last, code, debug = f.parse_goaway(payload, stream_id)
            events.append(
                ConnectionTerminated(code, last, True, debug.decode("latin-1", "replace"))
            )
        elif kind == f.CONTINUATION:
            raise _ConnectionError(f.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        elif kind == f.PUSH_PROMISE:
            raise _ConnectionError(f.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # other types are extensions we do not know: ignored (RFC 9113 §5.5)

    # --- HEADERS and CONTINUATION --------------------------------------------------------------

    def _headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id or not stream_id & 1:
            raise _ConnectionError(f.PROTOCOL_ERROR, "HEADERS on an even or zero stream id")
        if flags & f.FLAG_PADDED:
            payload = f.strip_padding(flags, payload, stream_id)
        if flags & f.FLAG_PRIORITY:
            if len(payload) < 5:
                raise _ConnectionError(f.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            try:
                f.parse_priority_fields(payload[:5], stream_id)
            except FrameError:
                # a stream error, but only once the block is decoded: the table must stay in step
                flags |= _SELF_DEPENDENT
            payload = payload[5:]
        if flags & f.FLAG_END_HEADERS:
            self._header_block(stream_id, flags, payload, events)
            return
        if len(payload) > self.limits.max_header_block:
            raise _ConnectionError(f.ENHANCE_YOUR_CALM, "header block too large")
        self._block_stream = stream_id
        self._block_flags = flags
        self._block = [payload]
        self._block_size = len(payload)

    def _continuation(self, flags: int, payload: bytes, events: list[Event]) -> None:
        self._block.append(payload)
        self._block_size += len(payload)
        if self._block_size > self.limits.max_header_block:
            raise _ConnectionError(f.ENHANCE_YOUR_CALM, "header block too large")
        if len(self._block) > self.limits.max_continuations + 1:
            raise _ConnectionError(f.ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
        if flags & f.FLAG_END_HEADERS:
            stream_id, block = self._block_stream, b"".join(self._block)
            self._block_stream = 0
            self._block = []
            self._header_block(stream_id, self._block_flags, block, events)

    def _header_block(self, stream_id: int, flags: int, block: bytes, events: list[Event]) -> None:
        end_stream = bool(flags & f.FLAG_END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:
            fields, _ = self.decoder.decode(block)
            if flags & _SELF_DEPENDENT:
                raise FrameError(f.PROTOCOL_ERROR, "stream depends on itself", stream_id)
            self._trailers(stream, fields, end_stream, events)
            return
        # A block that only refers to table entries decodes to the same request as long as the
        # table is unchanged (a client repeating a request: h2load, polling, API calls): it is
        # decoded and checked once. Anything else is decoded first, whatever becomes of the
        # stream: the HPACK table must stay in step with the client's.
        table = self.decoder.table
        cached = self._request_cache.get(block)
        request: RequestReceived | None
        if (
            cached is not None
            and cached.end_stream == end_stream
            and self._cache_version == (table.version)
        ):
            request = RequestReceived(
                stream_id,
                cached.method,
                cached.scheme,
                cached.authority,
                cached.path,
                list(cached.headers),
                end_stream,
                cached.content_length,
                cached.error,
            )
        else:
            version = table.version
            fields, complete = self.decoder.decode(block)
            request = self._request(stream_id, fields, complete, end_stream)
            if table.version != version or self._cache_version != version:
                self._request_cache.clear()
                self._cache_version = table.version
            elif request is not None and len(self._request_cache) < 64:
                self._request_cache[block] = request
                request = RequestReceived(
                    stream_id,
                    request.method,
                    request.scheme,
                    request.authority,
                    request.path,
                    list(request.headers),
                    end_stream,
                    request.content_length,
                    request.error,
                )
        if flags & _SELF_DEPENDENT:
            request = None  # reset below, as a malformed request is
        if stream_id <= self.highest_stream_id:
            if stream_id in self.closed_streams:
                if self.closed_streams[stream_id]:
                    return  # we reset it: the client may not have heard yet
                raise _ConnectionError(f.STREAM_CLOSED, "HEADERS on a closed stream")
            if stream_id > self.goaway_last_stream:
                return
            raise _ConnectionError(f.PROTOCOL_ERROR, "stream id not above the last one")
        self.highest_stream_id = stream_id
        if self.goaway_sent:
            return  # after GOAWAY, new streams are ignored (§6.8)
        limits = self.limits
        if len(self.streams) + limits.lingering >= limits.max_concurrent_streams:
            self._count_reset()
            self._reset(stream_id, f.REFUSED_STREAM)
            return
        if request is None:
            self._reset(stream_id, f.PROTOCOL_ERROR)
            return
        stream = _Stream(stream_id, self.peer_initial_window, self.limits.stream_window)
        if end_stream:
            stream.state = HALF_CLOSED_REMOTE
        stream.content_length = request.content_length
        self.streams[stream_id] = stream
        events.append(request)

    def _trailers(
        self,
        stream: _Stream,
        fields: list[tuple[bytes, bytes]],
        end_stream: bool,
        events: list[Event],
    ) -> None:
        if stream.state == HALF_CLOSED_REMOTE:
            raise FrameError(f.STREAM_CLOSED, "HEADERS after the end of the stream", stream.id)
        if not end_stream or any(name[:1] == b":" for name, _ in fields):
            raise FrameError(f.PROTOCOL_ERROR, "malformed trailers", stream.id)
        self._end_of_body(stream, events)

    def _request(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]],
        complete: bool,
        end_stream: bool,
    ) -> RequestReceived | None:
        """The request a header block makes, or None when it is malformed (§8.1.1)."""
        if not complete:
            # past the header list limit: nothing was kept, the answer is 431 whatever it was
            return RequestReceived(stream_id, b"", b"", b"", b"", [], end_stream, -1, 431)
        method = scheme = authority = path = b""
        headers: list[tuple[bytes, bytes]] = []
        content_length = -1
        pseudo_done = False
        seen_pseudo: set[bytes] = set()
        cookies: list[bytes] = []
        host = b""
        valid = self._valid_fields
        for field in fields:
            name, value = field
            if name[:1] == b":":
                if pseudo_done or name in seen_pseudo:
                    return None  # misplaced or repeated pseudo-header
                seen_pseudo.add(name)
                if _BAD_VALUE.search(value):
                    return None
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":authority":
                    authority = value
                else:
                    return None  # unknown (or response) pseudo-header
                continue
            pseudo_done = True
            if field not in valid:
                if _BAD_NAME.search(name) or not name or _BAD_VALUE.search(value):
                    return None
                if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
                    return None
                if len(valid) < 4096:
                    valid[field] = True
            if name == b"content-length":
                if not value.isdigit() or (content_length >= 0 and int(value) != content_length):
                    return None
                content_length = int(value)
            elif name == b"cookie":
                cookies.append(value)
                continue
            elif name == b"host":
                host = value
            headers.append(field)
        if not method:
            return None
        if method == b"CONNECT":
            if scheme or path or not authority:
                return None
        elif not scheme or not path or (path[:1] != b"/" and path != b"*"):
            return None
        if end_stream and content_length > 0:
            return None
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        if authority and not host:
            headers.insert(0, (b"host", authority))
        error = 0
        if len(headers) > self.limits.max_header_count:
            error = 431
        elif method == b"CONNECT":
            error = 405
        return RequestReceived(
            stream_id, method, scheme, authority, path, headers, end_stream, content_length, error
        )

    # --- DATA -----------------------------------------------------------------------------------

    def _data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            raise _ConnectionError(f.PROTOCOL_ERROR, "DATA on stream 0")
        flow_length = len(payload)
        self.recv_window -= flow_length
        if self.recv_window < 0:
            raise _ConnectionError(f.FLOW_CONTROL_ERROR, "connection window exceeded")
        stream = self.streams.get(stream_id)
        if stream is None or stream.state == HALF_CLOSED_REMOTE:
            self.acknowledge_data(0, flow_length)  # dropped: the connection window comes back
            if stream is not None:
                raise FrameError(f.STREAM_CLOSED, "DATA after the end of the stream", stream_id)
            if stream_id > self.highest_stream_id:
                raise _ConnectionError(f.PROTOCOL_ERROR, "DATA on an idle stream")
            if self.closed_streams.get(stream_id) or stream_id > self.goaway_last_stream:
                return  # reset by us, or ignored after our GOAWAY: dropped quietly
            raise _ConnectionError(f.STREAM_CLOSED, "DATA on a closed stream")
        stream.recv_window -= flow_length
        if stream.recv_window < 0:
            raise _ConnectionError(f.FLOW_CONTROL_ERROR, "stream window exceeded")
        data = f.strip_padding(flags, payload, stream_id) if flags & f.FLAG_PADDED else payload
        end_stream = bool(flags & f.FLAG_END_STREAM)
        if not payload and not end_stream:
            self._count_control()
        if len(data) != flow_length:
            self.acknowledge_data(stream_id, flow_length - len(data))  # padding: nobody reads it
            flow_length = len(data)
        stream.received += len(data)
        if stream.content_length >= 0 and (
            stream.received > stream.content_length
            or (end_stream and stream.received != stream.content_length)
        ):
            self.acknowledge_data(0, flow_length)
            raise FrameError(f.PROTOCOL_ERROR, "body length differs from content-length", stream_id)
        if data or end_stream:
            events.append(DataReceived(stream_id, data, flow_length, end_stream))
        if end_stream:
            self._remote_ended(stream)

    def _end_of_body(self, stream: _Stream, events: list[Event]) -> None:
        if stream.content_length >= 0 and stream.received != stream.content_length:
            raise FrameError(f.PROTOCOL_ERROR, "body length differs from content-length", stream.id)
        events.append(DataReceived(stream.id, b"", 0, True))
        self._remote_ended(stream)

    def _remote_ended(self, stream: _Stream) -> None:
        if stream.state == HALF_CLOSED_LOCAL:
            self._forget(stream.id, reset=False)
        else:
            stream.state = HALF_CLOSED_REMOTE

    def acknowledge_data(self, stream_id: int, length: int) -> None:
        """``length`` received bytes of ``stream_id`` are consumed: give the window back.

        WINDOW_UPDATE frames go out once half a window is consumed, not for every frame.
        """
        if length <= 0 or self.closed:
            return
        self.recv_unacked += length
        if self.recv_unacked >= self.limits.connection_window // 2:
            self._out.append(f.window_update_frame(0, self.recv_unacked))
            self.recv_window += self.recv_unacked
            self.recv_unacked = 0
        stream = self.streams.get(stream_id)
        if stream is not None and stream.state == OPEN:
            stream.recv_unacked += length
            if stream.recv_unacked >= self.limits.stream_window // 2:
                self._out.append(f.window_update_frame(stream_id, stream.recv_unacked))
                stream.recv_window += stream.recv_unacked
                stream.recv_unacked = 0

    # --- control frames -------------------------------------------------------------------------

    def _window_update(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        increment = f.parse_window_update(payload, stream_id)
        if not stream_id:
            self.send_window += increment
            if self.send_window > f.MAX_WINDOW:
                raise _ConnectionError(f.FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._flush_blocked(events)
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_stream_id:
                raise _ConnectionError(f.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # closed: a late update, harmless
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            raise FrameError(f.FLOW_CONTROL_ERROR, "stream window above 2^31-1", stream_id)
        if stream.queued or stream.end_queued:
            self._flush_stream(stream, events)

    def _rst_stream(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        code = f.parse_rst_stream(payload, stream_id)
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_stream_id:
                raise _ConnectionError(f.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            return
        self._forget(stream_id, reset=True)
        events.append(StreamReset(stream_id, code, True))
        self._count_reset()

    def _settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        pairs = f.parse_settings(flags, payload, stream_id)
        if flags & f.FLAG_ACK:
            return
        self._count_control()
        for identifier, value in pairs:
            if identifier == f.SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        raise _ConnectionError(f.FLOW_CONTROL_ERROR, "stream window above 2^31-1")
            elif identifier == f.SETTINGS_MAX_FRAME_SIZE:
                self.peer_max_frame_size = value
            elif identifier == f.SETTINGS_HEADER_TABLE_SIZE:
                self.encoder.set_max_table_size(min(value, 4096))
        self._out.append(f.SETTINGS_ACK)
        self._flush_blocked(events)

    # --- floods -----------------------------------------------------------------------------------

    def _count_reset(self) -> None:
        if not self._resets.hit():
            raise _ConnectionError(f.ENHANCE_YOUR_CALM, "too many stream resets")

    def _count_control(self) -> None:
        if not self._controls.hit():
            raise _ConnectionError(f.ENHANCE_YOUR_CALM, "too many control frames")

    # --- sending --------------------------------------------------------------------------------

    def send_headers(
        self,
        stream_id: int,
        status: int,
        fields: list[tuple[bytes, bytes]],
        end_stream: bool = False,
    ) -> None:
        """Queue the response head of ``stream_id`` (``fields``: lower-case names, bytes; the
        list is the caller's to give away: ``:status`` goes in front of it)."""
        stream = self.streams.get(stream_id)
        if stream is None or self.closed:
            return  # reset meanwhile: nothing to answer
        fields.insert(0, (b":status", _STATUS[status]))
        block = self.encoder.encode(fields)
        if len(block) <= self.peer_max_frame_size:
            flags = f.FLAG_END_HEADERS | f.FLAG_END_STREAM if end_stream else f.FLAG_END_HEADERS
            self._out += (f.frame_header(len(block), f.HEADERS, flags, stream_id), block)
        else:
            self._out += f.headers_frames(stream_id, block, end_stream, self.peer_max_frame_size)
        stream.headers_sent = True
        if end_stream:
            self._local_ended(stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue body bytes; what the windows do not allow yet waits in the stream's queue."""
        stream = self.streams.get(stream_id)
        if stream is None or self.closed:
            return
        if not stream.queued:
            window = min(stream.send_window, self.send_window)
            size = len(data)
            if size <= window and size <= self.peer_max_frame_size:
                # the common case: one frame, sent now
                stream.send_window -= size
                self.send_window -= size
                # header and body apart: data_to_send joins them, one copy instead of two
                self._out += (
                    f.frame_header(size, f.DATA, f.FLAG_END_STREAM if end_stream else 0, stream_id),
                    data,
                )
                if end_stream:
                    self._local_ended(stream)
                return
        if data:
            if stream.queue is None:
                stream.queue = deque()
            stream.queue.append(data)
            stream.queued += len(data)
        stream.end_queued = end_stream
        self._blocked[stream_id] = stream
        self._flush_stream(stream, [])

    def send_trailers(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> None:
        """End the stream with a trailing HEADERS frame of ``fields`` (lower-case names, bytes),
        after the body bytes still waiting for window."""
        stream = self.streams.get(stream_id)
        if stream is None or self.closed:
            return
        if stream.queued:
            # Encoded when it leaves, not now: HPACK blocks must be decoded in the order they
            # were encoded, and other streams' heads may go out before this one.
            stream.trailers = fields
            stream.end_queued = True
            return
        self._trailing_headers(stream, fields)

    def _trailing_headers(self, stream: _Stream, fields: list[tuple[bytes, bytes]]) -> None:
        block = self.encoder.encode(fields)
        if len(block) <= self.peer_max_frame_size:
            flags = f.FLAG_END_HEADERS | f.FLAG_END_STREAM
            self._out += (f.frame_header(len(block), f.HEADERS, flags, stream.id), block)
        else:
            self._out += f.headers_frames(stream.id, block, True, self.peer_max_frame_size)
        self._local_ended(stream)

    def queued(self, stream_id: int) -> int:
        """Response bytes of ``stream_id`` waiting for window (0 once all went out)."""
        stream = self.streams.get(stream_id)
        return stream.queued if stream is not None else 0

    def _flush_stream(self, stream: _Stream, events: list[Event]) -> None:
        queue = stream.queue
        if queue is None:
            queue = stream.queue = deque()
        max_frame = self.peer_max_frame_size
        out = self._out
        sent_end = False
        while queue:
            window = min(stream.send_window, self.send_window, max_frame)
            if window <= 0:
                return  # stays in _blocked until a WINDOW_UPDATE or SETTINGS
            chunk = queue[0]
            if len(chunk) <= window:
                queue.popleft()
            else:
                queue[0] = chunk[window:]
                chunk = chunk[:window]
            size = len(chunk)
            stream.queued -= size
            stream.send_window -= size
            self.send_window -= size
            sent_end = stream.end_queued and not queue and stream.trailers is None
            out.append(f.data_frame(stream.id, chunk, sent_end))
        self._blocked.pop(stream.id, None)
        events.append(WindowOpened(stream.id))
        if stream.end_queued:
            if stream.trailers is not None:
                self._trailing_headers(stream, stream.trailers)
                return
            if not sent_end:
                out.append(f.data_frame(stream.id, b"", True))  # an empty frame costs no window
            self._local_ended(stream)

    def _flush_blocked(self, events: list[Event]) -> None:
        for stream in list(self._blocked.values()):
            if self.send_window <= 0:
                return
            self._flush_stream(stream, events)

    def _local_ended(self, stream: _Stream) -> None:
        if stream.state == HALF_CLOSED_REMOTE:
            self._forget(stream.id, reset=False)
        else:
            # the response is complete before the request: tell the client to stop sending
            # (RFC 9113 §8.1), then forget the stream
            self._out.append(f.rst_stream_frame(stream.id, f.NO_ERROR))
            self._forget(stream.id, reset=True)

    def reset_stream(self, stream_id: int, code: int = f.CANCEL) -> None:
        """Abandon a stream (e.g. its handler failed after the head went out)."""
        if stream_id in self.streams and not self.closed:
            self._reset(stream_id, code)

    def _reset(self, stream_id: int, code: int) -> None:
        self._out.append(f.rst_stream_frame(stream_id, code))
        self._forget(stream_id, reset=True)

    def _stream_error(self, stream_id: int, code: int, events: list[Event]) -> None:
        known = stream_id in self.streams
        self._reset(stream_id, code)
        if known:
            events.append(StreamReset(stream_id, code, False))

    def _forget(self, stream_id: int, reset: bool) -> None:
        self.streams.pop(stream_id, None)
        self._blocked.pop(stream_id, None)
        closed = self.closed_streams
        if stream_id not in closed:
            self._closed_order.append(stream_id)
            if len(self._closed_order) > _CLOSED_MEMORY:
                closed.pop(self._closed_order.popleft(), None)
        closed[stream_id] = reset

    # --- ending the connection --------------------------------------------------------------------

    def close(self, code: int = f.NO_ERROR, detail: str = "") -> None:
        """Send GOAWAY naming the last stream we will answer; later streams are ignored."""
        if self.goaway_sent and code == f.NO_ERROR:
            return
        if not self.goaway_sent:
            self.goaway_last_stream = self.highest_stream_id
        self.goaway_sent = True
        self._out.append(
            f.goaway_frame(self.goaway_last_stream, code, detail.encode("latin-1", "replace"))
        )

    def _connection_error(self, code: int, detail: str, events: list[Event]) -> None:
        self.close(code, detail)
        self.closed = True
        self._block_stream = 0
        self._block = []
        events.append(ConnectionTerminated(code, self.highest_stream_id, False, detail))
