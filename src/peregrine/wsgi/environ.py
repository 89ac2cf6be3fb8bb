"""Building the WSGI ``environ`` of a request (PEP 3333), without I/O.

Strings are "native strings" as the PEP defines them: bytes from the wire decoded as ISO-8859-1,
so every byte maps to one character and the application can get the bytes back with
``.encode("latin-1")`` (Werkzeug and Django do, then decode UTF-8).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote_to_bytes

from ..http.headers import PAIRWISE_COMPARE, Headers, RawHeaders, same_fields
from ..http.request import Request

# ``b"User-Agent" -> "HTTP_USER_AGENT"``, computed once per spelling seen (bounded below).
_KEYS: Final[dict[bytes, str | None]] = {
    b"Content-Type": "CONTENT_TYPE",
    b"content-type": "CONTENT_TYPE",
    b"Content-Length": "CONTENT_LENGTH",
    b"content-length": "CONTENT_LENGTH",
}
_KEYS_MAX = 2048

_PROTOCOLS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def environ_key(name: bytes) -> str | None:
    """The environ key of a header field, or None for a name with ``_`` in it.

    Such names are dropped (as nginx and gunicorn do): ``X-Forwarded_For`` would otherwise
    arrive as ``HTTP_X_FORWARDED_FOR``, the same key as ``X-Forwarded-For``, and a client could
    spoof a header a proxy in front of us sets.
    """
    key = _KEYS.get(name, False)
    if key is False:
        text = name.decode("latin-1")
        if "_" in text:
            key = None
        else:
            upper = text.upper().replace("-", "_")
            key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key  # type: ignore[return-value]


def path_info(raw_path: bytes) -> str:
    """The percent-decoded path as a native string (bytes decoded as ISO-8859-1)."""
    if 37 not in raw_path:  # b"%": nothing to decode (an int needle is one memchr)
        return raw_path.decode("latin-1")
    return unquote_to_bytes(raw_path).decode("latin-1")


# ``(Host header, scheme) -> (SERVER_NAME, SERVER_PORT)``: clients send the same few hosts.
# Plain HTTP's are kept by the Host header alone: no key tuple to make and hash per request.
_SERVERS: Final[dict[tuple[str, str], tuple[str, str]]] = {}
_HTTP_SERVERS: Final[dict[str, tuple[str, str]]] = {}


def server_address(host_header: str | None, scheme: str, sockname: Any) -> tuple[str, str]:
    """``(SERVER_NAME, SERVER_PORT)``: from the Host header when there is one (as the URL the
    client used), else from the address the connection arrived on (``sockname``)."""
    if host_header:
        if scheme == "http":
            found = _HTTP_SERVERS.get(host_header)
            if found is None:
                found = _parse_host(host_header, scheme)
                if len(_HTTP_SERVERS) < _KEYS_MAX:
                    _HTTP_SERVERS[host_header] = found
            return found
        found = _SERVERS.get((host_header, scheme))
        if found is None:
            found = _parse_host(host_header, scheme)
            if len(_SERVERS) < _KEYS_MAX:
                _SERVERS[(host_header, scheme)] = found
        return found
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), str(sockname[1])
    return "localhost", _DEFAULT_PORTS.get(scheme, "80")


def _parse_host(host_header: str, scheme: str) -> tuple[str, str]:
    default = _DEFAULT_PORTS.get(scheme, "80")
    if host_header.startswith("["):  # an IPv6 literal: [::1]:8000
        end = host_header.find("]")
        if end > 0:
            port = host_header[end + 2 :] if host_header[end + 1 : end + 2] == ":" else ""
            return host_header[: end + 1], port or default
    name, colon, port = host_header.partition(":")
    return name, (port if colon and port else default)


def base_environ(
    root_path: str, multiprocess: bool, errors: Any, file_wrapper: Any
) -> dict[str, Any]:
    """The environ every request of a worker starts from (copied per request): the keys that
    are the same for every request, and every key :func:`build_environ` always sets, with a
    placeholder value.

    The per-request keys are there so that the copy has them already: setting a key a dict has
    is cheaper than adding one, and the copy is made at its final size, where adding them one
    by one to a copy of the shared keys alone grew (resized) it twice per request.
    """
    return {
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.errors": errors,
        "wsgi.file_wrapper": file_wrapper,
        "SCRIPT_NAME": root_path,
        # set per request by build_environ (REMOTE_* removed when the client is unknown)
        "REQUEST_METHOD": "",
        "PATH_INFO": "",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "",
        "wsgi.url_scheme": "",
        "wsgi.input": None,
        "REMOTE_ADDR": "",
        "REMOTE_PORT": "",
        "SERVER_NAME": "",
        "SERVER_PORT": "",
    }


def build_environ(
    base: dict[str, Any], request: Request, wsgi_input: Any, sockname: Any = None
) -> dict[str, Any]:
    """The environ of ``request``: a copy of ``base`` (see :func:`base_environ`) with the
    request's own keys set.

    ``PATH_INFO`` is the request path as received: with ``--root-path`` a proxy removed that
    prefix already, and it is ``SCRIPT_NAME``. Repeated header fields are joined with ``", "``
    (``Cookie`` with ``"; "``, RFC 6265 §5.4); ``CONTENT_LENGTH`` is absent when the request has
    no such field (a chunked body: ``wsgi.input_terminated`` says reading to the end is safe).
    :class:`EnvironBuilder` makes the same environ, reusing what a client's previous request had.
    """
    environ = _connection_keys(base, request, _raw_fields(request), sockname)
    _set_request_keys(environ, request, wsgi_input)
    return environ


def _raw_fields(request: Request) -> RawHeaders:
    headers = request._headers  # the parser's raw list until someone asks for request.headers
    return headers.raw if isinstance(headers, Headers) else headers


def _set_request_keys(environ: dict[str, Any], request: Request, wsgi_input: Any) -> None:
    """Set the keys that change from one request of a client to the next."""
    environ["REQUEST_METHOD"] = request.method
    raw_path = request.raw_path
    # path_info(), inlined: once per request
    environ["PATH_INFO"] = raw_path.decode("latin-1") if 37 not in raw_path else path_info(raw_path)
    environ["QUERY_STRING"] = request.query_bytes.decode("latin-1")
    environ["wsgi.input"] = wsgi_input


def _connection_keys(
    base: dict[str, Any], request: Request, fields: RawHeaders, sockname: Any
) -> dict[str, Any]:
    """A copy of ``base`` with what the environ takes from the connection and the header fields:
    ``SERVER_*``, ``REMOTE_*``, ``wsgi.url_scheme``, ``CONTENT_*`` and ``HTTP_*``."""
    environ = base.copy()
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.version) or "HTTP/" + request.version
    environ["wsgi.url_scheme"] = request.scheme
    client = request.client
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    else:  # a Unix socket: no client address to give
        del environ["REMOTE_ADDR"], environ["REMOTE_PORT"]
    keys = _KEYS
    host = None
    for name, value in fields:
        key = keys.get(name) or environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + separator + text
        else:
            environ[key] = text
            if key == "HTTP_HOST":
                host = text
    environ["SERVER_NAME"], environ["SERVER_PORT"] = server_address(host, request.scheme, sockname)
    return environ


#: what :class:`EnvironBuilder` keeps of a client's last request: its header fields, scheme,
#: HTTP version and local address (``sockname``), the environ they gave (with that request's
#: method, path and query set), and that method, path and query as the request had them
_Kept = tuple[list[tuple[bytes, bytes]], str, str, Any, dict[str, Any], str, bytes, bytes]


class EnvironBuilder:
    """:func:`build_environ` for the requests of one worker, with a memory per client.

    A client sends the same header fields on request after request of its connection (the same
    Host, User-Agent, Accept...). Everything the environ takes from them and from the
    connection is kept per client address, as a template dict; the next request of that client
    whose fields, scheme, HTTP version and local address are all equal to the kept ones gets a
    copy of the template with its input set, and its method, path and query too unless they
    are those of the request the template was made from: no field decoded, no key looked up.
    Anything else is built the long way, and kept in place of the old one.

    Bounded: requests whose header fields, path and query total more than ``max_field_bytes``
    are never kept (a cookie-laden browser request is built the long way), and when
    ``max_entries`` clients are kept the memory starts again empty. Safe from several threads:
    an entry is a tuple never changed once made, and a template is only ever copied.
    """

    __slots__ = ("base", "max_entries", "max_field_bytes", "_kept")

    def __init__(
        self, base: dict[str, Any], max_entries: int = 1024, max_field_bytes: int = 1024
    ) -> None:
        #: the worker's shared keys (see :func:`base_environ`)
        self.base = base
        self.max_entries = max_entries
        self.max_field_bytes = max_field_bytes
        self._kept: dict[tuple[str, int] | None, _Kept] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def build(self, request: Request, wsgi_input: Any, sockname: Any = None) -> dict[str, Any]:
        """The environ of ``request``, equal to :func:`build_environ`'s."""
        headers = request._headers
        fields: RawHeaders = headers.raw if isinstance(headers, Headers) else headers
        client = request.client
        kept = self._kept.get(client)
        if (
            kept is not None
            and (same_fields(kept[0], fields) if PAIRWISE_COMPARE else kept[0] == fields)
            and kept[1] == request.scheme
            and kept[2] == request.version
            and (kept[3] is sockname or kept[3] == sockname)  # (None, but for HTTP/1.0)
        ):
            environ = kept[4].copy()
            if (
                kept[5] != request.method
                or kept[6] != request.raw_path
                or kept[7] != request.query_bytes
            ):
                _set_request_keys(environ, request, wsgi_input)
                return environ
        else:
            template = _connection_keys(self.base, request, fields, sockname)
            _set_request_keys(template, request, None)
            # the bound counts the path and query too: the template holds them
            size = len(request.raw_path) + len(request.query_bytes)
            for name, value in fields:
                size += len(name) + len(value)
            if size <= self.max_field_bytes:
                if len(self._kept) >= self.max_entries:
                    self._kept.clear()
                # the request's method, path and query are kept too: a client asking for the
                # same URL again (polling, a load balancer's health check, a benchmark) gets
                # them with the copy, set already
                self._kept[client] = (
                    list(fields),
                    request.scheme,
                    request.version,
                    sockname,
                    template,
                    request.method,
                    request.raw_path,
                    request.query_bytes,
                )
            environ = template.copy()
        environ["wsgi.input"] = wsgi_input
        return environ
