"""What an HTTP/1 connection counts per response, in-process, with the clock in the test's hands.

The connection counts responses with bytes bodies inline (the hot path) and every other response
through ``MetricsRecorder.response``; both must land in the same slots of the same page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from peregrine.aio import connection as connection_module
from peregrine.metrics.recorder import MetricsRecorder
from peregrine.metrics.shared import SharedMetrics
from peregrine.metrics.text import render

from ..aio.fakes import ClockLoop, http_connection, request
from .test_text import sample


class FakeClock:
    """Stands in for ``perf_counter``: the handler moves it by the time it "takes"."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Handler:
    """``/STATUS/SECONDS``: answers STATUS after SECONDS of the fake clock, echoing the body;
    ``/async/...`` does the same from an async handler, ``/stream/...`` streams the answer (the
    exchange's path: ``response_sent``)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def handle_request(self, req: Any, resp: Any) -> Any:
        parts = req.path.strip("/").split("/")
        if parts[0] == "async":

            async def later() -> None:
                self.answer(parts[1:], req, resp)

            return later()
        if parts[0] == "stream":

            async def chunks() -> Any:
                self.clock.now += float(parts[2])
                yield b"ok:" + req.body

            resp.status = int(parts[1])
            resp.stream(chunks())
            return None
        self.answer(parts, req, resp)
        return None

    def answer(self, parts: list[str], req: Any, resp: Any) -> None:
        resp.status = int(parts[0])
        self.clock.now += float(parts[1])
        resp.set_body(b"ok:" + req.body)


@pytest.fixture
def loop() -> Iterator[ClockLoop]:
    clock_loop = ClockLoop()
    try:
        yield clock_loop
    finally:
        clock_loop.close()
    assert clock_loop.errors == [], clock_loop.errors


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(connection_module, "perf_counter", fake)
    return fake


def page_after(loop: ClockLoop, clock: FakeClock, *requests: bytes) -> str:
    """Send ``requests`` on one connection with metrics on; the page they make."""
    shared = SharedMetrics(1)
    block = shared.claim()
    assert block is not None
    wire, state = http_connection(loop, Handler(clock))
    state.metrics = MetricsRecorder(shared.writer(block))
    state.timed = True
    for data in requests:
        wire.send(data)
    assert len(wire.responses()) == len(requests)
    state.metrics.publish()
    return render(shared.totals(), {}, 0, 1)


@pytest.mark.parametrize("path_prefix", ["", "/async", "/stream"])
@pytest.mark.parametrize(
    ("method", "status", "seconds", "label", "le"),
    [
        ("GET", 200, 0.0, 'method="GET",status="2xx"', "0.001"),
        ("GET", 200, 0.001, 'method="GET",status="2xx"', "0.001"),
        ("POST", 201, 0.0011, 'method="POST",status="2xx"', "0.0025"),
        ("HEAD", 304, 0.3, 'method="HEAD",status="3xx"', "0.5"),
        ("PROPFIND", 404, 10.0, 'method="other",status="4xx"', "10"),
        ("DELETE", 503, 60.0, 'method="DELETE",status="5xx"', "+Inf"),
        ("OPTIONS", 101, 0.002, 'method="OPTIONS",status="1xx"', "0.0025"),
    ],
)
def test_a_response_counts_once_under_its_method_status_and_duration(
    loop: ClockLoop,
    clock: FakeClock,
    path_prefix: str,
    method: str,
    status: int,
    seconds: float,
    label: str,
    le: str,
) -> None:
    page = page_after(loop, clock, request(method, f"{path_prefix}/{status}/{seconds}"))
    assert sample(page, f"peregrine_requests_total{{{label}}}") == 1
    requests = [
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("peregrine_requests_total{")
    ]
    assert sum(requests) == 1
    bounds = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"]
    seen = False
    for bound in [*bounds, "1", "2.5", "5", "10", "+Inf"]:
        seen = seen or bound == le
        value = sample(page, f'peregrine_request_duration_seconds_bucket{{le="{bound}"}}')
        assert value == (1 if seen else 0), (bound, page)
    assert sample(page, "peregrine_request_duration_seconds_count") == 1
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(seconds)


@pytest.mark.parametrize("path_prefix", ["", "/async"])
def test_body_bytes_and_durations_add_up_over_keep_alive_requests(
    loop: ClockLoop, clock: FakeClock, path_prefix: str
) -> None:
    page = page_after(
        loop,
        clock,
        request("POST", f"{path_prefix}/200/0.002", body=b"12345"),
        request("GET", f"{path_prefix}/404/0.0005"),
        request("PUT", f"{path_prefix}/200/0.02", body=b"x" * 1000),
    )
    assert sample(page, "peregrine_request_body_bytes_total") == 1005
    # each answer is "ok:" and the request's body
    assert sample(page, "peregrine_response_body_bytes_total") == 8 + 3 + 1003
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(0.0225)
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.001"}') == 1
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.0025"}') == 2
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.025"}') == 3
    assert sample(page, 'peregrine_requests_total{method="GET",status="4xx"}') == 1
    assert sample(page, 'peregrine_requests_total{method="PUT",status="2xx"}') == 1


def test_a_streamed_body_counts_its_request_but_not_its_bytes(
    loop: ClockLoop, clock: FakeClock
) -> None:
    page = page_after(loop, clock, request("POST", "/stream/200/0.003", body=b"12345"))
    assert sample(page, 'peregrine_requests_total{method="POST",status="2xx"}') == 1
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.005"}') == 1
    assert sample(page, "peregrine_request_body_bytes_total") == 5
    assert sample(page, "peregrine_response_body_bytes_total") == 0  # as documented


def test_refusals_and_handler_errors_are_not_counted_as_responses(
    loop: ClockLoop, clock: FakeClock
) -> None:
    page = page_after(loop, clock, request("GET", "/oops/0"))  # int("oops"): the handler fails
    assert sample(page, "peregrine_handler_errors_total") == 1
    assert sample(page, "peregrine_request_duration_seconds_count") == 0
