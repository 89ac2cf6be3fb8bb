"""The sans-IO connection (RFC 6455 sections 5-7, RFC 7692 section 6): bytes in, events out."""

from __future__ import annotations

import tracemalloc
import zlib
from typing import Any

import pytest

from peregrine.ws.deflate import DeflateParams, PerMessageDeflate
from peregrine.ws.events import Close, Message, Ping, Pong
from peregrine.ws.frames import FrameParser, serialize_frame
from peregrine.ws.protocol import ServerConnection, State

MASK = b"\x01\x02\x03\x04"
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def f(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame."""
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=MASK)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Decode what the server sent (unmasked frames)."""
    parser = FrameParser(max_payload=1 << 26, require_mask=False, allow_rsv1=True)
    parser.feed(data)
    out = []
    while (frame := parser.next_frame()) is not None:
        out.append((frame.opcode, frame.payload))
    return out


def sent_close_code(conn: ServerConnection) -> Any:
    frames = server_frames(conn.data_to_send())
    closes = [p for op, p in frames if op == CLOSE]
    assert len(closes) == 1, frames
    return int.from_bytes(closes[0][:2], "big") if closes[0] else None


class TestRFC6455Section5_4_Fragmentation:
    @pytest.mark.parametrize(
        "wire, expected",
        [
            (f(TEXT, b"whole"), [Message("whole")]),
            (f(BINARY, b"\x00\xff"), [Message(b"\x00\xff")]),
            (f(TEXT, b""), [Message("")]),
            (
                f(TEXT, b"fr", fin=False) + f(CONT, b"ag", fin=False) + f(CONT, b"ment"),
                [Message("fragment")],
            ),
            (
                f(BINARY, b"a", fin=False) + f(CONT, b"") + f(BINARY, b"b"),
                [Message(b"a"), Message(b"b")],
            ),
            (f(TEXT, b"", fin=False) + f(CONT, b"", fin=False) + f(CONT, b""), [Message("")]),
            # Control frames may come between fragments (section 5.4).
            (
                f(TEXT, b"a", fin=False)
                + f(PING, b"1")
                + f(CONT, b"b", fin=False)
                + f(PONG, b"2")
                + f(CONT, b"c"),
                [Ping(b"1"), Pong(b"2"), Message("abc")],
            ),
        ],
    )
    def test_messages(self, wire: bytes, expected: list) -> None:
        conn = ServerConnection()
        assert conn.receive_data(wire) == expected
        assert conn.state is State.OPEN

    @pytest.mark.parametrize(
        "wire",
        [
            f(CONT, b"x"),  # continuation without a message
            f(TEXT, b"a", fin=False) + f(TEXT, b"b"),  # new message inside a fragmented one
            f(BINARY, b"a", fin=False) + f(BINARY, b"b", fin=False),
        ],
    )
    def test_protocol_errors(self, wire: bytes) -> None:
        conn = ServerConnection()
        conn.receive_data(wire)
        assert sent_close_code(conn) == 1002
        assert conn.failed and conn.state is State.CLOSING and conn.close_code == 1002

    def test_byte_by_byte(self) -> None:
        wire = f(TEXT, "héllo".encode(), fin=False) + f(PING, b"p") + f(CONT, " wörld".encode())
        conn = ServerConnection()
        events = []
        for i in range(len(wire)):
            events += conn.receive_data(wire[i : i + 1])
        assert events == [Ping(b"p"), Message("héllo wörld")]


class TestRFC6455Section5_5_Control:
    def test_ping_is_answered_with_the_same_data(self) -> None:
        conn = ServerConnection()
        assert conn.receive_data(f(PING, b"abc") + f(PING, b"")) == [Ping(b"abc"), Ping(b"")]
        assert server_frames(conn.data_to_send()) == [(PONG, b"abc"), (PONG, b"")]

    def test_pong_is_reported_not_answered(self) -> None:
        conn = ServerConnection()
        assert conn.receive_data(f(PONG, b"x")) == [Pong(b"x")]
        assert conn.data_to_send() == b""

    @pytest.mark.parametrize(
        "wire",
        [
            serialize_frame(PING, b"x" * 126, mask=MASK),
            serialize_frame(PING, b"x", fin=False, mask=MASK),
            serialize_frame(CLOSE, b"", fin=False, mask=MASK),
            serialize_frame(PONG, b"x", rsv1=True, mask=MASK),
        ],
    )
    def test_bad_control_frames(self, wire: bytes) -> None:
        conn = ServerConnection()
        conn.receive_data(wire)
        assert sent_close_code(conn) == 1002


class TestRFC6455Section5_2_ReservedBits:
    @pytest.mark.parametrize("first_byte", [0xC1, 0xA1, 0x91, 0x83, 0x87, 0x8B, 0x8F])
    def test_fail_with_1002(self, first_byte: int) -> None:
        conn = ServerConnection()
        events = conn.receive_data(
            f(TEXT, b"before") + bytes((first_byte, 0x80)) + MASK + f(TEXT, b"after")
        )
        assert events == [Message("before")]  # what came before is kept, what follows is not read
        assert sent_close_code(conn) == 1002

    def test_answers_to_earlier_events_go_before_the_failure(self) -> None:
        # Fed together, but handled one by one: the echo of the first message can still be
        # sent, and the close frame only comes when the bad frame is reached.
        conn = ServerConnection()
        conn.feed(f(TEXT, b"hello") + bytes((0xA1, 0x80)) + MASK)
        assert conn.next_event() == Message("hello")
        assert conn.data_to_send() == b""
        echo = conn.send_text("hello")
        assert server_frames(echo) == [(TEXT, b"hello")]
        assert conn.next_event() is None
        assert sent_close_code(conn) == 1002
        assert conn.send_text("late") == b""

    def test_unmasked_frame(self) -> None:
        conn = ServerConnection()
        conn.receive_data(serialize_frame(TEXT, b"x"))
        assert sent_close_code(conn) == 1002

    def test_input_after_failing_is_ignored(self) -> None:
        conn = ServerConnection()
        conn.receive_data(f(CONT, b"x"))
        conn.data_to_send()
        assert conn.receive_data(f(TEXT, b"ignored") + f(CLOSE, close_payload(1000))) == []
        assert conn.data_to_send() == b""


class TestRFC6455Section8_1_Utf8:
    @pytest.mark.parametrize(
        "wire",
        [
            f(TEXT, b"\xff"),
            f(TEXT, b"\xed\xa0\x80"),  # a surrogate
            f(TEXT, b"\xf4\x90\x80\x80"),  # beyond U+10FFFF
            f(TEXT, b"\xc0\xaf"),  # overlong
            f(TEXT, b"ok\xe2\x82"),  # truncated at the end of an unfragmented message
            f(TEXT, b"ok", fin=False) + f(CONT, b"\xe2\x82"),  # truncated at the end of the message
            f(TEXT, b"ok", fin=False) + f(CONT, b"\xff", fin=False) + f(CONT, b"ok"),
        ],
    )
    def test_invalid_text_fails_with_1007(self, wire: bytes) -> None:
        conn = ServerConnection()
        assert conn.receive_data(wire) == []
        assert sent_close_code(conn) == 1007

    def test_code_point_split_across_fragments(self) -> None:
        euro = "€".encode()
        conn = ServerConnection()
        wire = f(TEXT, euro[:1], fin=False) + f(CONT, euro[1:2], fin=False) + f(CONT, euro[2:])
        assert conn.receive_data(wire) == [Message("€")]

    def test_fails_at_the_bad_fragment_not_at_the_end(self) -> None:
        # 0xF4 0x90 cannot start any valid sequence: reject before the message ends.
        conn = ServerConnection()
        conn.receive_data(f(TEXT, b"\xce\xba", fin=False))
        assert conn.data_to_send() == b""
        conn.receive_data(f(CONT, b"\xf4\x90", fin=False))
        assert sent_close_code(conn) == 1007

    def test_binary_is_not_checked(self) -> None:
        assert ServerConnection().receive_data(f(BINARY, b"\xff")) == [Message(b"\xff")]


class TestRFC6455Section7_ClosingHandshake:
    @pytest.mark.parametrize(
        "payload, echoed, event",
        [
            (b"", None, Close(1005, "")),
            (close_payload(1000), 1000, Close(1000, "")),
            (close_payload(1001, b"bye"), 1001, Close(1001, "bye")),
            (close_payload(3000), 3000, Close(3000, "")),
            (close_payload(4999, "ü".encode()), 4999, Close(4999, "ü")),
        ],
    )
    def test_peer_initiated(self, payload: bytes, echoed: Any, event: Close) -> None:
        conn = ServerConnection()
        assert conn.receive_data(f(CLOSE, payload) + f(TEXT, b"after close")) == [event]
        assert sent_close_code(conn) == echoed
        assert conn.state is State.CLOSED
        assert conn.close_code == event.code

    @pytest.mark.parametrize(
        "payload, code",
        [
            (b"\x03", 1002),
            (close_payload(999), 1002),
            (close_payload(1005), 1002),
            (close_payload(1006), 1002),
            (close_payload(2000), 1002),
            (close_payload(5000), 1002),
            (close_payload(1000, b"\xff"), 1007),
        ],
    )
    def test_invalid_close_frames(self, payload: bytes, code: int) -> None:
        conn = ServerConnection()
        conn.receive_data(f(CLOSE, payload))
        assert sent_close_code(conn) == code

    def test_server_initiated(self) -> None:
        conn = ServerConnection()
        assert server_frames(conn.close(1001, "going")) == [(CLOSE, close_payload(1001, b"going"))]
        assert conn.state is State.CLOSING
        assert conn.close(1000) == b""  # only once
        assert conn.send_text("late") == b""  # no data after our close
        # Data still arriving is delivered; the peer's close ends the handshake, unanswered.
        assert conn.receive_data(f(TEXT, b"in flight") + f(CLOSE, close_payload(1001))) == [
            Message("in flight"),
            Close(1001, ""),
        ]
        assert conn.data_to_send() == b""
        assert conn.state is State.CLOSED
        assert conn.close_code == 1001

    def test_no_pong_after_our_close(self) -> None:
        conn = ServerConnection()
        conn.close()
        assert conn.receive_data(f(PING, b"x")) == [Ping(b"x")]
        assert conn.data_to_send() == b""

    @pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
    def test_close_refuses_bad_codes(self, code: int) -> None:
        with pytest.raises(ValueError):
            ServerConnection().close(code)

    def test_eof_without_close_is_1006(self) -> None:
        conn = ServerConnection()
        conn.receive_eof()
        assert conn.state is State.CLOSED and conn.close_code == 1006


class TestRFC6455Section10_4_Limits:
    def test_unfragmented_over_limit(self) -> None:
        conn = ServerConnection(max_message_size=10)
        assert conn.receive_data(f(BINARY, b"x" * 10)) == [Message(b"x" * 10)]
        conn.receive_data(f(BINARY, b"x" * 11))
        assert sent_close_code(conn) == 1009

    def test_fragments_add_up(self) -> None:
        conn = ServerConnection(max_message_size=10)
        conn.receive_data(f(TEXT, b"x" * 6, fin=False) + f(CONT, b"x" * 5))
        assert sent_close_code(conn) == 1009

    def test_rejected_from_the_header(self) -> None:
        conn = ServerConnection(max_message_size=1000)
        conn.receive_data(bytes((0x82, 0xFF)) + (10**9).to_bytes(8, "big"))  # 1 GB announced
        assert sent_close_code(conn) == 1009

    def test_continuation_checked_against_the_room_left(self) -> None:
        conn = ServerConnection(max_message_size=1000)
        conn.receive_data(f(BINARY, b"x" * 500, fin=False))
        # 500 bytes fit: the header of a 500-byte continuation passes, a 501-byte one fails
        assert conn.receive_data(f(CONT, b"y" * 500)) == [Message(b"x" * 500 + b"y" * 500)]
        conn.receive_data(f(BINARY, b"x" * 500, fin=False) + f(CONT, b"y" * 501)[:8])
        assert sent_close_code(conn) == 1009

    def test_room_left_resets_with_the_next_message(self) -> None:
        conn = ServerConnection(max_message_size=1000)
        wire = f(BINARY, b"x" * 999, fin=False) + f(CONT, b"y") + f(BINARY, b"z" * 1000)
        assert conn.receive_data(wire) == [Message(b"x" * 999 + b"y"), Message(b"z" * 1000)]

    def test_many_fragments_are_held_in_one_buffer(self) -> None:
        conn = ServerConnection(max_message_size=10_000)
        wire = f(TEXT, "é".encode()[:1], fin=False) + f(CONT, "é".encode()[1:], fin=False)
        wire += f(CONT, b"", fin=False) * 100 + f(CONT, b"ab", fin=False) * 100 + f(CONT, b"!")
        assert conn.receive_data(wire) == [Message("é" + "ab" * 100 + "!")]
        assert conn.state is State.OPEN

    def test_fragment_count_is_bounded(self) -> None:
        conn = ServerConnection(max_message_size=1000, max_fragments=10)
        conn.receive_data(f(BINARY, b"", fin=False) + f(CONT, b"", fin=False) * 8 + f(CONT, b"ok"))
        assert conn.state is State.OPEN
        conn.receive_data(f(BINARY, b"", fin=False) + f(CONT, b"", fin=False) * 10)
        assert sent_close_code(conn) == 1009

    def test_default_fragment_bound(self) -> None:
        assert ServerConnection(max_message_size=1000).max_fragments == 1 << 16
        assert ServerConnection(max_message_size=16 << 20).max_fragments == 1 << 20

    def test_empty_continuation_frames(self) -> None:
        """A message opened with a non-final frame, then an endless run of empty non-final
        continuations (6 bytes each on the wire). The message never grows, so the limit never
        trips; a client never grows the server's memory without bound.
        Guards against: every empty fragment appends to `_msg_parts` (~8.4 bytes per frame), so
        10,000 frames leave ~85 KB held for a message of 0 bytes (limit 1,000); what stays
        allocated otherwise is ~6 KB, whatever the number of frames."""
        conn = ServerConnection(max_message_size=1000)
        conn.receive_data(f(BINARY, b"", fin=False))
        growth = _memory_growth(conn, f(CONT, b"", fin=False) * 1000, 10)
        assert conn.state is State.OPEN
        assert growth < 32 * 1024, f"{growth} bytes held for an empty message"

    def test_tiny_fragments_stay_near_the_limit(self) -> None:
        """A 10,000-byte binary message (limit 10,000) sent as 2-byte fragments. Expected:
        memory of the order of the limit (`ws_max_message_size` is the bound the docs give; ~19
        KB held here). Guards against: one bytes object plus a list slot per fragment, ~215 KB
        (~21x the limit; with the 16 MiB default that is ~350 MB for one connection)."""
        conn = ServerConnection(max_message_size=10_000)
        conn.receive_data(f(BINARY, b"ab", fin=False))
        growth = _memory_growth(conn, f(CONT, b"ab", fin=False) * 999, 5)  # 9,992 bytes in all
        assert conn.state is State.OPEN
        assert growth < 4 * 10_000, f"{growth} bytes held for a message limited to 10,000"

    def test_continuation_over_the_room_left_fails_from_its_header(self) -> None:
        """999 bytes of a message (limit 1,000), then the 8-byte header of a 1,000-byte
        continuation. docs/websocket.md: the limit is checked "from the frame header before
        buffering". Guards against: the header is only checked against the whole limit, so the
        server stays OPEN and buffers the continuation's payload (up to 2x the limit held)."""
        conn = ServerConnection(max_message_size=1000)
        conn.receive_data(f(BINARY, b"x" * 999, fin=False))
        conn.receive_data(f(CONT, b"y" * 1000)[:8])
        assert conn.failed and sent_close_code(conn) == 1009


def compressed(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]


def deflate_conn(**kwargs: Any) -> ServerConnection:
    return ServerConnection(deflate=PerMessageDeflate(DeflateParams()), **kwargs)


class TestRFC7692Section6_CompressedMessages:
    def test_compressed_and_plain_messages_mix(self) -> None:
        conn = deflate_conn()
        wire = f(TEXT, compressed(b"Hello"), rsv1=True) + f(TEXT, b"plain")
        assert conn.receive_data(wire) == [Message("Hello"), Message("plain")]

    def test_fragmented_compressed_message(self) -> None:
        data = compressed("héllo ".encode() * 100)
        wire = (
            f(TEXT, data[:10], fin=False, rsv1=True)
            + f(PING)
            + f(CONT, data[10:20], fin=False)
            + f(CONT, data[20:])
        )
        assert deflate_conn().receive_data(wire) == [Ping(b""), Message("héllo " * 100)]

    def test_rsv1_on_a_continuation(self) -> None:
        conn = deflate_conn()
        conn.receive_data(
            f(TEXT, compressed(b"ab")[:1], fin=False, rsv1=True) + f(CONT, b"", rsv1=True)
        )
        assert sent_close_code(conn) == 1002

    def test_rsv1_without_negotiation(self) -> None:
        conn = ServerConnection()
        conn.receive_data(f(TEXT, compressed(b"x"), rsv1=True))
        assert sent_close_code(conn) == 1002

    def test_limit_applies_after_decompression(self) -> None:
        conn = deflate_conn(max_message_size=1000)
        bomb = compressed(bytes(900_000))
        assert len(bomb) < 1000  # the frame is small, its content is not
        conn.receive_data(f(BINARY, bomb, rsv1=True))
        assert sent_close_code(conn) == 1009

    def test_invalid_utf8_after_decompression(self) -> None:
        conn = deflate_conn()
        conn.receive_data(f(TEXT, compressed(b"\xff"), rsv1=True))
        assert sent_close_code(conn) == 1007

    def test_corrupt_compressed_data(self) -> None:
        conn = deflate_conn()
        conn.receive_data(f(BINARY, b"\xff\xff\xff", rsv1=True))
        assert sent_close_code(conn) == 1007

    def test_compressed_continuation_checked_against_the_room_left(self) -> None:
        conn = deflate_conn(max_message_size=100_000)
        data = compressed(bytes(50_000))
        conn.receive_data(f(BINARY, data, fin=False, rsv1=True))
        # room 50,000 (plus the slack for stored blocks): a 60,000-byte header fails at once
        conn.receive_data(f(CONT, b"x" * 60_000)[:8])
        assert sent_close_code(conn) == 1009

    def test_final_block_then_an_empty_stored_block(self) -> None:
        # RFC 7692 7.2.3.4: "Hello" in a BFINAL block, then the start of an empty stored
        # block that the 4-byte tail completes; here split across two fragments.
        payload = bytes.fromhex("f348cdc9c9070000")
        wire = f(TEXT, payload[:7], fin=False, rsv1=True) + f(CONT, payload[7:])
        conn = deflate_conn()
        assert conn.receive_data(wire) == [Message("Hello")]
        assert conn.receive_data(f(TEXT, compressed(b"again"), rsv1=True)) == [Message("again")]

    def test_sent_messages_are_compressed(self) -> None:
        conn = deflate_conn()
        frames = server_frames(conn.send_text("Hello"))
        assert frames == [(TEXT, bytes.fromhex("f248cdc9c90700"))]

    @pytest.mark.parametrize("fragmented", [False, True])
    def test_data_after_a_final_block(self, fragmented: bool) -> None:
        """One compressed text message whose deflate data is a stream ending in a BFINAL
        block ("hello ") followed by a second stream ("world"). Expected: either the whole
        text or failing the connection with 1007 (RFC 7692 7.2.2: the payload plus tail is
        one DEFLATE stream). Guards against: zlib's `unused_data` is never looked at, so the
        message arrives truncated as "hello " and the connection stays open."""
        first = zlib.compressobj(6, zlib.DEFLATED, -15)
        a = first.compress(b"hello ") + first.flush(zlib.Z_FINISH)
        second = zlib.compressobj(6, zlib.DEFLATED, -15)
        b = (second.compress(b"world") + second.flush(zlib.Z_SYNC_FLUSH))[:-4]
        conn = ServerConnection(deflate=PerMessageDeflate(DeflateParams()))
        if fragmented:
            wire = f(TEXT, a, fin=False, rsv1=True) + f(CONT, b)
        else:
            wire = f(TEXT, a + b, rsv1=True)
        events = conn.receive_data(wire)
        assert events == [Message("hello world")] or (
            events == [] and sent_close_code(conn) == 1007
        ), events


class TestSending:
    @pytest.mark.parametrize(
        "method, arg, expected",
        [
            ("send_text", "hé", (TEXT, "hé".encode())),
            ("send_binary", b"\x00", (BINARY, b"\x00")),
            ("send_binary", bytearray(b"ab"), (BINARY, b"ab")),
            ("ping", b"p", (PING, b"p")),
            ("pong", b"q", (PONG, b"q")),
        ],
    )
    def test_frames(self, method: str, arg: Any, expected: tuple) -> None:
        assert server_frames(getattr(ServerConnection(), method)(arg)) == [expected]

    def test_large_message_uses_one_frame(self) -> None:
        data = ServerConnection().send_binary(bytes(100_000))
        assert data[:2] == bytes((0x82, 127)) and len(data) == 100_010

    @pytest.mark.parametrize("method", ["ping", "pong"])
    def test_control_data_limit(self, method: str) -> None:
        with pytest.raises(ValueError):
            getattr(ServerConnection(), method)(b"x" * 126)


def _memory_growth(conn: ServerConnection, chunk: bytes, times: int) -> int:
    """Bytes still allocated after feeding `chunk` `times` times (events drained each time)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(times):
            conn.feed(chunk)
            while conn.next_event() is not None:
                pass
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
