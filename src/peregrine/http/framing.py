"""A :class:`Response` from the status and header fields an application interface gives.

Shared by the adapters of the ASGI and WSGI interfaces: both hand over a status and a list of
``(name, value)`` pairs (bytes for ASGI, native strings for WSGI). The server frames bodies
itself, so the framing fields are taken out here: ``Content-Length`` is returned for the sender
to honour (and check), and ``Transfer-Encoding`` is dropped (the server chunks when it must; an
application cannot make it send a body framed its own way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .response import Checked, Response, check_header


def framed_response(
    request: Any,
    status: int,
    fields: Iterable[Any],
    field_type: type | None = None,
) -> tuple[Response, int | None]:
    """``(response, declared Content-Length or None)``.

    ``fields`` are ``(name, value)`` pairs, typed ``Any``: an application may give lists, and the
    compiled build would refuse them before the checks below say what is wrong.

    Raises ``ValueError`` on a field that could split the response (CR, LF, NUL, a name that
    is not a token, text outside ISO-8859-1), a status outside 100-599, or a Content-Length that
    is not one non-negative number (repeats must agree). With ``field_type`` (``str`` for WSGI,
    ``bytes`` for ASGI), every name and value must be of that type (else ``TypeError``).
    """
    if not 100 <= status <= 599:
        raise ValueError(f"invalid status code {status!r}")
    response = Response(None, request)
    response.status = status
    length: int | None = None
    add = response.add_header
    for name, value in fields:  # a field that is not a pair: ValueError
        if field_type is not None and (
            name.__class__ is not field_type or value.__class__ is not field_type
        ):
            raise TypeError(
                f"a header field must be a ({field_type.__name__}, {field_type.__name__}) "
                f"pair, got {(name, value)!r}"
            )
        if name in _LENGTH_NAMES:
            length = _content_length(value, length)
            continue
        if name in _CODING_NAMES:
            continue
        try:
            add(name, value)  # refuses the framing fields in any other spelling: handled below
        except ValueError:
            lname = name.lower() if isinstance(name, bytes) else name.lower().encode("latin-1")
            if lname == b"content-length":
                length = _content_length(value, length)
            elif lname != b"transfer-encoding":
                raise
    return response, length


class HeadCache:
    """:func:`framed_response` with a memory: checked heads by status and header fields.

    Applications and frameworks send the same few heads again and again (the same status and
    fields, often the very same objects): a head checked once is kept, keyed by the status as the
    application gave it and its fields, so the next equal one costs a tuple, a dict lookup and a
    :class:`Response`, not a check of each field; a repeat of the head answered last, given as a
    list, is known by comparing that list with a copy of the last one, without the tuple or the
    lookup. Either way a kept head is reused only for fields exactly of ``field_type`` (an equal
    bytearray is refused as on a fresh cache). Heads with a field the response notes apart
    (``Connection``, ``Date``, ``Server``) and heads whose lines are longer than ``max_block``
    are checked the long way every time. When ``max_entries`` heads are kept the cache starts
    again empty, a bound on what varying header values can make it hold.

    Each interface has its own cache, with its own ``field_type`` and ``code`` (the status as
    that interface gives it, turned into an int; it raises ``ValueError`` on a bad one), so a
    head is only ever reused for the interface that had it checked.
    """

    __slots__ = ("field_type", "code", "max_entries", "max_block", "_heads", "_last")

    def __init__(
        self,
        field_type: type,
        code: Callable[[Any], int],
        max_entries: int = 256,
        max_block: int = 1024,
    ) -> None:
        self.field_type = field_type
        self.code = code
        self.max_entries = max_entries
        self.max_block = max_block
        #: ``(status, fields) -> (code, checked fields, their lines, Content-Length)``
        self._heads: dict[Any, tuple[int, tuple[Checked, ...], bytes, int | None]] = {}
        #: the head found or kept last: ``(status, its fields as a list, its entry)``; an
        #: application answering with the same head again is known by comparing two lists,
        #: without making and hashing the key
        self._last: (
            tuple[Any, list[Any], tuple[int, tuple[Checked, ...], bytes, int | None]] | None
        ) = None

    def __len__(self) -> int:
        return len(self._heads)

    def framed(
        self, request: Any, status: Any, fields: Iterable[Any]
    ) -> tuple[Response, int | None]:
        """``(response, declared Content-Length or None)``, with :func:`framed_response`'s
        errors."""
        last = self._last
        if (
            last is not None
            and type(fields) is list  # (compiled, type() is a C read; __class__ a lookup)
            and status == last[0]
            and fields == last[1]  # (pairs equal to the hashable ones kept: never a list)
            and _of_type(fields, self.field_type)
        ):
            entry = last[2]
        else:
            fields = tuple(fields)  # (an iterator can only be read once)
            key = (status, fields)
            try:
                known = self._heads.get(key)
            except TypeError:  # a pair that is a list, or a value that is not hashable
                return framed_response(request, self.code(status), fields, self.field_type)
            if known is None or not _of_type(list(fields), self.field_type):
                response, length = framed_response(
                    request, self.code(status), fields, self.field_type
                )
                if (
                    not response._has_connection
                    and not response._has_date
                    and not response._has_server
                    and len(response._block) <= self.max_block
                ):
                    if len(self._heads) >= self.max_entries:
                        self._heads.clear()
                    entry = (response.status, tuple(response._fields), response._block, length)
                    self._heads[key] = entry
                    self._last = (status, list(fields), entry)
                return response, length
            entry = known
            self._last = (status, list(fields), entry)
        code, checked, block, length = entry
        response = Response(None, request)
        response.status = code
        # (a fresh response has no fields: set, not added, saving a copy of the block)
        response._fields = list(checked)
        response._block = block
        return response, length


def _of_type(fields: list[tuple[Any, Any]], field_type: Any) -> bool:
    """Whether every name and value in ``fields`` (pairs) is exactly of ``field_type``: a
    bytearray or a memoryview equals the bytes of a kept head but is refused by the checks, so
    equal fields of another type take the long way, as they would on a fresh cache."""
    # (typed pairs and type(), not __class__: compiled, these are direct C reads; the pairs
    # are tuples: equal to the kept ones, which are)
    for name, value in fields:
        if type(name) is not field_type or type(value) is not field_type:
            return False
    return True


def _spellings(name: str) -> frozenset[str | bytes]:
    forms = (name, name.lower(), name.upper())
    return frozenset([*forms, *(form.encode("latin-1") for form in forms)])


# the usual spellings, recognised before the (costlier) refusal by add_header
_LENGTH_NAMES = _spellings("Content-Length")
_CODING_NAMES = _spellings("Transfer-Encoding")


def _content_length(value: str | bytes, seen: int | None) -> int:
    length = _LENGTHS.get(value)
    if length is None:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        text = text.strip()
        if not text.isdigit() or not text.isascii():
            raise ValueError(f"invalid Content-Length {text!r}")
        length = int(text)
        if len(_LENGTHS) < 4096:
            _LENGTHS[value] = length
    if seen is not None and seen != length:
        raise ValueError("conflicting Content-Length values")
    return length


# Content-Length values seen, parsed (bodies often have the same few sizes); bounded
_LENGTHS: dict[str | bytes, int] = {}


def trailer_fields(fields: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Check the trailer fields an application gives: ``[(lower-cased name, value)]``, bytes.

    Raises ``ValueError`` on a field that could split the response (CR, LF, NUL, a name that is
    not a token) or that must not be a trailer (RFC 9110 §6.5.1: the framing, routing and
    connection fields, which a recipient would act on too late or not at all), and
    ``TypeError`` on a name or value that is not bytes.
    """
    checked: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        if name.__class__ is not bytes or value.__class__ is not bytes:
            raise TypeError(f"a trailer field must be a (bytes, bytes) pair, got {(name, value)!r}")
        _, bvalue, lname, _ = check_header(name, value)
        if lname in _NOT_TRAILERS:
            raise ValueError(f"{lname.decode()} cannot be sent as a trailer field")
        checked.append((lname, bvalue))
    return checked


# Fields a sender must not put in trailers: framing, routing and connection management.
_NOT_TRAILERS = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        b"te",
    )
)


def accepts_trailers(request: Any) -> bool:
    """Whether the client said it reads trailer fields (``TE: trailers``, RFC 9110 §10.1.4).

    HTTP/1.0 has no chunked coding, so no place for trailers, whatever it sends.
    """
    if request.version == "1.0":
        return False
    for name, value in request.raw_headers:
        if len(name) == 2 and name.lower() == b"te":
            for token in value.split(b","):
                if token.split(b";")[0].strip().lower() == b"trailers":
                    return True
    return False
