"""HPACK (RFC 7541): header compression for HTTP/2, encoder and decoder.

No I/O. :class:`Decoder` turns a header block into ``(name, value)`` bytes pairs, keeping the
dynamic table the peer's encoder drives, within the table size we advertised; it stops collecting
fields once the decoded list passes ``max_header_list_size`` (measured as RFC 9113 §6.5.2 does:
name + value + 32 per field) but keeps decoding the block, so the table stays in step with the
peer's. :class:`Encoder` builds blocks for our responses, indexing fields in its own dynamic table.
Every malformed block raises :class:`HPACKError` (a connection error COMPRESSION_ERROR).

Huffman coding (Appendix B): the code is canonical, so it is rebuilt from the code lengths alone;
decoding walks a 4-bit state machine made from it at import.
"""

from __future__ import annotations

from collections import deque


class HPACKError(Exception):
    """A header block that cannot be decoded (COMPRESSION_ERROR)."""


# --- static table (Appendix A) ------------------------------------------------------------------

STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    *(
        (name.encode(), b"")
        for name in (
            "accept-language accept-ranges accept access-control-allow-origin age allow "
            "authorization cache-control content-disposition content-encoding content-language "
            "content-length content-location content-range content-type cookie date etag expect "
            "expires from host if-match if-modified-since if-none-match if-range "
            "if-unmodified-since last-modified link location max-forwards proxy-authenticate "
            "proxy-authorization range referer refresh retry-after server set-cookie "
            "strict-transport-security transfer-encoding user-agent vary via www-authenticate"
        ).split()
    ),
)
assert len(STATIC_TABLE) == 61
_STATIC_LEN = len(STATIC_TABLE)
_STATIC_FULL: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(STATIC_TABLE, 1):
    _STATIC_FULL.setdefault((_name, _value), _index)
    _STATIC_NAME.setdefault(_name, _index)
ENTRY_OVERHEAD = 32  # RFC 7541 §4.1

# --- Huffman code (Appendix B) ----------------------------------------------------------------------

# Code length in bits of symbols 0..256 (256 is EOS), two hex digits each, from Appendix B.
_LENGTHS_HEX = (
    "0d171c1c1c1c1c1c1c181e1c1c1e1c1c1c1c1c1c1c1c1e1c1c1c1c1c1c1c1c1c060a0a0c0d06080b0a0a080b08"
    "0606060505050606060606060607080f060c0a0d06070707070707070707070707070707070707070707070807"
    "080d130d0e060f05060506050606060507070606060506070605050607070707070f0b0e0d1c14161414161616"
    "1716171717171718171818161718171717171516171617171816151416161717151716161815161717151516"
    "151716171714161616171616171a1a1413161716191a1a1a1b1b1a181913151a1b1b1a1b1815151a1a1c1b1b"
    "1b14181415161515171616191918181a171a1b1a1a1b1b1b1b1b1c1b1b1b1b1b1a1e"
)
HUFFMAN_LENGTHS: tuple[int, ...] = tuple(bytes.fromhex(_LENGTHS_HEX))
assert len(HUFFMAN_LENGTHS) == 257
_EOS = 256


def _canonical_codes(lengths: tuple[int, ...]) -> list[int]:
    """Codes of a canonical Huffman code: shorter first, ties by symbol value, counting up."""
    codes = [0] * len(lengths)
    code = -1
    previous = 0
    for symbol in sorted(range(len(lengths)), key=lambda s: (lengths[s], s)):
        code = (code + 1) << (lengths[symbol] - previous)
        previous = lengths[symbol]
        codes[symbol] = code
    return codes


HUFFMAN_CODES: tuple[int, ...] = tuple(_canonical_codes(HUFFMAN_LENGTHS))


def _decoder_table() -> tuple[list[int], list[bool]]:
    """The 4-bit state machine: ``table[state * 16 + nibble]`` and the accepting states.

    States are the internal nodes of the code tree (0 is the root). An entry packs the next
    state (bits 9+) and the symbol completed on the way plus one (bits 0-8, 0 for none); -1
    means the nibble reaches EOS, which must not appear in a string (RFC 7541 §5.2). At most one
    symbol ends within 4 bits, since no code is shorter than 5. A state accepts the end of a
    string when the bits since the last symbol are all ones and fewer than 8 (the padding rule).
    """
    children: list[list[int]] = [
        [-1, -1]
    ]  # >= 0: internal node; -1: none yet; <= -2: leaf -(symbol + 2)
    for symbol, (code, length) in enumerate(zip(HUFFMAN_CODES, HUFFMAN_LENGTHS, strict=True)):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if children[node][bit] == -1:
                children.append([-1, -1])
                children[node][bit] = len(children) - 1
            node = children[node][bit]
        children[node][code & 1] = -(symbol + 1) - 1  # leaves are <= -2
    depth_of_ones = [-1] * len(children)
    node, depth = 0, 0
    while node >= 0:
        depth_of_ones[node] = depth
        node, depth = children[node][1], depth + 1
    accepting = [0 <= d <= 7 for d in depth_of_ones]
    table = [0] * (len(children) * 16)
    for state in range(len(children)):
        for nibble in range(16):
            node, emitted, failed = state, 0, False
            for shift in (3, 2, 1, 0):
                nxt = children[node][(nibble >> shift) & 1]
                if nxt >= 0:
                    node = nxt
                    continue
                symbol = -nxt - 2
                if symbol == _EOS:
                    failed = True
                    break
                emitted = symbol + 1
                node = 0
            table[state * 16 + nibble] = -1 if failed else (node << 9) | emitted
    return table, accepting


_HUFFMAN_TABLE, _HUFFMAN_ACCEPTING = _decoder_table()


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string; raises HPACKError on EOS or bad padding."""
    table = _HUFFMAN_TABLE
    out = bytearray()
    append = out.append
    state = 0
    for byte in data:
        entry = table[(state << 4) | (byte >> 4)]
        if entry < 0:
            raise HPACKError("EOS symbol in a Huffman string")
        if entry & 0x1FF:
            append((entry & 0x1FF) - 1)
        entry = table[(entry >> 5 & ~0xF) | (byte & 0xF)]
        if entry < 0:
            raise HPACKError("EOS symbol in a Huffman string")
        if entry & 0x1FF:
            append((entry & 0x1FF) - 1)
        state = entry >> 9
    if not _HUFFMAN_ACCEPTING[state]:
        raise HPACKError("invalid Huffman padding")
    return bytes(out)


def huffman_encode(data: bytes) -> bytes:
    """Huffman-code ``data``, padded with the most significant bits of EOS (all ones)."""
    codes, lengths = HUFFMAN_CODES, HUFFMAN_LENGTHS
    acc = 0
    bits = 0
    for byte in data:
        length = lengths[byte]
        acc = (acc << length) | codes[byte]
        bits += length
    pad = -bits % 8
    acc = (acc << pad) | ((1 << pad) - 1)
    return acc.to_bytes((bits + pad) // 8, "big")


def huffman_length(data: bytes) -> int:
    """Bytes ``data`` takes Huffman-coded."""
    return (sum(map(HUFFMAN_LENGTHS.__getitem__, data)) + 7) // 8


# --- primitives (§5) ----------------------------------------------------------------------------

_MAX_INT_BYTES = 5  # continuation bytes accepted: 2^35, far past any legitimate value


def encode_integer(value: int, prefix_bits: int, first_byte: int = 0) -> bytes:
    """An integer with an N-bit prefix (§5.1); ``first_byte`` carries the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first_byte | value,))
    out = bytearray((first_byte | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """``(value, next position)`` of the integer starting at ``data[pos]`` (§5.1)."""
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    end = len(data)
    for _ in range(_MAX_INT_BYTES):
        if pos >= end:
            raise HPACKError("integer runs past the end of the block")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise HPACKError("integer too long")


def encode_string(data: bytes, huffman: bool | None = None) -> bytes:
    """A string literal (§5.2); ``huffman`` None picks whichever is shorter."""
    if huffman is None:
        huffman = huffman_length(data) < len(data)
    if huffman:
        coded = huffman_encode(data)
        return encode_integer(len(coded), 7, 0x80) + coded
    return encode_integer(len(data), 7) + data


def _decode_string(data: bytes, pos: int) -> tuple[bytes, int]:
    first = data[pos] if pos < len(data) else -1
    if first < 0:
        raise HPACKError("string missing at the end of the block")
    length, pos = decode_integer(data, pos, 7)
    end = pos + length
    if end > len(data):
        raise HPACKError("string runs past the end of the block")
    if first & 0x80:
        return huffman_decode(data[pos:end]), end
    return data[pos:end], end


# --- the dynamic table (§2.3, §4) ---------------------------------------------------------------


class _DynamicTable:
    """Entries newest first; ``size`` counts name + value + 32 per entry (§4.1)."""

    __slots__ = ("entries", "size", "max_size", "version")

    def __init__(self, max_size: int) -> None:
        self.entries: deque[tuple[bytes, bytes]] = deque()
        self.size = 0
        self.max_size = max_size
        #: counts changes: what was computed from the table holds while it stays the same
        self.version = 0

    def add(self, name: bytes, value: bytes) -> int:
        """Insert (evicting the oldest as needed); returns how many entries were evicted."""
        self.version += 1
        entry_size = len(name) + len(value) + ENTRY_OVERHEAD
        evicted = 0
        entries = self.entries
        while entries and self.size + entry_size > self.max_size:
            old_name, old_value = entries.pop()
            self.size -= len(old_name) + len(old_value) + ENTRY_OVERHEAD
            evicted += 1
        if entry_size <= self.max_size:
            entries.appendleft((name, value))
            self.size += entry_size
        # an entry larger than the table empties it and is not added (§4.4)
        return evicted

    def resize(self, max_size: int) -> int:
        """Set the maximum size, evicting what no longer fits; returns the count evicted."""
        self.version += 1
        self.max_size = max_size
        evicted = 0
        entries = self.entries
        while entries and self.size > max_size:
            old_name, old_value = entries.pop()
            self.size -= len(old_name) + len(old_value) + ENTRY_OVERHEAD
            evicted += 1
        return evicted


# --- decoder ------------------------------------------------------------------------------------


class Decoder:
    """Decodes the header blocks of one connection (one decoder per direction, per connection).

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE we advertised: the peer may not make its
    dynamic table larger. ``max_header_list_size`` bounds the decoded list (§6.5.2 measure).
    """

    __slots__ = ("table", "max_table_size", "max_header_list_size")

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 65536) -> None:
        self.table = _DynamicTable(max_table_size)
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if index <= 0:
            raise HPACKError("index 0")
        if index <= _STATIC_LEN:
            return STATIC_TABLE[index - 1]
        try:
            return self.table.entries[index - _STATIC_LEN - 1]
        except IndexError:
            raise HPACKError(f"index {index} beyond the dynamic table") from None

    def decode(self, block: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
        """``(fields, complete)``: ``complete`` is False when the list passed the size limit.

        Over the limit, the rest of the block is still decoded (the table must stay in step
        with the peer's encoder) but its fields are not kept: memory stays bounded by the limit.
        """
        fields: list[tuple[bytes, bytes]] = []
        append = fields.append
        size = 0
        limit = self.max_header_list_size
        complete = True
        table = self.table
        static = STATIC_TABLE
        pos = 0
        end = len(block)
        seen_field = False
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed field (§6.1)
                if 0x80 < byte <= 0x80 + _STATIC_LEN:
                    name, value = static[byte - 0x81]
                    pos += 1
                else:
                    index, pos = decode_integer(block, pos, 7)
                    name, value = self._entry(index)
            elif byte & 0x40:  # literal with incremental indexing (§6.2.1)
                if byte & 0x3F:
                    index, pos = decode_integer(block, pos, 6)
                    name = self._entry(index)[0]
                else:
                    name, pos = _decode_string(block, pos + 1)
                value, pos = _decode_string(block, pos)
                table.add(name, value)
            elif byte & 0x20:  # dynamic table size update (§6.3)
                if seen_field:
                    raise HPACKError("table size update after a header field")
                new_size, pos = decode_integer(block, pos, 5)
                if new_size > self.max_table_size:
                    raise HPACKError(
                        f"table size update to {new_size} exceeds the limit {self.max_table_size}"
                    )
                table.resize(new_size)
                continue
            else:  # literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3)
                if byte & 0x0F:
                    index, pos = decode_integer(block, pos, 4)
                    name = self._entry(index)[0]
                else:
                    name, pos = _decode_string(block, pos + 1)
                value, pos = _decode_string(block, pos)
            seen_field = True
            if complete:
                size += len(name) + len(value) + ENTRY_OVERHEAD
                if size > limit:
                    complete = False
                    fields.clear()
                else:
                    append((name, value))
        return fields, complete


# --- encoder ------------------------------------------------------------------------------------

# Never put these in the table (§7.1.3): a compressed secret could be guessed (CRIME-style).
SENSITIVE = frozenset((b"authorization", b"proxy-authorization", b"set-cookie", b"cookie"))


class Encoder:
    """Encodes header lists, indexing fields in its dynamic table (incremental indexing).

    ``huffman``: True codes every string, False none, None whichever is shorter. Fields named in
    ``never_index`` are sent "never indexed" (default: credentials and cookies). Call :meth:`set_max_table_size` when the peer's
    SETTINGS_HEADER_TABLE_SIZE changes: the next block starts with the size update it needs.
    """

    __slots__ = (
        "table",
        "huffman",
        "never_index",
        "_ids",
        "_name_ids",
        "_inserted",
        "_pending_sizes",
        "_cache",
        "_cache_version",
        "_blocks",
    )

    def __init__(
        self,
        max_table_size: int = 4096,
        huffman: bool | None = None,
        never_index: frozenset[bytes] = SENSITIVE,
    ) -> None:
        self.table = _DynamicTable(max_table_size)
        self.huffman = huffman
        #: field names sent "never indexed" (§6.2.3)
        self.never_index = never_index
        # field -> insertion number of its newest copy, and name -> the same: the relative
        # index (§2.3.3) is then 62 + (inserted - number), valid while the entry is in the table
        self._ids: dict[tuple[bytes, bytes], int] = {}
        self._name_ids: dict[bytes, int] = {}
        self._inserted = 0
        self._pending_sizes: list[int] = []
        # field -> its encoding while the table is unchanged: a response's fields are mostly the
        # same as the last one's, and then a block is a few dict lookups
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._cache_version = -1
        # whole header lists -> their block, under the same condition
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}

    def set_max_table_size(self, size: int) -> None:
        """The peer's table size changed: shrink now, announce at the start of the next block."""
        if size != self.table.max_size:
            self._pending_sizes.append(size)
            self.table.resize(min(size, self.table.max_size))

    def _dynamic_index(self, number: int | None) -> int:
        if number is None:
            return 0
        relative = self._inserted - number  # 0 = newest
        return _STATIC_LEN + 1 + relative if relative < len(self.table.entries) else 0

    def encode(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        """One header block for ``fields`` (names must be lower case already)."""
        out: list[bytes] = []
        if self._pending_sizes:
            # §4.2: the smallest size since the last block, then the final one
            smallest, final = min(self._pending_sizes), self._pending_sizes[-1]
            if smallest < final:
                out.append(encode_integer(smallest, 5, 0x20))
            out.append(encode_integer(final, 5, 0x20))
            self.table.resize(final)
            self._pending_sizes.clear()
        huffman = self.huffman
        table = self.table
        cache = self._cache
        key: tuple[tuple[bytes, bytes], ...] | None = None
        if self._cache_version != table.version:
            cache.clear()
            self._blocks.clear()
        elif not out:
            # the same list of fields as an earlier block, the table unchanged: the same bytes
            key = tuple(fields)
            block = self._blocks.get(key)
            if block is not None:
                return block
        version = table.version
        for field in fields:
            encoded = cache.get(field)
            if encoded is None:
                version = table.version
                encoded = self._encode_field(field, huffman, table)
                if table.version != version:
                    cache.clear()  # an entry went in: every dynamic index moved
                elif len(cache) < 256:
                    cache[field] = encoded
            out.append(encoded)
        block = b"".join(out)
        if table.version == version and self._cache_version == version:
            if key is None:
                key = tuple(fields)
            if len(self._blocks) >= 64:
                self._blocks.clear()
            self._blocks[key] = block
        self._cache_version = table.version
        return block

    def _encode_field(
        self, field: tuple[bytes, bytes], huffman: bool | None, table: _DynamicTable
    ) -> bytes:
        index = _STATIC_FULL.get(field)
        if index is not None:
            return bytes((0x80 | index,))
        index = self._dynamic_index(self._ids.get(field))
        if index:
            return encode_integer(index, 7, 0x80)
        name, value = field
        name_index = _STATIC_NAME.get(name) or self._dynamic_index(self._name_ids.get(name))
        if name in self.never_index:
            pattern, prefix = 0x10, 4
        elif len(name) + len(value) + ENTRY_OVERHEAD <= table.max_size:
            pattern, prefix = 0x40, 6
        else:
            pattern, prefix = 0x00, 4
        if name_index:
            head = encode_integer(name_index, prefix, pattern)
        else:
            head = bytes((pattern,)) + encode_string(name, huffman)
        encoded = head + encode_string(value, huffman)
        if pattern == 0x40:
            table.add(name, value)
            self._inserted += 1
            self._ids[field] = self._inserted
            self._name_ids[name] = self._inserted
            if len(self._ids) > 4 * len(table.entries) + 64:
                self._forget_evicted()
        return encoded

    def _forget_evicted(self) -> None:
        """Drop lookup entries for fields evicted from the table (keeps the dicts bounded)."""
        oldest = self._inserted - len(self.table.entries)
        self._ids = {k: v for k, v in self._ids.items() if v > oldest}
        self._name_ids = {k: v for k, v in self._name_ids.items() if v > oldest}
