"""HTTP/2 framing: cutting a byte stream into frames, payload checks, and the frames we build."""

from __future__ import annotations

import pytest

from peregrine.http2 import frames as f
from peregrine.http2.frames import FrameError, FrameReader


def raw(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return f.frame_header(len(payload), kind, flags, stream_id) + payload


STREAM = (
    raw(f.SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64")
    + raw(f.HEADERS, f.FLAG_END_HEADERS | f.FLAG_END_STREAM, 1, b"\x82\x86\x84")
    + raw(f.DATA, 0, 1, b"x" * 100)
    + raw(f.PING, 0, 0, b"12345678")
    + raw(0xEE, 0, 0, b"")  # an unknown type still frames
)
EXPECTED = [
    (f.SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64"),
    (f.HEADERS, 5, 1, b"\x82\x86\x84"),
    (f.DATA, 0, 1, b"x" * 100),
    (f.PING, 0, 0, b"12345678"),
    (0xEE, 0, 0, b""),
]


def test_reader_returns_frames_in_order() -> None:
    assert FrameReader().feed(STREAM) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_reader_gives_the_same_frames_split_at_every_byte(cut: int) -> None:
    reader = FrameReader()
    assert reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:]) == EXPECTED
    assert reader.buffered == 0


def test_reader_byte_by_byte() -> None:
    reader = FrameReader()
    got = []
    for i in range(len(STREAM)):
        got += reader.feed(STREAM[i : i + 1])
    assert got == EXPECTED


def test_reserved_bit_of_the_stream_id_is_ignored() -> None:
    frame = f.frame_header(0, f.DATA, 0, 0)[:5] + b"\x80\x00\x00\x03"
    assert FrameReader().feed(frame) == [(f.DATA, 0, 3, b"")]


def test_oversized_frame_refused_from_its_header_alone() -> None:
    reader = FrameReader(max_frame_size=16_384)
    header = f.frame_header(16_385, f.DATA, 0, 1)
    with pytest.raises(FrameError) as info:
        reader.feed(header)  # no payload needed: nothing of it is buffered
    assert info.value.code == f.FRAME_SIZE_ERROR and info.value.stream_id == 0
    assert reader.buffered == 0


def test_frame_at_the_limit_is_accepted() -> None:
    reader = FrameReader(max_frame_size=16_384)
    assert reader.feed(raw(f.DATA, 0, 1, b"a" * 16_384))[0][3] == b"a" * 16_384


# (parser, args, error code, stream error?)
BAD_PAYLOADS = [
    ("settings on a stream", f.parse_settings, (0, b"", 1), f.PROTOCOL_ERROR, False),
    ("settings ack with payload", f.parse_settings, (1, b"\0" * 6, 0), f.FRAME_SIZE_ERROR, False),
    ("settings length 5", f.parse_settings, (0, b"\0" * 5, 0), f.FRAME_SIZE_ERROR, False),
    ("enable_push 2", f.parse_settings, (0, b"\0\x02\0\0\0\x02", 0), f.PROTOCOL_ERROR, False),
    (
        "initial window 2^31",
        f.parse_settings,
        (0, b"\0\x04\x80\0\0\0", 0),
        f.FLOW_CONTROL_ERROR,
        False,
    ),
    (
        "max frame size small",
        f.parse_settings,
        (0, b"\0\x05\0\0\x3f\xff", 0),
        f.PROTOCOL_ERROR,
        False,
    ),
    ("max frame size big", f.parse_settings, (0, b"\0\x05\x01\0\0\0", 0), f.PROTOCOL_ERROR, False),
    ("window update length 3", f.parse_window_update, (b"\0\0\1", 1), f.FRAME_SIZE_ERROR, False),
    (
        "window update zero on stream",
        f.parse_window_update,
        (b"\0\0\0\0", 3),
        f.PROTOCOL_ERROR,
        True,
    ),
    (
        "window update zero on conn",
        f.parse_window_update,
        (b"\0\0\0\0", 0),
        f.PROTOCOL_ERROR,
        False,
    ),
    ("rst on stream 0", f.parse_rst_stream, (b"\0\0\0\0", 0), f.PROTOCOL_ERROR, False),
    ("rst length 5", f.parse_rst_stream, (b"\0" * 5, 1), f.FRAME_SIZE_ERROR, False),
    ("goaway on a stream", f.parse_goaway, (b"\0" * 8, 1), f.PROTOCOL_ERROR, False),
    ("goaway short", f.parse_goaway, (b"\0" * 7, 0), f.FRAME_SIZE_ERROR, False),
    ("ping on a stream", f.check_ping, (b"\0" * 8, 1), f.PROTOCOL_ERROR, False),
    ("ping length 7", f.check_ping, (b"\0" * 7, 0), f.FRAME_SIZE_ERROR, False),
    ("priority on itself", f.parse_priority_fields, (b"\0\0\0\x03\x10", 3), f.PROTOCOL_ERROR, True),
    ("padding too long", f.strip_padding, (f.FLAG_PADDED, b"\x05abc", 1), f.PROTOCOL_ERROR, False),
    ("padded and empty", f.strip_padding, (f.FLAG_PADDED, b"", 1), f.FRAME_SIZE_ERROR, False),
]


@pytest.mark.parametrize(("name", "parse", "args", "code", "on_stream"), BAD_PAYLOADS)
def test_bad_payloads_raise_the_rfc_error(
    name: str, parse: object, args: tuple[object, ...], code: int, on_stream: bool
) -> None:
    with pytest.raises(FrameError) as info:
        parse(*args)  # type: ignore[operator]
    assert info.value.code == code
    assert bool(info.value.stream_id) == on_stream


def test_good_payloads_parse() -> None:
    assert f.parse_settings(0, b"\0\x03\0\0\0\x64\0\x04\0\0\xff\xff", 0) == [(3, 100), (4, 65535)]
    assert f.parse_window_update(b"\x80\0\0\x05", 1) == 5  # reserved bit ignored
    assert f.parse_goaway(b"\0\0\0\x07\0\0\0\x0bcalm", 0) == (7, 11, b"calm")
    assert f.strip_padding(f.FLAG_PADDED, b"\x02abcPP", 1) == b"abc"
    assert f.parse_priority_fields(b"\x80\0\0\x01\x10", 3) == (1, True)


def test_long_header_blocks_are_split_into_continuations() -> None:
    block = bytes(range(256)) * 100
    out = b"".join(f.headers_frames(1, block, True, 16_384))
    parsed = FrameReader().feed(out)
    assert [(k, fl) for k, fl, _, _ in parsed] == [
        (f.HEADERS, f.FLAG_END_STREAM),
        (f.CONTINUATION, f.FLAG_END_HEADERS),
    ]
    assert b"".join(p for _, _, _, p in parsed) == block


def test_built_frames_match_hyperframe() -> None:
    hyperframe = pytest.importorskip("hyperframe.frame")
    assert (
        f.data_frame(3, b"abc", True)
        == hyperframe.DataFrame(3, data=b"abc", flags=["END_STREAM"]).serialize()
    )
    assert (
        f.goaway_frame(5, f.ENHANCE_YOUR_CALM, b"x")
        == hyperframe.GoAwayFrame(
            0, last_stream_id=5, error_code=11, additional_data=b"x"
        ).serialize()
    )
    assert (
        f.window_update_frame(0, 1000)
        == hyperframe.WindowUpdateFrame(0, window_increment=1000).serialize()
    )
    assert f.rst_stream_frame(1, f.CANCEL) == hyperframe.RstStreamFrame(1, error_code=8).serialize()
    assert (
        f.settings_frame([(3, 100)]) == hyperframe.SettingsFrame(0, settings={3: 100}).serialize()
    )
    assert f.SETTINGS_ACK == hyperframe.SettingsFrame(0, flags=["ACK"]).serialize()
    assert (
        f.ping_ack_frame(b"12345678")
        == hyperframe.PingFrame(0, opaque_data=b"12345678", flags=["ACK"]).serialize()
    )
