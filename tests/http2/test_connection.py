"""The sans-IO HTTP/2 server connection, driven with hand-built frames.

Every malformed case names the answer RFC 9113 gives it: a stream error (RST_STREAM, the
connection goes on) or a connection error (GOAWAY with the code). Floods end in
GOAWAY(ENHANCE_YOUR_CALM) with what was buffered bounded.
"""

from __future__ import annotations

import pytest

from peregrine.http2 import frames as f
from peregrine.http2.connection import H2Connection, Limits
from peregrine.http2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    StreamReset,
    WindowOpened,
)
from peregrine.http2.frames import FrameReader
from peregrine.http2.hpack import Decoder, encode_integer


def raw(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return f.frame_header(len(payload), kind, flags, stream_id) + payload


def literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing, new name, no Huffman (RFC 7541 §6.2.2)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


GET = b"\x82\x86\x84" + literal(b":authority", b"example")  # GET http / example
POST = b"\x83\x86\x84" + literal(b":authority", b"example")
EH, ES = f.FLAG_END_HEADERS, f.FLAG_END_STREAM


def headers(stream_id: int, block: bytes = GET, end_stream: bool = True) -> bytes:
    return raw(f.HEADERS, EH | (ES if end_stream else 0), stream_id, block)


def data(stream_id: int, payload: bytes, end_stream: bool = False) -> bytes:
    return raw(f.DATA, ES if end_stream else 0, stream_id, payload)


def settings(*pairs: tuple[int, int]) -> bytes:
    return f.settings_frame(list(pairs))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def connect(limits: Limits | None = None, clock: Clock | None = None) -> H2Connection:
    """A connection past the preface and the SETTINGS exchange, its output drained."""
    conn = H2Connection(limits, clock)
    conn.initiate()
    assert conn.receive(f.PREFACE + settings()) == []
    sent = FrameReader(f.MAX_MAX_FRAME_SIZE).feed(conn.data_to_send())
    assert [k for k, *_ in sent] == [f.SETTINGS, f.WINDOW_UPDATE, f.SETTINGS]  # ours, +win, ACK
    return conn


def sent(conn: H2Connection) -> list[f.Frame]:
    return FrameReader(f.MAX_MAX_FRAME_SIZE).feed(conn.data_to_send())


def goaway(frames: list[f.Frame]) -> tuple[int, int] | None:
    """``(last stream id, error code)`` of the GOAWAY among ``frames``."""
    for kind, _, stream_id, payload in frames:
        if kind == f.GOAWAY:
            last, code, _ = f.parse_goaway(payload, stream_id)
            return last, code
    return None


def resets(frames: list[f.Frame]) -> dict[int, int]:
    return {sid: f.parse_rst_stream(p, sid) for k, _, sid, p in frames if k == f.RST_STREAM}


# --- a plain exchange -----------------------------------------------------------------------------


def test_get_request_and_response() -> None:
    conn = connect()
    events = conn.receive(headers(1))
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    request = events[0]
    assert (request.method, request.scheme, request.path) == (b"GET", b"http", b"/")
    assert request.headers == [(b"host", b"example")] and request.end_stream
    conn.send_headers(1, 200, [(b"content-type", b"text/plain")])
    conn.send_data(1, b"hello", end_stream=True)
    out = sent(conn)
    assert [(k, fl, sid) for k, fl, sid, _ in out] == [(f.HEADERS, EH, 1), (f.DATA, ES, 1)]
    assert out[1][3] == b"hello"
    assert not conn.streams  # closed both ways: forgotten


def test_post_body_arrives_as_data_events() -> None:
    conn = connect()
    block = POST + literal(b"content-length", b"6")
    events = conn.receive(
        headers(1, block, end_stream=False) + data(1, b"abc") + data(1, b"def", True)
    )
    assert isinstance(events[0], RequestReceived) and events[0].content_length == 6
    assert [(e.data, e.end_stream) for e in events[1:]] == [(b"abc", False), (b"def", True)]  # type: ignore[attr-defined]


def test_cookies_are_joined_and_host_comes_from_authority() -> None:
    conn = connect()
    block = GET + literal(b"cookie", b"a=1") + literal(b"cookie", b"b=2")
    (request,) = conn.receive(headers(1, block))
    assert isinstance(request, RequestReceived)
    assert request.headers == [(b"host", b"example"), (b"cookie", b"a=1; b=2")]


def test_trailers_end_the_body() -> None:
    conn = connect()
    events = conn.receive(
        headers(1, POST, end_stream=False) + data(1, b"x") + headers(1, literal(b"x-t", b"1"))
    )
    assert [type(e) for e in events] == [RequestReceived, DataReceived, DataReceived]
    assert events[2].end_stream  # type: ignore[attr-defined]


def test_ping_is_answered_and_settings_acknowledged() -> None:
    conn = connect()
    conn.receive(raw(f.PING, 0, 0, b"abcdefgh") + settings((f.SETTINGS_MAX_FRAME_SIZE, 20000)))
    out = sent(conn)
    assert (f.PING, f.FLAG_ACK, 0, b"abcdefgh") in out
    assert (f.SETTINGS, f.FLAG_ACK, 0, b"") in out
    assert conn.peer_max_frame_size == 20000


CONVERSATION = (
    f.PREFACE
    + settings((f.SETTINGS_INITIAL_WINDOW_SIZE, 100))
    + headers(1)
    + headers(3, POST + literal(b"content-length", b"4"), end_stream=False)
    + raw(f.HEADERS, 0, 5, GET[:2])
    + raw(f.CONTINUATION, EH | 0, 5, GET[2:])
    + data(3, b"body", True)
    + raw(f.PING, 0, 0, b"pingpong")
    + raw(f.RST_STREAM, 0, 5, b"\0\0\0\x08")
)


def _summary(events: list[Event]) -> list[str]:
    return [repr(e) for e in events]


@pytest.mark.parametrize("cut", range(1, len(CONVERSATION)))
def test_same_events_however_the_bytes_are_split(cut: int) -> None:
    whole = H2Connection()
    expected = _summary(whole.receive(CONVERSATION))
    assert len(expected) == 5  # three requests, a body, a reset
    split = H2Connection()
    got = split.receive(CONVERSATION[:cut]) + split.receive(CONVERSATION[cut:])
    assert _summary(got) == expected
    assert split.data_to_send() == whole.data_to_send()


# --- malformed requests: stream errors ----------------------------------------------------------

MALFORMED = [
    ("upper-case name", GET + literal(b"X-Up", b"1")),
    ("connection field", GET + literal(b"connection", b"keep-alive")),
    ("keep-alive field", GET + literal(b"keep-alive", b"5")),
    ("transfer-encoding", GET + literal(b"transfer-encoding", b"chunked")),
    ("upgrade field", GET + literal(b"upgrade", b"websocket")),
    ("te other than trailers", GET + literal(b"te", b"gzip")),
    ("no :method", b"\x86\x84" + literal(b":authority", b"e")),
    ("no :path", b"\x82\x86" + literal(b":authority", b"e")),
    ("no :scheme", b"\x82\x84" + literal(b":authority", b"e")),
    ("empty :path", b"\x82\x86" + literal(b":path", b"")),
    ("relative :path", b"\x82\x86" + literal(b":path", b"x")),
    ("duplicate :path", GET + b"\x84"),
    ("duplicate :method", b"\x82" + GET),
    ("pseudo after regular", b"\x82\x86" + literal(b"x", b"1") + b"\x84"),
    ("unknown pseudo", GET + literal(b":foo", b"1")),
    ("response pseudo", GET + literal(b":status", b"200")),
    ("NUL in a value", GET + literal(b"x", b"a\x00b")),
    ("CR in a value", GET + literal(b"x", b"a\rb")),
    ("LF in a value", GET + literal(b"x", b"a\nb")),
    ("leading space in a value", GET + literal(b"x", b" a")),
    ("trailing tab in a value", GET + literal(b"x", b"a\t")),
    ("space in a name", GET + literal(b"a b", b"1")),
    ("colon in a name", GET + literal(b"a:b", b"1")),
    ("bad content-length", GET + literal(b"content-length", b"1x")),
    ("content-length on an ended stream", GET + literal(b"content-length", b"5")),
    (
        "conflicting content-lengths",
        POST + literal(b"content-length", b"1") + literal(b"content-length", b"2"),
    ),
]


@pytest.mark.parametrize(("name", "block"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_is_a_stream_error(name: str, block: bytes) -> None:
    conn = connect()
    events = conn.receive(headers(1, block))
    assert events == []  # the application never sees it
    out = sent(conn)
    assert resets(out) == {1: f.PROTOCOL_ERROR} and goaway(out) is None
    # the connection goes on
    assert isinstance(conn.receive(headers(3))[0], RequestReceived)


@pytest.mark.parametrize(
    ("name", "body_frames"),
    [
        ("body shorter than content-length", data(1, b"abc", True)),
        ("body longer than content-length", data(1, b"abcdef")),
        ("trailers before the full body", data(1, b"ab") + headers(1, literal(b"x", b"1"))),
    ],
)
def test_content_length_differing_from_data_is_a_stream_error(
    name: str, body_frames: bytes
) -> None:
    conn = connect()
    events = conn.receive(headers(1, POST + literal(b"content-length", b"4"), False) + body_frames)
    assert isinstance(events[-1], StreamReset) and events[-1].error_code == f.PROTOCOL_ERROR
    assert resets(sent(conn)) == {1: f.PROTOCOL_ERROR}
    assert isinstance(conn.receive(headers(3))[0], RequestReceived)


def test_oversized_header_list_is_answerable_with_431() -> None:
    conn = connect(Limits(max_header_list_size=200))
    (request,) = conn.receive(headers(1, GET + literal(b"x-big", b"v" * 120) * 2))
    assert isinstance(request, RequestReceived) and request.error == 431
    assert request.headers == []  # nothing past the limit was kept


def test_connect_is_well_formed_but_refused_with_405() -> None:
    conn = connect()
    block = b"\x00\x07:method\x07CONNECT" + literal(b":authority", b"example:443")
    (request,) = conn.receive(headers(1, block, end_stream=False))
    assert isinstance(request, RequestReceived) and request.error == 405
    assert resets(sent(conn)) == {}
    assert conn.receive(headers(3, block + b"\x84", end_stream=False)) == []  # with a :path
    assert resets(sent(conn)) == {3: f.PROTOCOL_ERROR}


def test_too_many_fields_is_431() -> None:
    conn = connect(Limits(max_header_count=3))
    block = GET + b"".join(literal(b"x-%d" % i, b"1") for i in range(5))
    (request,) = conn.receive(headers(1, block))
    assert request.error == 431  # type: ignore[attr-defined]


# --- connection errors --------------------------------------------------------------------------

CONNECTION_ERRORS = [
    ("DATA on an idle stream", data(5, b"x"), f.PROTOCOL_ERROR),
    ("DATA on stream 0", data(0, b"x"), f.PROTOCOL_ERROR),
    ("HEADERS on an even stream", headers(2), f.PROTOCOL_ERROR),
    ("HEADERS on stream 0", headers(0), f.PROTOCOL_ERROR),
    ("CONTINUATION without HEADERS", raw(f.CONTINUATION, EH, 1, GET), f.PROTOCOL_ERROR),
    (
        "header block interrupted",
        raw(f.HEADERS, 0, 1, GET) + raw(f.PING, 0, 0, b"12345678"),
        f.PROTOCOL_ERROR,
    ),
    (
        "CONTINUATION on another stream",
        raw(f.HEADERS, 0, 1, GET) + raw(f.CONTINUATION, EH, 3, b""),
        f.PROTOCOL_ERROR,
    ),
    ("SETTINGS_ENABLE_PUSH 2", settings((f.SETTINGS_ENABLE_PUSH, 2)), f.PROTOCOL_ERROR),
    (
        "SETTINGS_INITIAL_WINDOW_SIZE too big",
        settings((f.SETTINGS_INITIAL_WINDOW_SIZE, 2**31)),
        f.FLOW_CONTROL_ERROR,
    ),
    (
        "SETTINGS_MAX_FRAME_SIZE too small",
        settings((f.SETTINGS_MAX_FRAME_SIZE, 100)),
        f.PROTOCOL_ERROR,
    ),
    ("SETTINGS of 5 bytes", raw(f.SETTINGS, 0, 0, b"\0" * 5), f.FRAME_SIZE_ERROR),
    ("SETTINGS ACK with payload", raw(f.SETTINGS, 1, 0, b"\0" * 6), f.FRAME_SIZE_ERROR),
    ("SETTINGS on a stream", raw(f.SETTINGS, 0, 1), f.PROTOCOL_ERROR),
    (
        "connection window overflow",
        raw(f.WINDOW_UPDATE, 0, 0, (2**31 - 1).to_bytes(4, "big")),
        f.FLOW_CONTROL_ERROR,
    ),
    ("HPACK index 0", headers(1, b"\x80"), f.COMPRESSION_ERROR),
    ("HPACK index past the table", headers(1, b"\x82\xff\x10"), f.COMPRESSION_ERROR),
    ("HPACK string cut short", headers(1, b"\x82\x00\x05ab"), f.COMPRESSION_ERROR),
    ("frame larger than our maximum", data(1, b"x" * 16_385), f.FRAME_SIZE_ERROR),
    (
        "PUSH_PROMISE from a client",
        raw(f.PUSH_PROMISE, EH, 1, b"\0\0\0\x02" + GET),
        f.PROTOCOL_ERROR,
    ),
    ("PING of 7 bytes", raw(f.PING, 0, 0, b"1234567"), f.FRAME_SIZE_ERROR),
    ("PING on a stream", raw(f.PING, 0, 1, b"12345678"), f.PROTOCOL_ERROR),
    ("RST_STREAM on an idle stream", raw(f.RST_STREAM, 0, 1, b"\0\0\0\x08"), f.PROTOCOL_ERROR),
    ("RST_STREAM on stream 0", raw(f.RST_STREAM, 0, 0, b"\0\0\0\x08"), f.PROTOCOL_ERROR),
    (
        "WINDOW_UPDATE on an idle stream",
        raw(f.WINDOW_UPDATE, 0, 1, b"\0\0\0\x01"),
        f.PROTOCOL_ERROR,
    ),
    (
        "WINDOW_UPDATE of zero on the connection",
        raw(f.WINDOW_UPDATE, 0, 0, b"\0" * 4),
        f.PROTOCOL_ERROR,
    ),
    ("PRIORITY on stream 0", raw(f.PRIORITY, 0, 0, b"\0\0\0\x01\x10"), f.PROTOCOL_ERROR),
    ("GOAWAY on a stream", raw(f.GOAWAY, 0, 1, b"\0" * 8), f.PROTOCOL_ERROR),
    ("stream id going down", headers(5) + headers(3), f.PROTOCOL_ERROR),
    ("HEADERS on a closed stream", headers(1) + headers(1), f.STREAM_CLOSED),
    (
        "stream window exceeded",
        headers(1, POST, False)
        + b"".join(data(1, b"x" * 16_384) for _ in range(4))
        + data(1, b"x"),
        f.FLOW_CONTROL_ERROR,
    ),
]


@pytest.mark.parametrize(
    ("name", "frames_in", "code"), CONNECTION_ERRORS, ids=[c[0] for c in CONNECTION_ERRORS]
)
def test_connection_errors_send_goaway_with_the_rfc_code(
    name: str, frames_in: bytes, code: int
) -> None:
    conn = connect()
    if name == "HEADERS on a closed stream":
        conn.receive(headers(1))
        conn.send_headers(1, 204, [], end_stream=True)  # stream 1 is now closed both ways
        sent(conn)
        frames_in = headers(1)
    events = conn.receive(frames_in)
    terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(terminated) == 1 and terminated[0].error_code == code and not terminated[0].remote
    assert goaway(sent(conn)) is not None and goaway(sent(conn)) is None  # exactly once
    assert conn.closed
    assert conn.receive(headers(101)) == []  # nothing more is read


def test_stream_window_overflow_by_window_update_is_a_stream_error() -> None:
    conn = connect()
    conn.receive(headers(1))
    conn.receive(raw(f.WINDOW_UPDATE, 0, 1, (2**31 - 1).to_bytes(4, "big")))
    out = sent(conn)
    assert resets(out) == {1: f.FLOW_CONTROL_ERROR} and goaway(out) is None


@pytest.mark.parametrize(
    ("name", "frame_in", "code"),
    [
        ("PRIORITY of 4 bytes", raw(f.PRIORITY, 0, 1, b"\0\0\0\x03"), f.FRAME_SIZE_ERROR),
        ("PRIORITY on itself", raw(f.PRIORITY, 0, 1, b"\0\0\0\x01\x10"), f.PROTOCOL_ERROR),
        ("zero WINDOW_UPDATE on a stream", raw(f.WINDOW_UPDATE, 0, 1, b"\0" * 4), f.PROTOCOL_ERROR),
        ("DATA after END_STREAM", data(1, b"x"), f.STREAM_CLOSED),
        ("HEADERS after END_STREAM", headers(1, literal(b"x", b"1")), f.STREAM_CLOSED),
    ],
)
def test_stream_errors_reset_one_stream(name: str, frame_in: bytes, code: int) -> None:
    conn = connect()
    conn.receive(headers(1))  # stream 1: half-closed (remote), its handler running
    events = conn.receive(frame_in)
    out = sent(conn)
    assert resets(out) == {1: code} and goaway(out) is None
    assert [type(e) for e in events] == [StreamReset]
    assert isinstance(conn.receive(headers(3))[0], RequestReceived)


def test_headers_depending_on_itself_is_a_stream_error_and_the_table_stays_in_step() -> None:
    conn = connect()
    insert = b"\x40\x03x-a\x01v"  # literal with indexing: x-a: v goes into the table
    frame = raw(f.HEADERS, EH | ES | f.FLAG_PRIORITY, 1, b"\0\0\0\x01\x10" + GET + insert)
    assert conn.receive(frame) == []
    assert resets(sent(conn)) == {1: f.PROTOCOL_ERROR}
    (request,) = conn.receive(headers(3, GET + b"\xbe"))  # refers to the entry inserted above
    assert isinstance(request, RequestReceived) and (b"x-a", b"v") in request.headers


def test_headers_too_short_for_its_priority_is_a_frame_size_error() -> None:
    conn = connect()
    conn.receive(raw(f.HEADERS, EH | f.FLAG_PRIORITY, 1, b"\0\0"))
    assert goaway(sent(conn)) == (0, f.FRAME_SIZE_ERROR)


def test_invalid_preface_is_a_protocol_error() -> None:
    conn = H2Connection()
    conn.initiate()
    events = conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(events[0], ConnectionTerminated)
    assert goaway(sent(conn)) == (0, f.PROTOCOL_ERROR)


def test_preface_must_be_followed_by_settings() -> None:
    conn = H2Connection()
    events = conn.receive(f.PREFACE + raw(f.PING, 0, 0, b"12345678"))
    assert isinstance(events[0], ConnectionTerminated)
    assert events[0].error_code == f.PROTOCOL_ERROR


# --- concurrency limit ----------------------------------------------------------------------------


def test_streams_beyond_the_limit_are_refused() -> None:
    conn = connect(Limits(max_concurrent_streams=2))
    events = conn.receive(headers(1) + headers(3) + headers(5))
    assert [e.stream_id for e in events] == [1, 3]  # type: ignore[attr-defined]
    assert resets(sent(conn)) == {5: f.REFUSED_STREAM}
    conn.send_headers(1, 204, [], end_stream=True)
    assert [e.stream_id for e in conn.receive(headers(7))] == [7]  # type: ignore[attr-defined]


def test_lingering_streams_count_against_the_limit() -> None:
    """Streams the caller says still have an application running (``Limits.lingering``) take
    their place among the concurrent streams although the client reset them."""
    limits = Limits(max_concurrent_streams=2)
    conn = connect(limits)
    conn.receive(headers(1) + headers(3))
    conn.receive(raw(f.RST_STREAM, 0, 1, f.CANCEL.to_bytes(4, "big")))
    limits.lingering = 1  # stream 1's application runs on
    assert conn.receive(headers(5)) == []
    assert resets(sent(conn)) == {5: f.REFUSED_STREAM}
    limits.lingering = 0  # it returned
    assert [e.stream_id for e in conn.receive(headers(7))] == [7]  # type: ignore[attr-defined]


def test_settings_advertise_the_limits() -> None:
    conn = H2Connection(Limits(max_concurrent_streams=7, max_header_list_size=999))
    conn.initiate()
    (first, _) = FrameReader().feed(conn.data_to_send())
    assert dict(f.parse_settings(0, first[3], 0)) == {
        f.SETTINGS_MAX_CONCURRENT_STREAMS: 7,
        f.SETTINGS_MAX_HEADER_LIST_SIZE: 999,
        f.SETTINGS_ENABLE_PUSH: 0,
    }


# --- flow control -------------------------------------------------------------------------------


def test_response_waits_for_the_clients_window() -> None:
    conn = connect()
    conn.receive(settings((f.SETTINGS_INITIAL_WINDOW_SIZE, 10)) + headers(1))
    sent(conn)
    conn.send_headers(1, 200, [])
    conn.send_data(1, b"0123456789abcdefghij", end_stream=True)
    out = sent(conn)
    assert [p for k, _, _, p in out if k == f.DATA] == [b"0123456789"]
    assert conn.queued(1) == 10
    events = conn.receive(raw(f.WINDOW_UPDATE, 0, 1, (4).to_bytes(4, "big")))
    assert events == []  # not drained yet
    assert [p for k, _, _, p in sent(conn) if k == f.DATA] == [b"abcd"]
    events = conn.receive(raw(f.WINDOW_UPDATE, 0, 1, (100).to_bytes(4, "big")))
    assert [type(e) for e in events] == [WindowOpened]
    out = sent(conn)
    assert [(p, fl) for k, fl, _, p in out if k == f.DATA] == [(b"efghij", ES)]
    assert conn.queued(1) == 0 and 1 not in conn.streams


def test_trailers_end_the_stream_in_a_headers_frame_after_the_body() -> None:
    conn = connect()
    conn.receive(headers(1))
    sent(conn)
    conn.send_headers(1, 200, [(b"trailer", b"x-checksum")])
    conn.send_data(1, b"body")
    conn.send_trailers(1, [(b"x-checksum", b"abc")])
    out = sent(conn)
    assert [(k, fl) for k, fl, _, _ in out] == [(f.HEADERS, EH), (f.DATA, 0), (f.HEADERS, EH | ES)]
    decoder = Decoder()
    decoder.decode(out[0][3])
    assert decoder.decode(out[2][3])[0] == [(b"x-checksum", b"abc")]
    assert not conn.streams


def test_trailers_wait_for_the_body_blocked_by_the_window() -> None:
    """Queued body bytes go first; the trailers are encoded when they leave, after a head of
    another stream encoded meanwhile, so the client's HPACK table stays in step."""
    conn = connect()
    conn.receive(settings((f.SETTINGS_INITIAL_WINDOW_SIZE, 4)) + headers(1) + headers(3))
    sent(conn)
    conn.send_headers(1, 200, [])
    conn.send_data(1, b"0123456789")
    conn.send_trailers(1, [(b"x-checksum", b"abc")])
    conn.send_headers(3, 200, [(b"x-checksum", b"abc")], end_stream=True)
    out = sent(conn)
    assert [(k, fl, sid) for k, fl, sid, _ in out] == [
        (f.HEADERS, EH, 1),
        (f.DATA, 0, 1),
        (f.HEADERS, EH | ES, 3),
    ]
    conn.receive(raw(f.WINDOW_UPDATE, 0, 1, (100).to_bytes(4, "big")))
    later = sent(conn)
    assert [(k, fl, sid) for k, fl, sid, _ in later] == [(f.DATA, 0, 1), (f.HEADERS, EH | ES, 1)]
    assert out[1][3] + later[0][3] == b"0123456789"
    decoder = Decoder()
    for kind, _, _, payload in out + later:
        if kind == f.HEADERS:
            fields = decoder.decode(payload)[0]
    assert fields == [(b"x-checksum", b"abc")]
    assert not conn.streams


def test_connection_window_shared_by_streams() -> None:
    conn = connect()
    conn.receive(headers(1) + headers(3))
    sent(conn)
    for sid in (1, 3):
        conn.send_headers(sid, 200, [])
        conn.send_data(sid, b"x" * 40_000, end_stream=True)
    total = sum(len(p) for k, _, _, p in sent(conn) if k == f.DATA)
    assert total == 65_535  # the connection's initial window, no more
    conn.receive(raw(f.WINDOW_UPDATE, 0, 0, (20_000).to_bytes(4, "big")))
    total = sum(len(p) for k, _, _, p in sent(conn) if k == f.DATA)
    assert total == 80_000 - 65_535
    assert not conn.streams


def test_data_frames_respect_the_peers_max_frame_size() -> None:
    conn = connect()
    conn.receive(settings((f.SETTINGS_INITIAL_WINDOW_SIZE, 1_000_000)) + headers(1))
    conn.receive(raw(f.WINDOW_UPDATE, 0, 0, (1_000_000).to_bytes(4, "big")))
    sent(conn)
    conn.send_headers(1, 200, [])
    conn.send_data(1, b"y" * 50_000, end_stream=True)
    sizes = [len(p) for k, _, _, p in sent(conn) if k == f.DATA]
    assert sizes == [16_384, 16_384, 16_384, 848]


def test_initial_window_change_applies_to_open_streams() -> None:
    conn = connect()
    conn.receive(headers(1))
    conn.send_headers(1, 200, [])
    conn.send_data(1, b"z" * 1000)
    sent(conn)
    conn.receive(settings((f.SETTINGS_INITIAL_WINDOW_SIZE, 0)))  # window now 0 - 1000
    conn.send_data(1, b"w" * 10, end_stream=True)
    assert [k for k, *_ in sent(conn)] == [f.SETTINGS]  # the ACK only: no DATA
    conn.receive(raw(f.WINDOW_UPDATE, 0, 1, (1009).to_bytes(4, "big")))  # -1000 + 1009 = 9
    assert [p for k, _, _, p in sent(conn) if k == f.DATA] == [b"w" * 9]
    conn.receive(raw(f.WINDOW_UPDATE, 0, 1, (1).to_bytes(4, "big")))
    assert [(p, fl) for k, fl, _, p in sent(conn) if k == f.DATA] == [(b"w", ES)]


def test_received_bytes_are_credited_back_in_batches() -> None:
    conn = connect()
    conn.receive(headers(1, POST, end_stream=False))
    conn.receive(data(1, b"x" * 16_384))
    conn.acknowledge_data(1, 16_384)
    assert sent(conn) == []  # under half a stream window: no WINDOW_UPDATE yet
    conn.receive(data(1, b"x" * 16_384))
    conn.acknowledge_data(1, 16_384)
    updates = [
        (sid, int.from_bytes(p, "big")) for k, _, sid, p in sent(conn) if k == f.WINDOW_UPDATE
    ]
    assert updates == [(1, 32_768)]  # the connection window (1 MiB) is far from half used


def test_padding_is_credited_back_at_once() -> None:
    conn = connect(Limits(stream_window=100))
    conn.receive(headers(1, POST, end_stream=False))
    padded = raw(f.DATA, f.FLAG_PADDED, 1, b"\x3c" + b"abc" + b"\0" * 60)
    (event,) = conn.receive(padded)
    assert isinstance(event, DataReceived) and event.data == b"abc" and event.flow_length == 3
    assert conn.streams[1].recv_window == 100 - 3  # only the 3 bytes of data still count
    updates = [
        (sid, int.from_bytes(p, "big")) for k, _, sid, p in sent(conn) if k == f.WINDOW_UPDATE
    ]
    assert updates == [(1, 61)]  # the padding and its length byte came back at once


def test_response_before_the_request_body_ends_resets_with_no_error() -> None:
    conn = connect()
    conn.receive(headers(1, POST, end_stream=False) + data(1, b"partial"))
    conn.send_headers(1, 413, [], end_stream=True)
    assert resets(sent(conn)) == {1: f.NO_ERROR}
    # the rest of the body may still be in flight: dropped, no error
    assert conn.receive(data(1, b"more", True)) == []
    assert goaway(sent(conn)) is None


# --- graceful shutdown --------------------------------------------------------------------------


def test_goaway_names_the_last_stream_and_later_streams_are_ignored() -> None:
    conn = connect()
    conn.receive(headers(1) + headers(3, POST, end_stream=False))
    conn.close()
    assert goaway(sent(conn)) == (3, f.NO_ERROR)
    assert conn.receive(headers(5)) == []  # opened after our GOAWAY: ignored
    assert conn.receive(data(5, b"x")) == []
    events = conn.receive(data(3, b"body", True))  # in flight: still served
    assert isinstance(events[0], DataReceived)
    conn.send_headers(3, 200, [], end_stream=True)
    assert not conn.closed


def test_client_goaway_is_reported() -> None:
    conn = connect()
    (event,) = conn.receive(raw(f.GOAWAY, 0, 0, b"\0\0\0\0\0\0\0\0bye"))
    assert isinstance(event, ConnectionTerminated) and event.remote and event.detail == "bye"


# --- floods -------------------------------------------------------------------------------------


def test_rapid_reset_ends_in_enhance_your_calm() -> None:
    """CVE-2023-44487: open a stream, reset it, repeat."""
    clock = Clock()
    conn = connect(Limits(max_resets=50), clock)
    handled = 0
    for i in range(200):
        sid = 1 + 2 * i
        events = conn.receive(headers(sid) + raw(f.RST_STREAM, 0, sid, b"\0\0\0\x08"))
        handled += sum(isinstance(e, RequestReceived) for e in events)
        if conn.closed:
            break
    assert goaway(sent(conn)) == (sid, f.ENHANCE_YOUR_CALM)
    assert handled == 51  # the 51st reset crossed the limit
    assert len(conn.streams) == 0 and len(conn.closed_streams) <= 256


def test_resets_spread_over_time_are_allowed() -> None:
    clock = Clock()
    conn = connect(Limits(max_resets=50, flood_window=10.0), clock)
    for i in range(500):
        clock.now = i * 0.5  # 20 resets per 10 s: a browser cancelling now and then
        sid = 1 + 2 * i
        conn.receive(headers(sid) + raw(f.RST_STREAM, 0, sid, b"\0\0\0\x08"))
    assert not conn.closed and goaway(sent(conn)) is None


def test_ignoring_the_stream_limit_ends_in_enhance_your_calm() -> None:
    conn = connect(Limits(max_concurrent_streams=1, max_resets=20))
    conn.receive(headers(1))
    for i in range(1, 100):
        conn.receive(headers(1 + 2 * i))
        if conn.closed:
            break
    out = sent(conn)
    assert list(resets(out).values()) == [f.REFUSED_STREAM] * 20
    assert goaway(out) is not None and goaway(out)[1] == f.ENHANCE_YOUR_CALM  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "frame_in"),
    [
        ("SETTINGS", settings()),
        ("PING", raw(f.PING, 0, 0, b"12345678")),
        ("PRIORITY", raw(f.PRIORITY, 0, 1, b"\0\0\0\0\x10")),
        ("empty DATA", data(1, b"")),
    ],
)
def test_control_frame_floods_end_in_enhance_your_calm(name: str, frame_in: bytes) -> None:
    conn = connect(Limits(max_control_frames=100))
    conn.receive(headers(1, POST, end_stream=False))
    events = conn.receive(frame_in * 10_000)
    assert isinstance(events[-1], ConnectionTerminated)
    out = sent(conn)
    assert goaway(out) == (1, f.ENHANCE_YOUR_CALM)
    assert len(out) <= 102  # at most one answer per allowed frame, plus the GOAWAY


def test_continuation_flood_is_refused_before_decoding() -> None:
    conn = connect(Limits(max_continuations=16))
    decoded: list[bytes] = []

    class WatchedDecoder(Decoder):
        def decode(self, block: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
            decoded.append(block)
            return super().decode(block)

    conn.decoder = WatchedDecoder()
    flood = raw(f.HEADERS, 0, 1, GET) + raw(f.CONTINUATION, 0, 1, b"") * 100_000
    events = conn.receive(flood)
    assert isinstance(events[-1], ConnectionTerminated)
    assert goaway(sent(conn)) == (0, f.ENHANCE_YOUR_CALM)
    assert decoded == [] and conn._block == []


def test_oversized_header_block_is_refused_before_decoding() -> None:
    conn = connect(Limits(max_header_list_size=1000, max_header_block=4000))
    piece = literal(b"x-a", b"v" * 120)
    block_frames = raw(f.HEADERS, 0, 1, GET) + b"".join(
        raw(f.CONTINUATION, 0, 1, piece * 8) for _ in range(10)
    )
    events = conn.receive(block_frames)
    assert isinstance(events[-1], ConnectionTerminated)
    assert goaway(sent(conn)) == (0, f.ENHANCE_YOUR_CALM)


def test_hpack_bomb_is_bounded_by_the_header_list_limit() -> None:
    """One 4 KB entry in the dynamic table, referenced 5,000 times: 20 MB if decoded."""
    conn = connect(Limits(max_header_list_size=16_384, max_frame_size=16_384))
    value = b"b" * 4000
    insert = b"\x40\x06x-bomb" + encode_integer(len(value), 7) + value  # literal, indexed
    conn.receive(headers(1, GET + insert))
    sent(conn)
    bomb = GET + b"\xbe" * 5000  # index 62: the entry just inserted
    (request,) = conn.receive(headers(3, bomb))
    assert isinstance(request, RequestReceived) and request.error == 431
    assert request.headers == []
    (request,) = conn.receive(headers(5))  # the table is still in step
    assert isinstance(request, RequestReceived) and request.error == 0


# --- arbitrary input ------------------------------------------------------------------------------


def test_random_frames_never_raise_and_always_get_rfc_answers() -> None:
    """Frames of every type with random flags, streams and payloads: events or GOAWAY, no crash."""
    import random

    rng = random.Random(2024)
    kinds = list(range(0, 11))
    for _ in range(300):
        conn = connect(Limits(max_concurrent_streams=4, max_resets=20, max_control_frames=50))
        stream = b""
        for _ in range(rng.randrange(1, 30)):
            kind = rng.choice(kinds)
            flags = rng.choice([0, EH, ES, EH | ES, f.FLAG_PADDED, f.FLAG_PRIORITY, 0xFF])
            stream_id = rng.choice([0, 1, 2, 3, 5, 7, 2**31 - 1])
            if kind == f.HEADERS and rng.random() < 0.6:
                payload = GET + bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
            else:
                payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 5, 8, 9])))
            stream += raw(kind, flags, stream_id, payload)
        cut = rng.randrange(len(stream) + 1)
        events = conn.receive(stream[:cut]) + conn.receive(stream[cut:])
        assert all(isinstance(e, Event) for e in events)
        out = FrameReader(f.MAX_MAX_FRAME_SIZE).feed(conn.data_to_send())
        terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
        if terminated and not terminated[0].remote:
            assert goaway(out) is not None and conn.closed
        for sid in list(conn.streams):
            conn.send_headers(sid, 200, [(b"x", b"y")])
            conn.send_data(sid, b"z" * 100, end_stream=True)
        FrameReader(f.MAX_MAX_FRAME_SIZE).feed(conn.data_to_send())
