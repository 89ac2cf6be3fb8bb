"""Where each counter lives in a worker's block of integers (the same layout on both sides)."""

from __future__ import annotations

#: method classes: the common methods by name, everything else as "other"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other")
#: status classes 1xx..5xx
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: upper bounds (seconds) of the request-duration histogram; +Inf is the last bucket
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: statuses with which the server refuses a request itself (limits, bad or unsupported requests)
REFUSALS = (400, 408, 413, 414, 431, 501, 505, 503)

METHOD_INDEX = {name: i for i, name in enumerate(METHODS)}

REQUESTS = 0  # METHODS x STATUS_CLASSES counters, method-major
DURATION_BUCKETS = REQUESTS + len(METHODS) * len(STATUS_CLASSES)  # per bucket, not cumulative
DURATION_SUM_US = DURATION_BUCKETS + len(BUCKETS) + 1  # microseconds, summed
REQUEST_BODY_BYTES = DURATION_SUM_US + 1
RESPONSE_BODY_BYTES = REQUEST_BODY_BYTES + 1
REFUSED = RESPONSE_BODY_BYTES + 1  # one per REFUSALS entry
HANDLER_ERRORS = REFUSED + len(REFUSALS)
#: gauges from here on: current values, not summed over a worker's past
OPEN_HTTP = HANDLER_ERRORS + 1
OPEN_WEBSOCKET = OPEN_HTTP + 1
SIZE = OPEN_WEBSOCKET + 1
#: indexes before this one are counters (kept after a worker exits), the rest gauges
COUNTERS_END = OPEN_HTTP

REFUSAL_INDEX = {status: REFUSED + i for i, status in enumerate(REFUSALS)}


def request_index(method: str, status: int) -> int:
    """The counter of ``method`` (name as sent) answered with ``status``."""
    klass = min(max(status // 100, 1), 5) - 1
    return REQUESTS + METHOD_INDEX.get(method, len(METHODS) - 1) * len(STATUS_CLASSES) + klass
