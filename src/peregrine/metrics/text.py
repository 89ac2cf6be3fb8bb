"""The Prometheus text exposition format (version 0.0.4) of Peregrine's metrics."""

from __future__ import annotations

from collections.abc import Mapping

from . import layout

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(float(value))


def render(
    totals: list[int],
    restarts: Mapping[str, int],
    reloads: int,
    workers: int,
) -> str:
    """The metrics page: ``totals`` as from :meth:`SharedMetrics.totals`; ``restarts`` by cause."""
    lines: list[str] = []
    _family(
        lines,
        "peregrine_requests_total",
        "counter",
        "Requests answered, by method and status class.",
    )
    # each response is in one slot of its method, status class and duration bucket: the
    # requests are the sums over buckets, the histogram the sums over methods and statuses
    per_bucket = [0] * layout.SLOTS_PER_CLASS
    for method in layout.METHODS:
        for klass_index, klass in enumerate(layout.STATUS_CLASSES):
            first = layout.class_index(method, (klass_index + 1) * 100)
            slots = totals[first : first + layout.SLOTS_PER_CLASS]
            for bucket, count in enumerate(slots):
                per_bucket[bucket] += count
            value = sum(slots)
            lines.append(f'peregrine_requests_total{{method="{method}",status="{klass}"}} {value}')
    name = "peregrine_request_duration_seconds"
    _family(lines, name, "histogram", "Time from the handler's call to the response's last write.")
    cumulative = 0
    for i, bound in enumerate((*layout.BUCKETS, None)):
        cumulative += per_bucket[i]
        le = "+Inf" if bound is None else _number(bound)
        lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
    lines.append(f"{name}_sum {_number(totals[layout.DURATION_SUM_US] / 1_000_000)}")
    lines.append(f"{name}_count {cumulative}")
    _family(
        lines,
        "peregrine_request_body_bytes_total",
        "counter",
        "Bytes of request bodies handed to handlers.",
    )
    lines.append(f"peregrine_request_body_bytes_total {totals[layout.REQUEST_BODY_BYTES]}")
    _family(
        lines,
        "peregrine_response_body_bytes_total",
        "counter",
        "Bytes of response bodies sent (bytes and file bodies; streamed bodies are not counted).",
    )
    lines.append(f"peregrine_response_body_bytes_total {totals[layout.RESPONSE_BODY_BYTES]}")
    _family(
        lines,
        "peregrine_refused_requests_total",
        "counter",
        "Requests the server answered itself because a limit was hit, by status.",
    )
    for status in layout.REFUSALS:
        value = totals[layout.REFUSAL_INDEX[status]]
        lines.append(f'peregrine_refused_requests_total{{status="{status}"}} {value}')
    _family(
        lines, "peregrine_handler_errors_total", "counter", "Handler exceptions answered with 500."
    )
    lines.append(f"peregrine_handler_errors_total {totals[layout.HANDLER_ERRORS]}")
    _family(lines, "peregrine_open_connections", "gauge", "Connections open now, by protocol.")
    lines.append(f'peregrine_open_connections{{protocol="http"}} {totals[layout.OPEN_HTTP]}')
    lines.append(
        f'peregrine_open_connections{{protocol="websocket"}} {totals[layout.OPEN_WEBSOCKET]}'
    )
    _family(
        lines,
        "peregrine_worker_restarts_total",
        "counter",
        "Workers replaced other than by a reload, by cause.",
    )
    for cause in sorted(restarts):
        lines.append(
            f'peregrine_worker_restarts_total{{cause="{_label(cause)}"}} {restarts[cause]}'
        )
    _family(lines, "peregrine_reloads_total", "counter", "Rolling restarts (SIGHUP) begun.")
    lines.append(f"peregrine_reloads_total {reloads}")
    _family(lines, "peregrine_workers", "gauge", "Worker processes running now.")
    lines.append(f"peregrine_workers {workers}")
    return "\n".join(lines) + "\n"
