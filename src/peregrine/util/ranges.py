"""Byte ranges (RFC 9110, section 14): parsing ``Range`` and formatting ``Content-Range``.

No I/O: :func:`evaluate_range` takes the header value and the size of the
representation and says what to answer. The rules, in the RFC's words where it
matters:

- Only the ``bytes`` unit is known; a header in any other unit, or one that is
  syntactically invalid (``bytes=5-1``, ``bytes=a-b``, ``bytes=``), is ignored
  and the whole representation is sent (200).
- ``a-b``: ``b`` past the end is clamped to the last byte; ``a`` at or past the
  end is unsatisfiable. ``a-``: from ``a`` to the end. ``-n``: the last ``n``
  bytes (the whole thing when it is shorter); ``-0`` is unsatisfiable.
- A set is satisfiable if at least one of its ranges is; a set none of whose
  ranges is satisfiable gets 416 with ``Content-Range: bytes */size``.
- Several ranges are coalesced when they overlap or touch; if a single range
  remains it is answered with 206, otherwise the server uses its freedom to
  ignore the header and sends the whole representation (200) instead of a
  multipart body.
- A number of more than 18 digits is taken as larger than any file (it is
  one), so ``bytes=0-99999...`` is the whole file and ``bytes=99999...-`` is
  unsatisfiable, however many digits are sent.
- A zero-length representation has no byte to point at: a non-zero suffix range
  is satisfiable there but selects nothing, so it gets the (empty) full 200.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FULL",
    "MAX_RANGES",
    "UNSATISFIABLE",
    "ByteRange",
    "Full",
    "RangeResult",
    "Unsatisfiable",
    "content_range",
    "evaluate_range",
    "unsatisfied_content_range",
]

#: More ranges than this in one header is treated as abuse (a classic
#: amplification trick) and the header ignored.
MAX_RANGES = 100


@dataclass(frozen=True)
class ByteRange:
    """One satisfiable range: ``start`` and ``end`` are inclusive byte offsets."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1


@dataclass(frozen=True)
class Full:
    """Send the whole representation (200): no Range, or one we ignore."""


@dataclass(frozen=True)
class Unsatisfiable:
    """No range in the set can be satisfied: answer 416."""


FULL = Full()
UNSATISFIABLE = Unsatisfiable()

RangeResult = ByteRange | Full | Unsatisfiable

_DIGITS = frozenset("0123456789")

#: Numbers with more digits than this (leading zeros aside) stand for
#: :data:`_HUGE`: larger than any file, and never handed to ``int()``, which
#: refuses strings of more than 4300 digits.
_MAX_DIGITS = 18
_HUGE: int = 10**_MAX_DIGITS


def _parse_int(text: str) -> int | None:
    # int() alone would accept "+5", " 5", "5_0" and non-ASCII digits; the
    # grammar is 1*DIGIT.
    if not text or not _DIGITS.issuperset(text):
        return None
    if len(text) > _MAX_DIGITS:
        text = text.lstrip("0") or "0"
        if len(text) > _MAX_DIGITS:
            return _HUGE
    return int(text)


def _parse_spec(spec: str) -> tuple[int | None, int | None] | None:
    """Parse one range-spec into (first, last); (None, n) is the suffix form. None if invalid."""
    first_text, dash, last_text = spec.partition("-")
    if not dash:
        return None
    if not first_text:
        suffix = _parse_int(last_text)
        return None if suffix is None else (None, suffix)
    first = _parse_int(first_text)
    if first is None:
        return None
    if not last_text:
        return (first, None)
    last = _parse_int(last_text)
    if last is None or last < first:
        return None
    return (first, last)


def evaluate_range(header: str | None, size: int) -> RangeResult:
    """Decide how to answer a ``Range`` header for a representation of ``size`` bytes.

    Returns a :class:`ByteRange` (answer 206), :data:`FULL` (answer 200 with
    everything) or :data:`UNSATISFIABLE` (answer 416).
    """
    if header is None:
        return FULL
    unit, eq, range_set = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return FULL
    specs = [s.strip() for s in range_set.split(",")]
    # The list rule allows empty elements ("bytes=0-1, ,2-3") but needs one real one.
    specs = [s for s in specs if s]
    if not specs or len(specs) > MAX_RANGES:
        return FULL

    parsed: list[tuple[int | None, int | None]] = []
    for spec in specs:
        item = _parse_spec(spec)
        if item is None:
            # One invalid spec makes the whole header invalid: ignore it.
            return FULL
        parsed.append(item)

    wanted: list[tuple[int, int]] = []
    satisfiable = False
    for first, last in parsed:
        if first is None:
            assert last is not None
            if last == 0:
                continue
            satisfiable = True
            if size == 0:
                continue  # satisfiable, but selects no byte at all
            wanted.append((max(0, size - last), size - 1))
        else:
            if first >= size:
                continue
            satisfiable = True
            end = size - 1 if last is None or last >= size else last
            wanted.append((first, end))

    if not satisfiable:
        return UNSATISFIABLE
    if not wanted:
        return FULL

    # Coalesce overlapping or adjacent ranges.
    wanted.sort()
    merged: list[list[int]] = [list(wanted[0])]
    for start, end in wanted[1:]:
        if start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if len(merged) != 1:
        return FULL
    return ByteRange(merged[0][0], merged[0][1])


def content_range(byte_range: ByteRange, size: int) -> str:
    """The ``Content-Range`` value of a 206: ``bytes start-end/size``."""
    return f"bytes {byte_range.start}-{byte_range.end}/{size}"


def unsatisfied_content_range(size: int) -> str:
    """The ``Content-Range`` value of a 416: ``bytes */size``."""
    return f"bytes */{size}"
