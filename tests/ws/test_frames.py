"""The frame codec (RFC 6455 section 5), driven with bytes only."""

from __future__ import annotations

import os

import pytest

from peregrine.ws.errors import InvalidPayload, MessageTooBig, ProtocolViolation
from peregrine.ws.frames import (
    Frame,
    FrameParser,
    Opcode,
    apply_mask,
    parse_close_payload,
    serialize_close_payload,
    serialize_frame,
)

MASK = b"\x37\xfa\x21\x3d"  # the key of RFC 6455's examples


def parse_all(data: bytes, **kwargs: object) -> list[Frame]:
    parser = FrameParser(max_payload=kwargs.pop("max_payload", 1 << 24), **kwargs)  # type: ignore[arg-type]
    parser.feed(data)
    frames = []
    while (frame := parser.next_frame()) is not None:
        frames.append(frame)
    return frames


def naive_mask(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class TestRFC6455Section5_7_Examples:
    """The example frames of section 5.7, byte for byte."""

    @pytest.mark.parametrize(
        "wire, expected",
        [
            (bytes.fromhex("810548656c6c6f"), [Frame(True, Opcode.TEXT, b"Hello")]),
            (bytes.fromhex("818537fa213d7f9f4d5158"), [Frame(True, Opcode.TEXT, b"Hello")]),
            (
                bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"),
                [Frame(False, Opcode.TEXT, b"Hel"), Frame(True, Opcode.CONT, b"lo")],
            ),
            (bytes.fromhex("890548656c6c6f"), [Frame(True, Opcode.PING, b"Hello")]),
            (bytes.fromhex("8a8537fa213d7f9f4d5158"), [Frame(True, Opcode.PONG, b"Hello")]),
        ],
    )
    def test_parse(self, wire: bytes, expected: list[Frame]) -> None:
        assert parse_all(wire, require_mask=False) == expected

    def test_serialize_unmasked_hello(self) -> None:
        assert serialize_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")

    def test_serialize_masked_hello(self) -> None:
        assert serialize_frame(Opcode.TEXT, b"Hello", mask=MASK) == bytes.fromhex(
            "818537fa213d7f9f4d5158"
        )

    def test_256_bytes_use_16_bit_length(self) -> None:
        assert serialize_frame(Opcode.BINARY, bytes(256))[:4] == bytes.fromhex("827e0100")

    def test_64_kib_use_64_bit_length(self) -> None:
        assert serialize_frame(Opcode.BINARY, bytes(65536))[:10] == bytes.fromhex(
            "827f0000000000010000"
        )


class TestRFC6455Section5_2_PayloadLength:
    @pytest.mark.parametrize(
        "length, header_len",
        [
            (0, 2),
            (1, 2),
            (125, 2),
            (126, 4),
            (127, 4),
            (65535, 4),
            (65536, 10),
            (200_000, 10),
        ],
    )
    def test_round_trip(self, length: int, header_len: int) -> None:
        payload = os.urandom(length)
        wire = serialize_frame(Opcode.BINARY, payload, mask=MASK)
        assert len(wire) == header_len + 4 + length
        assert parse_all(wire) == [Frame(True, Opcode.BINARY, payload)]

    def test_non_minimal_length_is_accepted(self) -> None:
        # The minimal encoding binds senders; a receiver loses nothing by being lenient.
        wire = bytes((0x82, 0x80 | 126, 0, 5)) + MASK + apply_mask(b"abcde", MASK)
        assert parse_all(wire) == [Frame(True, Opcode.BINARY, b"abcde")]

    def test_64_bit_length_with_high_bit_is_rejected(self) -> None:
        wire = bytes((0x82, 0x80 | 127)) + (1 << 63).to_bytes(8, "big") + MASK
        with pytest.raises(ProtocolViolation):
            parse_all(wire)

    def test_oversized_frame_rejected_from_its_header(self) -> None:
        parser = FrameParser(max_payload=1000)
        parser.feed(bytes((0x82, 0x80 | 126)) + (1001).to_bytes(2, "big"))  # header only
        with pytest.raises(MessageTooBig):
            parser.next_frame()

    def test_frame_at_the_limit_is_accepted(self) -> None:
        wire = serialize_frame(Opcode.BINARY, bytes(1000), mask=MASK)
        assert parse_all(wire, max_payload=1000)[0].payload == bytes(1000)


class TestRFC6455Section5_2_HeaderBits:
    """Reserved bits and opcodes, and the rules for control frames (section 5.5)."""

    @pytest.mark.parametrize(
        "first_byte",
        [
            0x81 | 0x20,  # RSV2
            0x81 | 0x10,  # RSV3
            0x81 | 0x40,  # RSV1 without an extension
            0x83,
            0x84,
            0x85,
            0x86,
            0x87,  # reserved data opcodes
            0x8B,
            0x8C,
            0x8D,
            0x8E,
            0x8F,  # reserved control opcodes
            0x09,  # fragmented ping
            0x08,  # fragmented close
        ],
    )
    def test_protocol_errors(self, first_byte: int) -> None:
        with pytest.raises(ProtocolViolation):
            parse_all(bytes((first_byte, 0x80)) + MASK)

    def test_control_frame_over_125_bytes(self) -> None:
        with pytest.raises(ProtocolViolation):
            parse_all(serialize_frame(Opcode.PING, bytes(126), mask=MASK))

    def test_control_frame_of_125_bytes(self) -> None:
        assert parse_all(serialize_frame(Opcode.PING, bytes(125), mask=MASK))[0].payload == bytes(
            125
        )

    @pytest.mark.parametrize(
        "opcode, fin, allowed",
        [
            (Opcode.TEXT, True, True),
            (Opcode.BINARY, False, True),
            (Opcode.CONT, True, False),
            (Opcode.PING, True, False),
            (Opcode.CLOSE, True, False),
        ],
    )
    def test_rsv1_with_permessage_deflate(self, opcode: int, fin: bool, allowed: bool) -> None:
        wire = serialize_frame(opcode, b"x", fin=fin, rsv1=True, mask=MASK)
        if allowed:
            assert parse_all(wire, allow_rsv1=True)[0].rsv1
        else:
            with pytest.raises(ProtocolViolation):
                parse_all(wire, allow_rsv1=True)


class TestRFC6455Section5_1_Masking:
    def test_unmasked_client_frame_is_rejected(self) -> None:
        with pytest.raises(ProtocolViolation):
            parse_all(serialize_frame(Opcode.TEXT, b"hi"))

    @pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 65535, 65536, 65537, 3 * 65536 + 3])
    def test_apply_mask_matches_the_definition(self, length: int) -> None:
        data = os.urandom(length)
        mask = os.urandom(4)
        assert apply_mask(data, mask) == naive_mask(data, mask)

    def test_apply_mask_accepts_memoryview(self) -> None:
        data = bytearray(os.urandom(70000))
        assert apply_mask(memoryview(data), MASK) == naive_mask(bytes(data), MASK)


class TestStreaming:
    """Many frames per read, frames split across reads, and errors after good frames."""

    FRAMES = [
        (Opcode.TEXT, b"first"),
        (Opcode.BINARY, os.urandom(300)),
        (Opcode.PING, b"p"),
        (Opcode.BINARY, os.urandom(70000)),
        (Opcode.TEXT, b""),
    ]

    def wire(self) -> bytes:
        return b"".join(serialize_frame(op, data, mask=MASK) for op, data in self.FRAMES)

    def test_many_frames_in_one_feed(self) -> None:
        assert [(f.opcode, f.payload) for f in parse_all(self.wire())] == self.FRAMES

    @pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000, 65536])
    def test_split_anywhere(self, chunk: int) -> None:
        wire = self.wire()
        parser = FrameParser(max_payload=1 << 20)
        got = []
        for i in range(0, len(wire), chunk):
            parser.feed(wire[i : i + chunk])
            while (frame := parser.next_frame()) is not None:
                got.append((frame.opcode, frame.payload))
        assert got == self.FRAMES
        assert parser.buffered == 0

    def test_frames_before_an_error_are_returned(self) -> None:
        parser = FrameParser(max_payload=1000)
        parser.feed(serialize_frame(Opcode.TEXT, b"ok", mask=MASK) + bytes((0x83, 0x80)) + MASK)
        assert parser.next_frame() == Frame(True, Opcode.TEXT, b"ok")
        with pytest.raises(ProtocolViolation):
            parser.next_frame()


class TestRFC6455Section5_5_1_ClosePayload:
    @pytest.mark.parametrize(
        "payload, expected",
        [
            (b"", (1005, "")),
            (b"\x03\xe8", (1000, "")),
            (b"\x03\xe9going", (1001, "going")),
            (b"\x03\xe8" + "ünïcode".encode(), (1000, "ünïcode")),
            (b"\x0b\xb8", (3000, "")),
            (b"\x13\x87", (4999, "")),
            (b"\x03\xf4", (1012, "")),
        ],
    )
    def test_valid(self, payload: bytes, expected: tuple[int, str]) -> None:
        assert parse_close_payload(payload) == expected

    @pytest.mark.parametrize(
        "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
    )
    def test_invalid_code(self, code: int) -> None:
        with pytest.raises(ProtocolViolation):
            parse_close_payload(code.to_bytes(2, "big"))

    def test_one_byte_payload(self) -> None:
        with pytest.raises(ProtocolViolation):
            parse_close_payload(b"\x03")

    def test_reason_not_utf8(self) -> None:
        with pytest.raises(InvalidPayload):
            parse_close_payload(b"\x03\xe8\xff")

    def test_serialize(self) -> None:
        assert serialize_close_payload(1000, "bye") == b"\x03\xe8bye"
        assert serialize_close_payload(None) == b""
        with pytest.raises(ValueError):
            serialize_close_payload(1000, "x" * 124)
