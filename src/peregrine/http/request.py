"""The request a handler receives."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from .._build import mypyc_attr
from .headers import Headers, RawHeaders


class QueryParams:
    """Parsed query string: ``get`` gives the first value of a key, ``getall`` every value.

    Keys and values are percent-decoded (``+`` is a space); blank values are kept.
    """

    __slots__ = ("_pairs",)

    def __init__(self, query_string: str) -> None:
        self._pairs = parse_qsl(query_string, keep_blank_values=True)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key``, or ``default``."""
        for k, v in self._pairs:
            if k == key:
                return v
        return default

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` in order; ``[]`` when absent."""
        return [v for k, v in self._pairs if k == key]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._pairs)

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(k for k, _ in self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[str, str]]:
        """All ``(key, value)`` pairs in order, repeated keys included."""
        return list(self._pairs)

    def __repr__(self) -> str:
        return f"QueryParams({self._pairs!r})"


def decode_path(raw_path: bytes) -> str:
    """Percent-decode a request path to text (UTF-8; undecodable bytes become U+FFFD)."""
    # 37 is b"%". An int needle is one memchr; a bytes needle is first tried as an int, which
    # raises and clears a TypeError inside CPython (~2,000 instructions a request, measured).
    if 37 not in raw_path:
        return raw_path.decode("utf-8", "replace")
    return unquote_to_bytes(raw_path).decode("utf-8", "replace")


# A native class in the compiled build (its fields are read on every request), kept open to
# subclasses written in Python. Like the pure one it takes only its fields (__slots__), and
# neither has weak references: mypyc's native classes cannot have them (see docs/api.md).
@mypyc_attr(allow_interpreted_subclasses=True)
class Request:
    """One HTTP request, complete (body included) when the handler sees it.

    ``path`` and ``query`` are computed on first access: a handler that never reads them never
    pays for decoding them. It takes no attributes besides its own (a subclass may).
    """

    __slots__ = (
        "method",
        "raw_path",
        "query_bytes",
        "version",
        "_headers",
        "body",
        "client",
        "keep_alive",
        "scheme",
        "_path",
        "_query",
    )

    def __init__(
        self,
        method: str,
        raw_path: bytes,
        query_bytes: bytes,
        version: str,
        headers: Headers | RawHeaders,
        body: bytes = b"",
        client: tuple[str, int] | None = None,
        keep_alive: bool = True,
        scheme: str = "http",
    ) -> None:
        #: request method as sent, e.g. ``"GET"``
        self.method = method
        #: the path as sent (still percent-encoded), without the query
        self.raw_path = raw_path
        #: the query string as sent, without the ``?``
        self.query_bytes = query_bytes
        #: ``"1.0"`` or ``"1.1"``
        self.version = version
        self._headers = headers
        #: the whole request body (``b""`` when there is none)
        self.body = body
        #: ``(host, port)`` of the client (of the proxy's client when a trusted proxy says so)
        self.client = client
        #: whether the connection stays open after this request
        self.keep_alive = keep_alive
        #: ``"http"`` or ``"https"``
        self.scheme = scheme
        self._path: str | None = None
        self._query: QueryParams | None = None

    @property
    def headers(self) -> Headers:
        """The header fields as sent, see :class:`Headers`."""
        headers = self._headers
        # (type(), not __class__: compiled, a C read rather than an attribute lookup)
        if type(headers) is not Headers:
            # the parser hands over its raw list: wrapped on first use only
            headers = self._headers = Headers(headers)  # type: ignore[arg-type]
        return headers

    @property
    def raw_headers(self) -> RawHeaders:
        """The header fields as ``(name, value)`` bytes pairs, as received (no copy)."""
        headers = self._headers
        return headers.raw if type(headers) is Headers else headers  # type: ignore[return-value]

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query string."""
        path = self._path
        if path is None:
            path = self._path = decode_path(self.raw_path)
        return path

    @property
    def query_string(self) -> str:
        """The raw query string (without ``?``), as text."""
        return self.query_bytes.decode("latin-1")

    @property
    def query(self) -> QueryParams:
        """The parsed query string (parsed on first access, then cached for this request)."""
        query = self._query
        if query is None:
            query = self._query = QueryParams(self.query_string)
        return query

    @property
    def url(self) -> str:
        """The request target as sent: raw path plus ``?query`` when there is one."""
        target = self.raw_path.decode("latin-1")
        return f"{target}?{self.query_string}" if self.query_bytes else target

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url} HTTP/{self.version}>"
