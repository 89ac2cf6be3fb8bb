"""Request header fields: kept as sent, looked up without regard to case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, overload

from .._build import mypyc_attr, runs_compiled

RawHeaders = list[tuple[bytes, bytes]]


def same_fields(kept: RawHeaders, fields: RawHeaders) -> bool:
    """``kept == fields``, pair by pair: compiled, each name and value is compared as bytes
    (one length check and ``memcmp``), where the list's ``==`` goes through the generic
    comparison of each tuple. For the compiled build only (see :data:`PAIRWISE_COMPARE`)."""
    if len(kept) != len(fields):
        return False
    for i in range(len(kept)):
        one = kept[i]
        other = fields[i]
        if one[0] != other[0] or one[1] != other[1]:
            return False
    return True


#: whether :func:`same_fields` is the cheaper way to compare two header lists: compiled, yes;
#: interpreted, a loop in Python is slower than the list's own ``==``, so callers write
#: ``same_fields(a, b) if PAIRWISE_COMPARE else a == b``
PAIRWISE_COMPARE: Final = runs_compiled(same_fields)


@mypyc_attr(allow_interpreted_subclasses=True)  # the compiled build keeps it subclassable
class Headers:
    """The header fields of a request, in the order and spelling they were sent.

    Iteration yields ``(name, value)`` string pairs exactly as received. ``get`` and ``getall``
    ignore case. Names and values are decoded as ISO-8859-1, which maps every byte to one
    character, so nothing a client sends can make a lookup fail.

    The lower-cased index is built on the first lookup only: a request whose handler never
    reads a header never pays for it.
    """

    __slots__ = ("_raw", "_index")

    def __init__(self, raw: RawHeaders | None = None) -> None:
        self._raw: RawHeaders = raw if raw is not None else []
        self._index: dict[str, list[str]] | None = None

    @property
    def raw(self) -> RawHeaders:
        """The fields as ``(name, value)`` bytes pairs, as received."""
        return self._raw

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._raw:
                index.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
            self._index = index
        return index

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (any case), or ``default``."""
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def getall(self, name: str) -> list[str]:
        """Every value of ``name`` (any case), in order; ``[]`` when absent."""
        return list(self._lookup().get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        values = self._lookup().get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, value in self._raw:
            yield name.decode("latin-1"), value.decode("latin-1")

    def __len__(self) -> int:
        return len(self._raw)

    def keys(self) -> list[str]:
        """Header names as sent, in order (repeated names repeat)."""
        return [name.decode("latin-1") for name, _ in self._raw]

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs as sent, in order."""
        return list(self)

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._raw == other._raw
        return NotImplemented
