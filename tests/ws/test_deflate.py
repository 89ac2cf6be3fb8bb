"""permessage-deflate (RFC 7692): negotiation and the codec, bytes only."""

from __future__ import annotations

import os
import zlib

import pytest

from peregrine.ws.deflate import DeflateParams, PerMessageDeflate, negotiate
from peregrine.ws.errors import InvalidPayload, MessageTooBig
from peregrine.ws.handshake import parse_extensions


def offer(header: str, **kwargs: object) -> str | None:
    params = negotiate(parse_extensions([header]), **kwargs)  # type: ignore[arg-type]
    return None if params is None else params.response_header()


def raw_compress(data: bytes, bits: int = 15) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class TestRFC7692Section7_1_Negotiation:
    @pytest.mark.parametrize(
        "header, expected",
        [
            ("permessage-deflate", "permessage-deflate"),
            # The client allows a client window limit: ask for our small one.
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; client_max_window_bits=12",
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                "permessage-deflate; client_max_window_bits=10",
            ),
            (
                "permessage-deflate; client_max_window_bits=15",
                "permessage-deflate; client_max_window_bits=12",
            ),
            (
                "permessage-deflate; server_max_window_bits=9",
                "permessage-deflate; server_max_window_bits=9",
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=8",
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                'permessage-deflate; server_max_window_bits="10"',
                "permessage-deflate; server_max_window_bits=10",
            ),
            # Offers are tried in order: the first acceptable one wins.
            (
                "permessage-deflate; foo, permessage-deflate; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover",
            ),
            ("x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"),
            # Declined offers.
            ("permessage-deflate; foo", None),
            ("permessage-deflate; server_max_window_bits", None),  # needs a value
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=010", None),
            ("permessage-deflate; client_max_window_bits=7", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
            ("x-webkit-deflate-frame", None),
            ("", None),
        ],
    )
    def test_offers(self, header: str, expected: str | None) -> None:
        assert offer(header) == expected

    def test_full_window_configured(self) -> None:
        assert (
            offer("permessage-deflate; client_max_window_bits", window_bits=15)
            == "permessage-deflate"
        )

    def test_server_may_choose_no_context_takeover(self) -> None:
        assert (
            offer("permessage-deflate", server_no_context_takeover=True)
            == "permessage-deflate; server_no_context_takeover"
        )


class TestRFC7692Section7_2_3_Examples:
    """The examples of section 7.2.3, and what follows from them."""

    def test_compress_hello(self) -> None:
        assert PerMessageDeflate(DeflateParams()).compress(b"Hello") == bytes.fromhex(
            "f248cdc9c90700"
        )

    def test_sharing_the_window(self) -> None:
        codec = PerMessageDeflate(DeflateParams())
        assert codec.compress(b"Hello") == bytes.fromhex("f248cdc9c90700")
        assert codec.compress(b"Hello") == bytes.fromhex("f200110000")

    def test_no_context_takeover_repeats_itself(self) -> None:
        codec = PerMessageDeflate(DeflateParams(server_no_context_takeover=True))
        assert (
            codec.compress(b"Hello") == codec.compress(b"Hello") == bytes.fromhex("f248cdc9c90700")
        )

    @pytest.mark.parametrize(
        "payload",
        [
            "f248cdc9c90700",  # 7.2.3.1
            "000500faff48656c6c6f",  # 7.2.3.3: a stored (uncompressed) block
            "f348cdc9c9070000",  # 7.2.3.4: BFINAL set
        ],
    )
    def test_decompress(self, payload: str) -> None:
        codec = PerMessageDeflate(DeflateParams())
        assert codec.decompress(bytes.fromhex(payload), fin=True, max_length=100) == b"Hello"

    def test_decompress_shared_window(self) -> None:
        codec = PerMessageDeflate(DeflateParams())
        assert (
            codec.decompress(bytes.fromhex("f248cdc9c90700"), fin=True, max_length=100) == b"Hello"
        )
        assert codec.decompress(bytes.fromhex("f200110000"), fin=True, max_length=100) == b"Hello"

    def test_two_blocks_in_one_message(self) -> None:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = (
            comp.compress(b"He")
            + comp.flush(zlib.Z_SYNC_FLUSH)
            + comp.compress(b"llo")
            + comp.flush(zlib.Z_SYNC_FLUSH)
        )
        codec = PerMessageDeflate(DeflateParams())
        assert codec.decompress(data[:-4], fin=True, max_length=100) == b"Hello"

    @pytest.mark.parametrize("trailer", [b"hello", b"\x00"])
    def test_data_after_a_final_block_is_invalid(self, trailer: bytes) -> None:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        extra = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = comp.compress(b"Hello") + comp.flush(zlib.Z_FINISH)
        data += (extra.compress(trailer) + extra.flush(zlib.Z_SYNC_FLUSH))[:-4]
        codec = PerMessageDeflate(DeflateParams())
        with pytest.raises(InvalidPayload):
            codec.decompress(data, fin=True, max_length=100)
        # the codec starts afresh after the failure
        assert (
            codec.decompress(bytes.fromhex("f248cdc9c90700"), fin=True, max_length=100) == b"Hello"
        )

    def test_empty_blocks_after_a_final_block_are_fine(self) -> None:
        codec = PerMessageDeflate(DeflateParams())
        final = bytes.fromhex("f348cdc9c90700")
        assert (
            codec.decompress(final + b"\x00\x00\x00\xff\xff\x00", fin=True, max_length=100)
            == b"Hello"
        )

    def test_after_a_final_block_the_next_message_starts_fresh(self) -> None:
        codec = PerMessageDeflate(DeflateParams())
        final = bytes.fromhex("f348cdc9c9070000")
        assert codec.decompress(final, fin=True, max_length=100) == b"Hello"
        assert codec.decompress(final, fin=True, max_length=100) == b"Hello"


class TestRFC7692Section7_2_Codec:
    @pytest.mark.parametrize(
        "params",
        [
            DeflateParams(),
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
            DeflateParams(server_max_window_bits=9, client_max_window_bits=9),
        ],
    )
    def test_round_trip_many_messages(self, params: DeflateParams) -> None:
        sender = PerMessageDeflate(params)
        # The receiver of the server's messages is a client honouring the same parameters.
        receiver = PerMessageDeflate(
            DeflateParams(
                client_no_context_takeover=params.server_no_context_takeover,
                client_max_window_bits=params.server_max_window_bits,
            )
        )
        for i in range(20):
            message = os.urandom(i * 50) + b"repetitive text " * i
            assert (
                receiver.decompress(sender.compress(message), fin=True, max_length=1 << 20)
                == message
            )

    def test_empty_message(self) -> None:
        codec = PerMessageDeflate(DeflateParams())
        assert codec.compress(b"") == b"\x00"
        assert codec.decompress(b"\x00", fin=True, max_length=10) == b""

    def test_window_of_8_bits_is_compatible(self) -> None:
        # zlib has no 8-bit raw deflate window; 9 bits must still decode with an 8-bit window.
        codec = PerMessageDeflate(DeflateParams(server_max_window_bits=8))
        message = os.urandom(300) * 5
        data = codec.compress(message)
        inflater = zlib.decompressobj(-8)
        assert inflater.decompress(data + b"\x00\x00\xff\xff") == message

    def test_fragmented_message(self) -> None:
        message = b"fragmented " * 1000
        data = raw_compress(message)
        codec = PerMessageDeflate(DeflateParams())
        parts = [data[i : i + 100] for i in range(0, len(data), 100)]
        out = b"".join(
            codec.decompress(part, fin=i == len(parts) - 1, max_length=len(message))
            for i, part in enumerate(parts)
        )
        assert out == message

    def test_corrupt_data(self) -> None:
        with pytest.raises(InvalidPayload):
            PerMessageDeflate(DeflateParams()).decompress(
                b"\xff\xff\xff\xff", fin=True, max_length=100
            )


class TestDecompressionLimits:
    def test_bomb_is_stopped_at_the_limit(self) -> None:
        bomb = raw_compress(bytes(16 * 1024 * 1024))  # 16 MiB of zeros in ~16 KB: 16x the limit
        assert len(bomb) < 20_000
        with pytest.raises(MessageTooBig):
            PerMessageDeflate(DeflateParams()).decompress(bomb, fin=True, max_length=1024 * 1024)

    @pytest.mark.parametrize(
        "size, limit, ok", [(1000, 1000, True), (1001, 1000, False), (1, 0, False), (0, 0, True)]
    )
    def test_exact_limit(self, size: int, limit: int, ok: bool) -> None:
        data = raw_compress(b"a" * size)
        codec = PerMessageDeflate(DeflateParams())
        if ok:
            assert codec.decompress(data, fin=True, max_length=limit) == b"a" * size
        else:
            with pytest.raises(MessageTooBig):
                codec.decompress(data, fin=True, max_length=limit)

    def test_no_context_takeover_frees_state(self) -> None:
        codec = PerMessageDeflate(
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True)
        )
        codec.decompress(codec.compress(b"x" * 100), fin=True, max_length=100)
        assert codec._compressor is None and codec._decompressor is None
