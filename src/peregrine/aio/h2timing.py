"""An HTTP/2 stream's two timing points (the metrics and the access log), in compiled code.

``aio/h2connection.py`` runs interpreted (it is not in ``_build.COMPILED_MODULES``). There, every
read of a ``ServerState`` attribute (a native class in the compiled build) goes through its
descriptor, ~150 instructions. ``MetricsRecorder.response`` also reads the request's and the
response's fields by name, ~170 instructions each. This module is compiled: the same reads are C
field reads, and the HTTP/2 connection calls it once when a stream's handler is called and once
when its response is handed over. HTTP/1 needs none of it, as its connection is compiled.
"""

from __future__ import annotations

from ..http.request import Request
from ..http.response import Response
from .state import ServerState


def start_time(state: ServerState) -> float:
    """``state.clock()`` when a stream's handler is called (metrics or access log on)."""
    return state.clock()


def count_response(state: ServerState, request: Request, response: Response, start: float) -> bool:
    """A stream's ``response`` to ``request`` is handed over: count it in the metrics, when they
    are on, as :meth:`~peregrine.metrics.recorder.MetricsRecorder.response` does, with its
    duration from ``start`` to now on ``state.clock``.

    Returns whether the access log is on too (the caller writes the line).
    """
    metrics = state.metrics
    if metrics is not None:
        file = response.file
        if file is not None and response._stream_file_or_upgrade:
            sent: int = file[2]
        else:
            sent = len(response.body)
        elapsed = state.clock() - start
        pending = metrics.pending  # as in HttpConnection._handle: None when compiled
        if pending is None:
            metrics.count(request.method, response.status, elapsed, len(request.body), sent)
        else:
            pending.extend((request.method, response.status, elapsed, len(request.body), sent))
    return state.access_log is not None
