"""The access log: one line per answer, on the ``peregrine.access`` logger.

Every answer is logged, the handler's and the ones the server sends itself (400, 408, 413, 431,
500 when a handler raises, 503...). A line is made from named fields, either with a format
(``access_log_format``, ``str.format`` syntax: ``'{client} "{method} {target}" {status}'``) or
as one JSON object (``access_log_json``):

========== ==========================================================================
field      value
========== ==========================================================================
client     ``host:port`` of the client (after trusted proxy headers), ``-`` if unknown
method     request method, ``-`` when the request could not be parsed
path       the path as sent (still percent-encoded)
query      the query string, without ``?`` (empty when none)
target     path and query as sent (``/a?b=1``)
version    ``1.0`` or ``1.1`` (``-`` when unknown)
status     the status code sent
bytes      body bytes sent (0 for HEAD, 1xx, 204, 304)
duration_us microseconds from the handler's call to the end of the answer (``time.perf_counter``)
user_agent the ``User-Agent`` header, ``-`` when absent
referer    the ``Referer`` header, ``-`` when absent
request_id the ``X-Request-ID`` header, ``-`` when absent
========== ==========================================================================

Each record also carries the fields as ``record.access`` (a dict), for a custom formatter set up
with ``log_config``. Nothing here runs unless the access log is on: the connection checks the
option before calling in.
"""

from __future__ import annotations

import json
import logging
import string
from time import perf_counter
from typing import Any

from .http.status import STATUS_LINES

FIELDS = (
    "client",
    "method",
    "path",
    "query",
    "target",
    "version",
    "status",
    "bytes",
    "duration_us",
    "user_agent",
    "referer",
    "request_id",
)
DEFAULT_FORMAT = '{client} - "{method} {target} HTTP/{version}" {status} {bytes} {duration_us}us'

# Text taken from the request is escaped so that one answer stays one parseable line: control
# characters and the double quote become \xNN (as nginx does).
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x22, 0x7F)}

logger = logging.getLogger("peregrine.access")


def format_problem(fmt: str) -> str | None:
    """What is wrong with the access log template ``fmt`` (an unknown field, bad syntax), or None."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None]
    except ValueError as exc:
        return str(exc)
    for name in names:
        if name not in FIELDS:
            return f"unknown field {{{name}}}"
    return None


class AccessLog:
    """Formats and emits access log lines for one worker (see the module docstring)."""

    def __init__(self, fmt: str | None = None, as_json: bool = False) -> None:
        self.format = fmt or DEFAULT_FORMAT
        self.as_json = as_json

    def response(self, request: Any, response: Any, start: float) -> None:
        """Log the answer a handler gave ``request`` (``start``: ``perf_counter()`` before it ran)."""
        status = response.status
        if request.method == "HEAD" or status < 200 or status == 204 or status == 304:
            sent = 0
        elif response.file is not None:
            _file, _offset, sent = response.file
        elif response.stream_source is not None or response._bytes_streamed:
            sent = response._bytes_streamed
        else:
            sent = len(response.body)
        self._emit(self._request_fields(request), status, sent, start)

    def error(
        self,
        status: int,
        client: Any,
        request: Any = None,
        start: float = 0.0,
    ) -> None:
        """Log an answer the server made itself (``request`` is None when it did not parse)."""
        sent = len(STATUS_LINES[status]) - 10  # the body error_response sends: reason + "\n"
        if request is not None:
            fields = self._request_fields(request)
        else:
            fields = {
                "client": f"{client[0]}:{client[1]}" if isinstance(client, tuple) else "-",
                "method": "-",
                "path": "-",
                "query": "",
                "target": "-",
                "version": "-",
                "user_agent": "-",
                "referer": "-",
                "request_id": "-",
            }
        self._emit(fields, status, sent, start)

    def _request_fields(self, request: Any) -> dict[str, Any]:
        client = request.client
        path = request.raw_path.decode("latin-1")
        query = request.query_bytes.decode("latin-1") if request.query_bytes else ""
        headers = request.headers
        return {
            "client": f"{client[0]}:{client[1]}" if client else "-",
            "method": request.method,
            "path": path,
            "query": query,
            "target": f"{path}?{query}" if query else path,
            "version": request.version,
            "user_agent": headers.get("user-agent") or "-",
            "referer": headers.get("referer") or "-",
            "request_id": headers.get("x-request-id") or "-",
        }

    def _emit(self, fields: dict[str, Any], status: int, sent: int, start: float) -> None:
        fields["status"] = status
        fields["bytes"] = sent
        fields["duration_us"] = round((perf_counter() - start) * 1e6) if start else 0
        if self.as_json:
            line = json.dumps(fields, ensure_ascii=False)
        else:
            line = self.format.format_map(
                {k: v.translate(_ESCAPES) if isinstance(v, str) else v for k, v in fields.items()}
            )
        logger.info("%s", line, extra={"access": fields})
