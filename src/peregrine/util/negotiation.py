"""Accept-Encoding (RFC 9110, section 12.5.3): which precompressed variant may be sent. No I/O."""

from __future__ import annotations

import re

__all__ = ["accepts_encoding", "parse_accept_encoding"]

# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?", re.ASCII)


def _qvalue(params: list[str]) -> float | None:
    """The q parameter of one list element (1.0 if absent); None if it is malformed.

    Whitespace around the parameter is tolerated; the value itself must follow
    the grammar exactly (no ``0.1234``, ``1e-3``, ``0.5_0`` or ``.5``).
    """
    for param in params:
        name, eq, value = param.partition("=")
        if name.strip().lower() != "q":
            continue
        value = value.strip()
        if not eq or not _QVALUE.fullmatch(value):
            return None
        return float(value)
    return 1.0


def parse_accept_encoding(value: str | None) -> dict[str, float]:
    """Parse an Accept-Encoding value into ``{coding: qvalue}`` (codings lower-cased).

    Malformed elements are skipped. ``x-gzip`` counts as ``gzip`` (RFC 9110
    section 8.4.1.3). A missing header gives an empty dict.
    """
    result: dict[str, float] = {}
    if not value:
        return result
    for element in value.split(","):
        coding, *params = element.split(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = _qvalue(params)
        if q is None:
            continue
        if coding == "x-gzip":
            coding = "gzip"
        # Repeats: the most restrictive wins, so "br, br;q=0" means no br.
        result[coding] = min(q, result.get(coding, q))
    return result


def accepts_encoding(accepted: dict[str, float], coding: str) -> bool:
    """True if content coding ``coding`` is acceptable under a parsed Accept-Encoding.

    A coding is acceptable when listed with q > 0, or when not listed and ``*``
    is listed with q > 0. Without an Accept-Encoding header (empty dict) nothing
    but identity is sent: RFC 9110 would allow any coding, but clients that say
    nothing are usually tools that cannot decode (and nginx does the same).
    """
    q = accepted.get(coding)
    if q is None:
        q = accepted.get("*", 0.0)
    return q > 0.0
