"""The Prometheus text format, the counter layout and the shared blocks, in-process."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest

from peregrine.metrics import layout
from peregrine.metrics.recorder import MetricsRecorder
from peregrine.metrics.shared import SharedMetrics
from peregrine.metrics.text import render

SAMPLE = re.compile(r'^([a-z_]+)(\{([a-z_]+="[^"]*")(,[a-z_]+="[^"]*")*\})? (\S+)$')


def sample(page: str, series: str) -> float:
    """The value of one series (``name{labels}`` exactly as written) on a page."""
    for line in page.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} not on the page:\n{page}")


def request(method: str = "GET", body: bytes = b"") -> SimpleNamespace:
    return SimpleNamespace(method=method, body=body)


def response(status: int = 200, body: bytes = b"", file: object = None) -> SimpleNamespace:
    return SimpleNamespace(
        status=status, body=body, file=file, _stream_file_or_upgrade=file is not None
    )


def recorder() -> tuple[SharedMetrics, int, MetricsRecorder]:
    shared = SharedMetrics(4)
    block = shared.claim()
    assert block is not None
    return shared, block, MetricsRecorder(shared.writer(block))


@pytest.mark.parametrize(
    ("method", "status", "label"),
    [
        ("GET", 200, 'method="GET",status="2xx"'),
        ("HEAD", 304, 'method="HEAD",status="3xx"'),
        ("POST", 404, 'method="POST",status="4xx"'),
        ("DELETE", 503, 'method="DELETE",status="5xx"'),
        ("PROPFIND", 101, 'method="other",status="1xx"'),
        ("OPTIONS", 204, 'method="OPTIONS",status="2xx"'),
    ],
)
def test_each_response_counts_once_under_its_method_and_status_class(
    method: str, status: int, label: str
) -> None:
    shared, _, rec = recorder()
    rec.response(request(method), response(status), 10.0, 10.002)
    rec.publish()
    page = render(shared.totals(), {}, 0, 1)
    assert sample(page, f"peregrine_requests_total{{{label}}}") == 1
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("peregrine_requests_total{")
    )
    assert total == 1


def test_every_line_is_a_comment_or_a_well_formed_sample() -> None:
    shared, _, rec = recorder()
    rec.response(request(), response(), 0.0, 0.01)
    rec.publish()
    page = render(shared.totals(), {"killed": 2, "max_requests": 1}, 3, 2)
    assert page.endswith("\n")
    families = set()
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            families.add(name)
        elif line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4
        else:
            match = SAMPLE.match(line)
            assert match, line
            base = re.sub(r"_(bucket|sum|count)$", "", match.group(1))
            assert match.group(1) in families or base in families, line
    assert sample(page, 'peregrine_worker_restarts_total{cause="killed"}') == 2
    assert sample(page, 'peregrine_worker_restarts_total{cause="max_requests"}') == 1
    assert sample(page, "peregrine_reloads_total") == 3
    assert sample(page, "peregrine_workers") == 2


@pytest.mark.parametrize(
    ("seconds", "first_bucket"),
    [
        (0.0, "0.001"),
        (0.001, "0.001"),
        (0.0011, "0.0025"),
        (0.3, "0.5"),
        (10.0, "10"),
        (60.0, "+Inf"),
    ],
)
def test_duration_histogram_is_cumulative_with_sum_and_count(
    seconds: float, first_bucket: str
) -> None:
    shared, _, rec = recorder()
    rec.response(request(), response(), 0.0, seconds)
    rec.publish()
    page = render(shared.totals(), {}, 0, 1)
    bounds = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"]
    bounds += ["1", "2.5", "5", "10"]
    seen = False
    for le in [*bounds, "+Inf"]:
        seen = seen or le == first_bucket
        value = sample(page, f'peregrine_request_duration_seconds_bucket{{le="{le}"}}')
        assert value == (1 if seen else 0), (le, page)
    assert sample(page, "peregrine_request_duration_seconds_count") == 1
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(
        seconds, abs=1e-6
    )


@pytest.mark.parametrize("start", [0.0, 1000.0, 123456.789, 4_000_000.001])
@pytest.mark.parametrize("index", range(len(layout.BUCKETS)))
def test_a_duration_on_a_bound_counts_in_its_bucket_and_one_just_above_in_the_next(
    start: float, index: int
) -> None:
    # durations are differences of two perf_counter floats: the bucket is the first whose bound
    # is at least that difference, exactly (Prometheus's le), with no margin either way
    bound = layout.BUCKETS[index]
    below = start + bound - 2e-7
    above = start + bound + 2e-7
    shared, _, rec = recorder()
    for now in (below, above):
        rec.response(request(), response(), start, now)
    if start == 0.0:  # a difference that is the bound's float itself
        rec.response(request(), response(), start, bound)
        rec.response(request(), response(), start, math.nextafter(bound, math.inf))
    rec.publish()
    page = render(shared.totals(), {}, 0, 1)
    inside = 2 if start == 0.0 else 1
    for i, le in enumerate(
        ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25"]
        + ["0.5", "1", "2.5", "5", "10", "+Inf"]
    ):
        expected = 0 if i < index else inside if i == index else 2 * inside
        value = sample(page, f'peregrine_request_duration_seconds_bucket{{le="{le}"}}')
        assert value == expected, (start, bound, le, page)


def test_body_bytes_refusals_and_handler_errors() -> None:
    shared, _, rec = recorder()
    rec.response(request("POST", b"12345"), response(201, b"abc"), 0.0, 0.0)
    rec.response(request(), response(200, b"", file=(None, 0, 1000)), 0.0, 0.0)
    for status in (400, 408, 413, 413, 414, 431, 503, 500):
        rec.refused(status)
    rec.publish()
    page = render(shared.totals(), {}, 0, 1)
    assert sample(page, "peregrine_request_body_bytes_total") == 5
    assert sample(page, "peregrine_response_body_bytes_total") == 1003
    expected = {400: 1, 408: 1, 413: 2, 414: 1, 431: 1, 503: 1}
    for status, count in expected.items():
        assert sample(page, f'peregrine_refused_requests_total{{status="{status}"}}') == count
    assert sample(page, "peregrine_handler_errors_total") == 1


def test_nothing_is_shared_until_published() -> None:
    shared, _, rec = recorder()
    rec.response(request(), response(), 0.0, 0.0)
    assert (
        sample(
            render(shared.totals(), {}, 0, 1), 'peregrine_requests_total{method="GET",status="2xx"}'
        )
        == 0
    )
    rec.publish()
    assert (
        sample(
            render(shared.totals(), {}, 0, 1), 'peregrine_requests_total{method="GET",status="2xx"}'
        )
        == 1
    )


def test_an_exited_workers_counters_are_kept_and_its_gauges_dropped() -> None:
    shared, block, rec = recorder()
    rec.response(request(), response(), 0.0, 0.0)
    http_conn = type("HttpConnection", (), {})()
    lingering = type("Lingerer", (), {})()  # an HTTP connection reading out after an error
    ws_conn = type("WebSocketConnection", (), {})()
    rec.publish([http_conn, lingering, ws_conn])
    page = render(shared.totals(), {}, 0, 1)
    assert sample(page, 'peregrine_open_connections{protocol="http"}') == 2
    assert sample(page, 'peregrine_open_connections{protocol="websocket"}') == 1
    shared.release(block)
    page = render(shared.totals(), {}, 0, 0)
    assert sample(page, 'peregrine_requests_total{method="GET",status="2xx"}') == 1
    assert sample(page, 'peregrine_open_connections{protocol="http"}') == 0
    # the freed block is handed out zeroed: the next worker starts from nothing
    again = shared.claim()
    assert again is not None and shared.read(again) == [0] * layout.SIZE
    assert (
        sample(
            render(shared.totals(), {}, 0, 1), 'peregrine_requests_total{method="GET",status="2xx"}'
        )
        == 1
    )


def test_claim_returns_none_when_every_block_is_taken() -> None:
    shared = SharedMetrics(2)
    assert {shared.claim(), shared.claim()} == {0, 1}
    assert shared.claim() is None


def test_label_values_are_escaped() -> None:
    page = render([0] * layout.SIZE, {'odd"cause\\': 1}, 0, 0)
    assert 'peregrine_worker_restarts_total{cause="odd\\"cause\\\\"} 1' in page
