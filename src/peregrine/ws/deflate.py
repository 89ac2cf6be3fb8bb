"""permessage-deflate (RFC 7692): offer negotiation and the per-connection codec.

Memory is what a compressing server runs out of first (every open connection holds a
deflate and an inflate state while context takeover is on), so the defaults are frugal:
a 4 KiB compression window (12 bits) and memLevel 5 instead of zlib's 32 KiB and 8, and
clients that allow it are asked to use the same small window, which shrinks our inflate
state as well. Both states are created on first use, and without context takeover they
are dropped after every message.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InvalidPayload, MessageTooBig

__all__ = [
    "EXTENSION_NAME",
    "DeflateParams",
    "negotiate",
    "PerMessageDeflate",
]

EXTENSION_NAME = "permessage-deflate"

# Each message's compressed data ends with an empty stored block from a sync flush;
# senders strip these 4 bytes and receivers put them back (RFC 7692 section 7.2.1-2).
_TAIL = b"\x00\x00\xff\xff"

_MIN_BITS = 8
_MAX_BITS = 15


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The agreed parameters of one connection (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    #: Window bits the server compresses with (announced only if the client asked).
    server_max_window_bits: int = _MAX_BITS
    #: Window bits the client compresses with, hence our inflate window.
    client_max_window_bits: int = _MAX_BITS
    #: Whether `server_max_window_bits` goes into the response (only if it was offered).
    announce_server_bits: bool = False
    #: Whether `client_max_window_bits` goes into the response (only if it was offered).
    announce_client_bits: bool = False

    def response_header(self) -> str:
        """The Sec-WebSocket-Extensions value that accepts this negotiation."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.announce_server_bits:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.announce_client_bits:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


def _window_bits(value: str | None) -> int | None:
    """Parse a max_window_bits value: 1*DIGIT in 8..15 without leading zeros (section 7.1.2)."""
    if value is None or not value.isdigit() or len(value) > 2 or value[0] == "0":
        return None
    bits = int(value)
    return bits if _MIN_BITS <= bits <= _MAX_BITS else None


def _accept_offer(
    params: Sequence[tuple[str, str | None]],
    *,
    window_bits: int,
    server_no_context_takeover: bool,
) -> DeflateParams | None:
    """Return the parameters accepting one offer, or None to decline it."""
    seen: set[str] = set()
    server_nct = server_no_context_takeover
    client_nct = False
    server_bits = window_bits
    announce_server = False
    client_bits = _MAX_BITS
    announce_client = False
    for name, value in params:
        name = name.lower()
        if name in seen:
            return None  # a repeated parameter makes the offer invalid (section 7)
        seen.add(name)
        if name == "server_no_context_takeover":
            if value is not None:
                return None
            server_nct = True
        elif name == "client_no_context_takeover":
            if value is not None:
                return None
            # A hint that the client will reset its context; echoing it makes it binding,
            # which lets us drop the inflate state between messages.
            client_nct = True
        elif name == "server_max_window_bits":
            bits = _window_bits(value)
            if bits is None:
                return None
            server_bits = min(bits, window_bits)
            announce_server = True
        elif name == "client_max_window_bits":
            if value is None:
                # The client accepts a limit; ask for our (smaller) window if it is one.
                client_bits = window_bits
                announce_client = window_bits < _MAX_BITS
            else:
                bits = _window_bits(value)
                if bits is None:
                    return None
                client_bits = min(bits, window_bits)
                announce_client = True
        else:
            return None  # unknown parameter: decline this offer
    return DeflateParams(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        announce_server_bits=announce_server,
        announce_client_bits=announce_client,
    )


def negotiate(
    extensions: Iterable[tuple[str, Sequence[tuple[str, str | None]]]],
    *,
    window_bits: int = 12,
    server_no_context_takeover: bool = False,
) -> DeflateParams | None:
    """Accept the first acceptable permessage-deflate offer, in the client's order.

    `extensions` are parsed Sec-WebSocket-Extensions entries (see
    `handshake.parse_extensions`); other extensions are ignored. `window_bits` caps both
    directions' windows where the client lets us choose. Returns None when every offer
    is declined (or none was made): the connection then runs uncompressed.
    """
    for name, params in extensions:
        if name.lower() != EXTENSION_NAME:
            continue
        accepted = _accept_offer(
            params, window_bits=window_bits, server_no_context_takeover=server_no_context_takeover
        )
        if accepted is not None:
            return accepted
    return None


class PerMessageDeflate:
    """Compressor and decompressor of one connection, given the agreed parameters."""

    __slots__ = (
        "params",
        "level",
        "mem_level",
        "_deflate_bits",
        "_inflate_bits",
        "_compressor",
        "_decompressor",
        "_trailer",
    )

    def __init__(self, params: DeflateParams, *, level: int = 6, mem_level: int = 5) -> None:
        self.params = params
        self.level = level
        self.mem_level = mem_level
        # zlib refuses an 8-bit window for raw deflate; 9 is safe for an 8-bit peer because
        # zlib never emits a distance beyond window - 262 bytes (here 250 < 256).
        self._deflate_bits = max(params.server_max_window_bits, 9)
        self._inflate_bits = params.client_max_window_bits
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        # Set once a final block ended the current message's deflate stream: what follows
        # in the message goes through it and may only be blocks that add nothing.
        self._trailer: zlib._Decompress | None = None

    def compress(self, data: bytes) -> bytes:
        """Compress one whole message; the result is the payload of a frame with RSV1 set."""
        comp = self._compressor
        if comp is None:
            comp = zlib.compressobj(self.level, zlib.DEFLATED, -self._deflate_bits, self.mem_level)
        out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
        # Without context takeover the next message starts from scratch: dropping the
        # state (instead of keeping it) also frees its memory while the connection idles.
        self._compressor = None if self.params.server_no_context_takeover else comp
        return out[:-4] if out.endswith(_TAIL) else out

    def decompress(self, data: bytes, *, fin: bool, max_length: int) -> bytes:
        """Decompress the payload of one frame of a compressed message.

        Frames are decompressed as they arrive so that UTF-8 can be validated early and
        memory stays bounded: at most `max_length` bytes are produced (the room left in the
        message), beyond which MessageTooBig is raised before anything larger is allocated
        (a decompression bomb costs us max_length bytes, not its expanded size). `fin`
        marks the message's last frame. Corrupt data raises InvalidPayload (1007).
        """
        decomp = self._decompressor
        if decomp is None:
            decomp = self._decompressor = zlib.decompressobj(-self._inflate_bits)
        try:
            if self._trailer is not None:
                out = b""
                self._check_trailer(data)
            else:
                # zlib reads max_length=0 as "no limit", so always ask for at least one byte.
                out = decomp.decompress(data, max_length + 1)
                if decomp.unconsumed_tail or len(out) > max_length:
                    raise MessageTooBig("decompressed message exceeds the size limit")
                if decomp.eof:
                    # A final block ended the stream. RFC 7692 7.2.3.4 lets one be followed
                    # by an empty stored block (completed by the 4-byte tail); zlib sets
                    # whatever follows aside, and dropping data there would truncate the
                    # message without a word: it may only be blocks that add nothing.
                    self._trailer = zlib.decompressobj(-_MAX_BITS)
                    self._check_trailer(decomp.unused_data)
            if fin:
                if self._trailer is not None:
                    self._check_trailer(_TAIL)
                else:
                    # Put back the empty stored block the sender stripped (section 7.2.2).
                    room = max_length - len(out)
                    rest = decomp.decompress(_TAIL, room + 1)
                    if decomp.unconsumed_tail or len(rest) > room:
                        raise MessageTooBig("decompressed message exceeds the size limit")
                    if rest:
                        out += rest
        except zlib.error:
            self._reset_inflate()
            raise InvalidPayload("invalid compressed data") from None
        except InvalidPayload:
            self._reset_inflate()
            raise
        if fin and (self.params.client_no_context_takeover or self._trailer is not None):
            # No context to keep (or the peer ended the deflate stream with a final block):
            # the next message starts a fresh stream.
            self._reset_inflate()
        return out

    def _check_trailer(self, data: bytes) -> None:
        """Feed bytes that follow the final block; InvalidPayload unless they add nothing."""
        trailer = self._trailer
        assert trailer is not None
        if not data:
            return
        if trailer.eof:
            raise InvalidPayload("compressed data after the final deflate block")
        if trailer.decompress(data, 1) or trailer.unconsumed_tail or trailer.unused_data:
            raise InvalidPayload("compressed data after the final deflate block")

    def _reset_inflate(self) -> None:
        self._decompressor = None
        self._trailer = None
