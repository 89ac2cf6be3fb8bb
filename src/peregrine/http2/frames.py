"""HTTP/2 framing (RFC 9113 §4 and §6): split a byte stream into frames, build server frames.

No I/O. :class:`FrameReader` takes bytes as they arrive and hands out complete frames as
``(type, flags, stream_id, payload)`` tuples, refusing one larger than the receiver's
``SETTINGS_MAX_FRAME_SIZE`` before buffering it. The ``parse_*`` helpers check the fixed-size
payloads and padding; the ``*_frame`` helpers build the bytes of the frames a server sends.
Every malformed frame raises :class:`FrameError` with the RFC 9113 §7 error code it calls for.
"""

from __future__ import annotations

import struct

# --- frame types (RFC 9113 §6) --------------------------------------------------------------------
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# --- flags ------------------------------------------------------------------------------------------
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

# --- error codes (RFC 9113 §7) ----------------------------------------------------------------------
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

ERROR_NAMES = {
    NO_ERROR: "NO_ERROR",
    PROTOCOL_ERROR: "PROTOCOL_ERROR",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR",
    SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
    STREAM_CLOSED: "STREAM_CLOSED",
    FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR",
    REFUSED_STREAM: "REFUSED_STREAM",
    CANCEL: "CANCEL",
    COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR",
    ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY",
    HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}

# --- settings (RFC 9113 §6.5.2) ---------------------------------------------------------------------
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

#: the client connection preface (RFC 9113 §3.4)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_SIZE = 9
#: SETTINGS_MAX_FRAME_SIZE bounds (RFC 9113 §6.5.2); the smallest is also everyone's default
MIN_MAX_FRAME_SIZE = 16_384
MAX_MAX_FRAME_SIZE = 16_777_215
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535

_header = struct.Struct("!HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_header_unpack = _header.unpack_from
_u32 = struct.Struct("!L")
_u32_unpack = _u32.unpack_from
_goaway = struct.Struct("!LL")
_setting = struct.Struct("!HL")
_STREAM_MASK = 0x7FFF_FFFF


class FrameError(Exception):
    """A frame the RFC calls an error: ``code`` is the RFC 9113 §7 error code.

    ``stream_id`` is non-zero for a stream error (RST_STREAM on that stream); zero means a
    connection error (GOAWAY, then close).
    """

    def __init__(self, code: int, detail: str, stream_id: int = 0) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.stream_id = stream_id

    def __repr__(self) -> str:
        name = ERROR_NAMES.get(self.code, hex(self.code))
        return f"FrameError({name}, {self.detail!r}, stream_id={self.stream_id})"


Frame = tuple[int, int, int, bytes]  # type, flags, stream id, payload


class FrameReader:
    """Cuts a byte stream into frames; ``max_frame_size`` is what we advertised.

    A frame header announcing more than ``max_frame_size`` raises ``FRAME_SIZE_ERROR`` at once,
    before any of its payload is buffered: memory stays bounded by one frame.
    """

    __slots__ = ("max_frame_size", "_buffer", "_offset")

    def __init__(self, max_frame_size: int = MIN_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = b""
        self._offset = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer) - self._offset

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; every frame it completes, in order."""
        buffer = self._buffer
        offset = self._offset
        if offset < len(buffer):
            buffer = buffer[offset:] + data
        else:
            buffer = data
        offset = 0
        end = len(buffer)
        frames: list[Frame] = []
        max_size = self.max_frame_size
        while end - offset >= FRAME_HEADER_SIZE:
            high, low, kind, flags, stream_id = _header_unpack(buffer, offset)
            length = (high << 8) | low
            if length > max_size:
                self._buffer = b""
                self._offset = 0
                raise FrameError(
                    FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds the maximum {max_size}"
                )
            stop = offset + FRAME_HEADER_SIZE + length
            if stop > end:
                break
            frames.append(
                (kind, flags, stream_id & _STREAM_MASK, buffer[offset + FRAME_HEADER_SIZE : stop])
            )
            offset = stop
        if offset >= end:
            self._buffer = b""
            self._offset = 0
        else:
            self._buffer = buffer
            self._offset = offset
        return frames


# --- payload parsers ------------------------------------------------------------------------------


def strip_padding(flags: int, payload: bytes, stream_id: int) -> bytes:
    """The payload of a DATA or HEADERS frame without its Pad Length byte and padding."""
    if not flags & FLAG_PADDED:
        return payload
    if not payload:
        raise FrameError(FRAME_SIZE_ERROR, "padded frame without a Pad Length byte")
    pad = payload[0]
    if pad >= len(payload):
        # RFC 9113 §6.1: padding as long as the payload or longer is a PROTOCOL_ERROR
        raise FrameError(PROTOCOL_ERROR, "padding exceeds the frame payload")
    return payload[1 : len(payload) - pad]


def parse_priority_fields(payload: bytes, stream_id: int) -> tuple[int, bool]:
    """``(dependency, exclusive)`` of a 5-byte priority block; self-dependency is an error."""
    if len(payload) < 5:
        raise FrameError(FRAME_SIZE_ERROR, "priority block shorter than 5 bytes", stream_id)
    word = _u32_unpack(payload)[0]
    dependency = word & _STREAM_MASK
    if dependency == stream_id:
        # RFC 9113 §5.3.1: a stream cannot depend on itself (a stream error)
        raise FrameError(PROTOCOL_ERROR, "stream depends on itself", stream_id)
    return dependency, bool(word >> 31)


def parse_settings(flags: int, payload: bytes, stream_id: int) -> list[tuple[int, int]]:
    """The ``(identifier, value)`` pairs of a SETTINGS frame, values checked (RFC 9113 §6.5)."""
    if stream_id:
        raise FrameError(PROTOCOL_ERROR, "SETTINGS on a stream")
    if flags & FLAG_ACK:
        if payload:
            raise FrameError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
        return []
    if len(payload) % 6:
        raise FrameError(FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6 bytes")
    pairs = list(_setting.iter_unpack(payload))
    for identifier, value in pairs:
        if identifier == SETTINGS_ENABLE_PUSH and value > 1:
            raise FrameError(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
        if identifier == SETTINGS_INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise FrameError(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
        if identifier == SETTINGS_MAX_FRAME_SIZE and not (
            MIN_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE
        ):
            raise FrameError(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
    return pairs


def parse_window_update(payload: bytes, stream_id: int) -> int:
    """The window increment; zero is a stream error (or a connection error on stream 0)."""
    if len(payload) != 4:
        raise FrameError(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload not 4 bytes")
    increment = int(_u32_unpack(payload)[0]) & _STREAM_MASK
    if not increment:
        raise FrameError(PROTOCOL_ERROR, "WINDOW_UPDATE with a zero increment", stream_id)
    return increment


def parse_rst_stream(payload: bytes, stream_id: int) -> int:
    """The error code of a RST_STREAM frame."""
    if not stream_id:
        raise FrameError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
    if len(payload) != 4:
        raise FrameError(FRAME_SIZE_ERROR, "RST_STREAM payload not 4 bytes")
    return int(_u32_unpack(payload)[0])


def parse_goaway(payload: bytes, stream_id: int) -> tuple[int, int, bytes]:
    """``(last_stream_id, error_code, debug_data)`` of a GOAWAY frame."""
    if stream_id:
        raise FrameError(PROTOCOL_ERROR, "GOAWAY on a stream")
    if len(payload) < 8:
        raise FrameError(FRAME_SIZE_ERROR, "GOAWAY payload shorter than 8 bytes")
    last, code = _goaway.unpack_from(payload)
    return last & _STREAM_MASK, code, payload[8:]


def check_ping(payload: bytes, stream_id: int) -> None:
    """PING belongs to stream 0 and carries exactly 8 bytes."""
    if stream_id:
        raise FrameError(PROTOCOL_ERROR, "PING on a stream")
    if len(payload) != 8:
        raise FrameError(FRAME_SIZE_ERROR, "PING payload not 8 bytes")


# --- serializers ----------------------------------------------------------------------------------


def frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    """The 9-byte header of a frame."""
    return _header.pack(length >> 8, length & 0xFF, kind, flags, stream_id)


def data_frame(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
    """One DATA frame (the caller keeps ``data`` within the peer's max frame size)."""
    return (
        _header.pack(
            len(data) >> 8, len(data) & 0xFF, DATA, FLAG_END_STREAM if end_stream else 0, stream_id
        )
        + data
    )


def headers_frames(
    stream_id: int, block: bytes, end_stream: bool, max_frame_size: int
) -> list[bytes]:
    """A HEADERS frame, followed by CONTINUATION frames when ``block`` exceeds one frame."""
    flags = FLAG_END_STREAM if end_stream else 0
    if len(block) <= max_frame_size:
        return [frame_header(len(block), HEADERS, flags | FLAG_END_HEADERS, stream_id), block]
    pieces = [block[i : i + max_frame_size] for i in range(0, len(block), max_frame_size)]
    out = [frame_header(len(pieces[0]), HEADERS, flags, stream_id), pieces[0]]
    for index, piece in enumerate(pieces[1:], 2):
        last = FLAG_END_HEADERS if index == len(pieces) else 0
        out += (frame_header(len(piece), CONTINUATION, last, stream_id), piece)
    return out


def settings_frame(settings: list[tuple[int, int]]) -> bytes:
    """A SETTINGS frame with these ``(identifier, value)`` pairs."""
    payload = b"".join(_setting.pack(identifier, value) for identifier, value in settings)
    return frame_header(len(payload), SETTINGS, 0, 0) + payload


SETTINGS_ACK = frame_header(0, SETTINGS, FLAG_ACK, 0)


def ping_ack_frame(opaque: bytes) -> bytes:
    """The answer to a PING: the same 8 bytes, with ACK."""
    return frame_header(8, PING, FLAG_ACK, 0) + opaque


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    """A RST_STREAM frame."""
    return frame_header(4, RST_STREAM, 0, stream_id) + _u32.pack(code)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame (stream 0: the connection window)."""
    return frame_header(4, WINDOW_UPDATE, 0, stream_id) + _u32.pack(increment)


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    """A GOAWAY frame."""
    return frame_header(8 + len(debug), GOAWAY, 0, 0) + _goaway.pack(last_stream_id, code) + debug
