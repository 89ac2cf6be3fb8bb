"""What :class:`peregrine.http2.connection.H2Connection` reports: one small class per event.

Plain classes with ``__slots__`` rather than dataclasses: a few are made per request.
"""

from __future__ import annotations


class Event:
    """Base class of every HTTP/2 connection event."""

    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class RequestReceived(Event):
    """A request head arrived on a new stream.

    ``headers`` are the regular fields as ``(name, value)`` bytes (names lower case), with
    ``host`` first, taken from ``:authority`` when the request had no Host field. ``error`` is 0,
    or the HTTP status to answer with instead of calling the application (431: the header list
    passed the limits; the stream is otherwise sound).
    """

    __slots__ = (
        "stream_id",
        "method",
        "scheme",
        "authority",
        "path",
        "headers",
        "end_stream",
        "content_length",
        "error",
    )

    def __init__(
        self,
        stream_id: int,
        method: bytes,
        scheme: bytes,
        authority: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool,
        content_length: int,
        error: int = 0,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.scheme = scheme
        self.authority = authority
        self.path = path
        self.headers = headers
        self.end_stream = end_stream
        #: the announced body size, -1 when the request has no content-length
        self.content_length = content_length
        self.error = error


class DataReceived(Event):
    """Body bytes of a stream; ``end_stream`` marks the last (trailers end a body with ``b""``).

    ``flow_length`` is what the bytes cost in flow-control window (padding included): hand it
    to :meth:`H2Connection.acknowledge_data` once the bytes are consumed.
    """

    __slots__ = ("stream_id", "data", "flow_length", "end_stream")

    def __init__(self, stream_id: int, data: bytes, flow_length: int, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_length = flow_length
        self.end_stream = end_stream


class StreamReset(Event):
    """A stream ended abnormally: reset by the client (``remote``) or by us after a stream error."""

    __slots__ = ("stream_id", "error_code", "remote")

    def __init__(self, stream_id: int, error_code: int, remote: bool) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote


class WindowOpened(Event):
    """Queued response bytes of ``stream_id`` all went out: the sender may write more."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class ConnectionTerminated(Event):
    """The connection is over: a GOAWAY from the client (``remote``), or one we sent on an error.

    After our own GOAWAY for an error nothing more is read or sent: flush and close. After the
    client's, streams up to ``last_stream_id`` may still be answered.
    """

    __slots__ = ("error_code", "last_stream_id", "remote", "detail")

    def __init__(self, error_code: int, last_stream_id: int, remote: bool, detail: str) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.remote = remote
        self.detail = detail
