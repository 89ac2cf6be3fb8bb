"""HPACK: the RFC 7541 Appendix C examples, both ways, and the malformed and oversized blocks."""

from __future__ import annotations

import random

import pytest

from peregrine.http2.hpack import (
    HUFFMAN_CODES,
    HUFFMAN_LENGTHS,
    Decoder,
    Encoder,
    HPACKError,
    decode_integer,
    encode_integer,
    huffman_decode,
    huffman_encode,
)


def dehex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


REQ1 = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
REQ1 += [(b":authority", b"www.example.com")]
REQ2 = [*REQ1, (b"cache-control", b"no-cache")]
REQ3 = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html")]
REQ3 += [(b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
DATE1 = (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT")
LOCATION = (b"location", b"https://www.example.com")
RESP1 = [(b":status", b"302"), (b"cache-control", b"private"), DATE1, LOCATION]
RESP2 = [(b":status", b"307"), (b"cache-control", b"private"), DATE1, LOCATION]
RESP3 = [(b":status", b"200"), (b"cache-control", b"private")]
RESP3 += [(b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"), LOCATION, (b"content-encoding", b"gzip")]
RESP3 += [(b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")]

# (name, table size, huffman, [(block, fields, table size after)])  -- RFC 7541 C.3 to C.6
SEQUENCES = [
    (
        "C.3 requests without Huffman",
        4096,
        False,
        [
            ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQ1, 57),
            ("8286 84be 5808 6e6f 2d63 6163 6865", REQ2, 110),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                REQ3,
                164,
            ),
        ],
    ),
    (
        "C.4 requests with Huffman",
        4096,
        True,
        [
            ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ1, 57),
            ("8286 84be 5886 a8eb 1064 9cbf", REQ2, 110),
            ("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQ3, 164),
        ],
    ),
    (
        "C.5 responses without Huffman",
        256,
        False,
        [
            (
                """4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420
                3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77
                7777 2e65 7861 6d70 6c65 2e63 6f6d""",
                RESP1,
                222,
            ),
            ("4803 3330 37c1 c0bf", RESP2, 222),
            (
                """88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
                3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a
                584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33
                3630 303b 2076 6572 7369 6f6e 3d31""",
                RESP3,
                215,
            ),
        ],
    ),
    (
        "C.6 responses with Huffman",
        256,
        True,
        [
            (
                """4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81
                66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3""",
                RESP1,
                222,
            ),
            ("4883 640e ffc1 c0bf", RESP2, 222),
            (
                """88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a
                839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36
                72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07""",
                RESP3,
                215,
            ),
        ],
    ),
]


@pytest.mark.parametrize(("name", "size", "huffman", "steps"), SEQUENCES, ids=lambda v: v)
def test_rfc7541_examples_decode(
    name: str, size: int, huffman: bool, steps: list[tuple[str, list[tuple[bytes, bytes]], int]]
) -> None:
    decoder = Decoder(max_table_size=size)
    decoder.table.resize(size)
    for block, fields, table_size in steps:
        assert decoder.decode(dehex(block)) == (fields, True)
        assert decoder.table.size == table_size


@pytest.mark.parametrize(("name", "size", "huffman", "steps"), SEQUENCES, ids=lambda v: v)
def test_rfc7541_examples_encode(
    name: str, size: int, huffman: bool, steps: list[tuple[str, list[tuple[bytes, bytes]], int]]
) -> None:
    encoder = Encoder(max_table_size=size, huffman=huffman, never_index=frozenset())
    for block, fields, table_size in steps:
        assert encoder.encode(fields).hex() == dehex(block).hex()
        assert encoder.table.size == table_size


@pytest.mark.parametrize(
    ("block", "fields"),
    [
        ("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", "custom-key"),
        ("040c 2f73 616d 706c 652f 7061 7468", ":path"),
        ("1008 7061 7373 776f 7264 0673 6563 7265 74", "password"),
        ("82", ":method"),
    ],
)
def test_rfc7541_single_field_examples(block: str, fields: str) -> None:
    decoded, complete = Decoder().decode(dehex(block))
    assert complete and decoded[0][0] == fields.encode()


@pytest.mark.parametrize(
    ("value", "prefix", "encoded"),
    [(10, 5, "0a"), (1337, 5, "1f9a0a"), (42, 8, "2a"), (30, 5, "1e"), (31, 5, "1f00")],
)
def test_integers_round_trip(value: int, prefix: int, encoded: str) -> None:
    assert encode_integer(value, prefix).hex() == encoded
    assert decode_integer(dehex(encoded), 0, prefix) == (value, len(encoded) // 2)


def test_huffman_code_is_the_rfc_table() -> None:
    """Cross-check the canonical rebuild against the hpack package's copy of Appendix B."""
    constants = pytest.importorskip("hpack.huffman_constants")
    assert list(HUFFMAN_CODES) == list(constants.REQUEST_CODES)
    assert list(HUFFMAN_LENGTHS) == list(constants.REQUEST_CODES_LENGTH)


def test_huffman_round_trips_every_byte() -> None:
    rng = random.Random(7)
    for length in range(0, 300, 7):
        data = bytes(rng.randrange(256) for _ in range(length))
        assert huffman_decode(huffman_encode(data)) == data
    assert huffman_decode(huffman_encode(bytes(range(256)))) == bytes(range(256))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff\xff\xff\xff", "EOS inside the string"),
        (huffman_encode(b"a") + b"\xff", "padding of 8 bits or more"),
        (bytes([huffman_encode(b"0")[0] & 0xF8]), "padding not all ones"),
    ],
)
def test_bad_huffman_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(HPACKError):
        huffman_decode(data)


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ("80", "index 0"),
        ("be", "index past an empty dynamic table"),
        ("ff80808080808001", "integer too long"),
        ("1f", "integer cut short"),
        ("400a6375", "name string longer than the block"),
        ("0f2f05", "value string longer than the block"),
        ("3fe21f", "table size update above the advertised size"),
        ("8220", "table size update after a field"),
        ("40", "name missing"),
        ("4085ffffffffff00", "EOS in a Huffman name"),
    ],
)
def test_malformed_blocks_are_compression_errors(block: str, why: str) -> None:
    with pytest.raises(HPACKError):
        Decoder(max_table_size=4096).decode(dehex(block))


def test_table_size_update_at_block_start_evicts() -> None:
    decoder = Decoder()
    decoder.decode(dehex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    assert decoder.table.size == 55
    decoder.decode(dehex("20"))  # size 0: everything goes
    assert decoder.table.size == 0 and not decoder.table.entries
    with pytest.raises(HPACKError):
        decoder.decode(dehex("be"))


def test_header_list_limit_stops_collecting_but_keeps_the_table_in_step() -> None:
    """An HPACK bomb: one big entry referenced many times. Memory stays at the limit."""
    encoder = Encoder(huffman=False, never_index=frozenset())
    big = (b"x-bomb", b"v" * 3000)
    first = encoder.encode([big])
    repeated = encoder.encode([big] * 10_000)  # 10,000 one-byte references: 30 MB decoded
    assert len(repeated) == 10_000
    decoder = Decoder(max_header_list_size=16_384)
    assert decoder.decode(first) == ([big], True)
    fields, complete = decoder.decode(repeated)
    assert not complete and fields == []
    # the table is still in step: a following block decodes
    assert decoder.decode(encoder.encode([big, (b"a", b"b")])) == ([big, (b"a", b"b")], True)


def test_encoder_announces_a_smaller_table_and_stays_decodable() -> None:
    encoder = Encoder(huffman=None)
    decoder = Decoder()
    fields = [(b":status", b"200"), (b"server", b"peregrine"), (b"x-a", b"1" * 100)]
    assert decoder.decode(encoder.encode(fields)) == (fields, True)
    encoder.set_max_table_size(64)
    decoder.max_table_size = 64
    block = encoder.encode(fields)
    assert block[0] & 0xE0 == 0x20  # starts with a size update
    assert decoder.decode(block) == (fields, True)
    assert decoder.table.size <= 64


def test_sensitive_fields_are_never_indexed() -> None:
    encoder = Encoder(huffman=False)
    block = encoder.encode([(b"set-cookie", b"id=1")])
    assert block[0] & 0xF0 == 0x10
    assert encoder.table.size == 0


def test_encoder_and_decoder_agree_over_many_blocks() -> None:
    rng = random.Random(3)
    encoder = Encoder(max_table_size=512)
    decoder = Decoder(max_table_size=512)
    names = [b"content-type", b"x-id", b"date", b"etag", b"x-long"]
    for _ in range(300):
        fields = [
            (rng.choice(names), bytes(rng.randrange(32, 127) for _ in range(rng.randrange(60))))
            for _ in range(rng.randrange(1, 6))
        ]
        assert decoder.decode(encoder.encode(fields)) == (fields, True)
