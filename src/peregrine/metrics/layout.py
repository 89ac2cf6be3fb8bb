"""Where each counter lives in a worker's block of integers (the same layout on both sides).

Every response is counted in one slot: its method class, status class and duration bucket
folded into a single index (``response_index``), so the hot path adds 1 to one integer. The
requests-by-method-and-status series and the duration histogram are both sums over these slots,
made when the page is rendered (:mod:`.text`).
"""

from __future__ import annotations

#: method classes: the common methods by name, everything else as "other"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other")
#: status classes 1xx..5xx
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: upper bounds (seconds) of the request-duration histogram; +Inf is the last bucket
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: statuses with which the server refuses a request itself (limits, bad or unsupported requests;
#: 405: CONNECT over HTTP/2)
REFUSALS = (400, 405, 408, 413, 414, 431, 501, 505, 503)

METHOD_INDEX = {name: i for i, name in enumerate(METHODS)}

#: slots of one (method class, status class): one per duration bucket, +Inf included
SLOTS_PER_CLASS = len(BUCKETS) + 1
RESPONSES = 0  # METHODS x STATUS_CLASSES x buckets, method-major, bucket-minor
DURATION_SUM_US = RESPONSES + len(METHODS) * len(STATUS_CLASSES) * SLOTS_PER_CLASS  # summed
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


def class_index(method: str, status: int) -> int:
    """The first slot (fastest bucket) of ``method`` (name as sent) answered with ``status``."""
    klass = min(max(status // 100, 1), 5) - 1
    method_index = METHOD_INDEX.get(method, len(METHODS) - 1)
    return RESPONSES + (method_index * len(STATUS_CLASSES) + klass) * SLOTS_PER_CLASS


def response_index(method: str, status: int, bucket: int) -> int:
    """The slot of one response: ``bucket`` is the index of its duration's bound in BUCKETS
    (``len(BUCKETS)`` for +Inf)."""
    return class_index(method, status) + bucket
