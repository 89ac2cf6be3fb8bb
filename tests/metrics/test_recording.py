"""What an HTTP/1 connection counts per response, in-process, with the clock in the test's hands.

The connection counts responses with bytes bodies inline (the hot path) and every other response
through ``MetricsRecorder.response``; both must land in the same slots of the same page. Durations
are read on ``ServerState.clock`` (``perf_counter``) when the handler is called and when the
response goes to the transport; here that clock is ``ClockLoop``'s, which a synchronous handler
moves by the time it "takes" and an awaiting one by sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.metrics.recorder import MetricsRecorder
from peregrine.metrics.shared import SharedMetrics
from peregrine.metrics.text import render
from peregrine.wsgi.handler import WsgiHandler

from ..aio.fakes import ClockLoop, Wire, clock_loop, http_connection, request
from .test_text import sample


class Handler:
    """``/STATUS/SECONDS``: answers STATUS, echoing the body, after running SECONDS by the loop's
    clock without giving the loop a turn (a slow synchronous handler); ``/async/...`` answers
    from an async handler after ``asyncio.sleep(SECONDS)``; ``/stream/...`` sleeps as much
    before streaming its answer (the exchange's path: ``response_sent``)."""

    def __init__(self, loop: ClockLoop) -> None:
        self.loop = loop

    def handle_request(self, req: Any, resp: Any) -> Any:
        parts = req.path.strip("/").split("/")
        if parts[0] == "async":

            async def later() -> None:
                await asyncio.sleep(float(parts[2]))
                self.answer(parts[1:], req, resp, 0.0)

            return later()
        if parts[0] == "stream":

            async def chunks() -> Any:
                await asyncio.sleep(float(parts[2]))
                yield b"ok:" + req.body

            resp.status = int(parts[1])
            resp.stream(chunks())
            return None
        self.answer(parts, req, resp, float(parts[1]))
        return None

    def answer(self, parts: list[str], req: Any, resp: Any, busy: float) -> None:
        resp.status = int(parts[0])
        self.loop._ns += round(busy * 1_000_000_000)
        resp.set_body(b"ok:" + req.body)


@pytest.fixture
def loop() -> Iterator[ClockLoop]:
    """A hand-moved loop (``page_after`` makes its clock the connection's)."""
    with clock_loop() as hand_moved:
        yield hand_moved


def page_after(loop: ClockLoop, requests: list[tuple[bytes, float]]) -> str:
    """Send each request and move the loop's clock by its seconds, on one connection with
    metrics on; the page they make."""
    shared = SharedMetrics(1)
    block = shared.claim()
    assert block is not None
    wire, state = http_connection(loop, Handler(loop))
    state.clock = loop.time
    state.metrics = MetricsRecorder(shared.writer(block))
    state.timed = True
    for data, seconds in requests:
        wire.send(data)
        loop.advance(seconds)
    assert len(wire.responses()) == len(requests)
    state.metrics.publish()
    return render(shared.totals(), {}, 0, 1)


BOUNDS = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"]
BOUNDS += ["1", "2.5", "5", "10", "+Inf"]


def durations(page: str) -> list[int]:
    """The histogram's buckets, cumulative, in the order of ``BOUNDS``."""
    return [
        int(sample(page, f'peregrine_request_duration_seconds_bucket{{le="{bound}"}}'))
        for bound in BOUNDS
    ]


@pytest.mark.parametrize("path_prefix", ["", "/async", "/stream"])
@pytest.mark.parametrize(
    ("method", "status", "seconds", "label", "le"),
    [
        ("GET", 200, 0.0, 'method="GET",status="2xx"', "0.001"),
        ("GET", 200, 0.0009, 'method="GET",status="2xx"', "0.001"),
        ("POST", 201, 0.002, 'method="POST",status="2xx"', "0.0025"),
        ("POST", 201, 0.003, 'method="POST",status="2xx"', "0.005"),
        ("PUT", 200, 0.0049, 'method="PUT",status="2xx"', "0.005"),
        ("HEAD", 304, 0.3, 'method="HEAD",status="3xx"', "0.5"),
        ("PROPFIND", 404, 9.0, 'method="other",status="4xx"', "10"),
        ("DELETE", 503, 60.0, 'method="DELETE",status="5xx"', "+Inf"),
        ("OPTIONS", 101, 0.002, 'method="OPTIONS",status="1xx"', "0.0025"),
    ],
)
def test_a_response_counts_once_under_its_method_status_and_duration(
    loop: ClockLoop,
    path_prefix: str,
    method: str,
    status: int,
    seconds: float,
    label: str,
    le: str,
) -> None:
    # "": a synchronous handler answered in the callback that ran it; its own run is its time
    page = page_after(loop, [(request(method, f"{path_prefix}/{status}/{seconds}"), seconds)])
    assert sample(page, f"peregrine_requests_total{{{label}}}") == 1
    requests = [
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("peregrine_requests_total{")
    ]
    assert sum(requests) == 1
    first = BOUNDS.index(le)
    assert durations(page) == [0] * first + [1] * (len(BOUNDS) - first), page
    assert sample(page, "peregrine_request_duration_seconds_count") == 1
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(seconds)


@pytest.mark.parametrize("path_prefix", ["", "/async", "/stream"])
def test_body_bytes_and_durations_add_up_over_keep_alive_requests(
    loop: ClockLoop, path_prefix: str
) -> None:
    page = page_after(
        loop,
        [
            (request("POST", f"{path_prefix}/200/0.002", body=b"12345"), 0.002),
            (request("GET", f"{path_prefix}/404/0.0005"), 0.0005),
            (request("PUT", f"{path_prefix}/200/0.02", body=b"x" * 1000), 0.02),
        ],
    )
    assert sample(page, "peregrine_request_body_bytes_total") == 1005
    if path_prefix != "/stream":  # each answer is "ok:" and the request's body
        assert sample(page, "peregrine_response_body_bytes_total") == 8 + 3 + 1003
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(0.0225)
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.001"}') == 1
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.0025"}') == 2
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.01"}') == 2
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.025"}') == 3
    assert sample(page, 'peregrine_requests_total{method="GET",status="4xx"}') == 1
    assert sample(page, 'peregrine_requests_total{method="PUT",status="2xx"}') == 1


def test_a_streamed_body_counts_its_request_but_not_its_bytes(loop: ClockLoop) -> None:
    page = page_after(loop, [(request("POST", "/stream/200/0.003", body=b"12345"), 0.003)])
    assert sample(page, 'peregrine_requests_total{method="POST",status="2xx"}') == 1
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.0025"}') == 0
    assert sample(page, 'peregrine_request_duration_seconds_bucket{le="0.005"}') == 1
    assert sample(page, "peregrine_request_body_bytes_total") == 5
    assert sample(page, "peregrine_response_body_bytes_total") == 0  # as documented


def test_refusals_and_handler_errors_are_not_counted_as_responses(loop: ClockLoop) -> None:
    page = page_after(loop, [(request("GET", "/oops/0"), 0.0)])  # int("oops"): the handler fails
    assert sample(page, "peregrine_handler_errors_total") == 1
    assert sample(page, "peregrine_request_duration_seconds_count") == 0


def test_with_metrics_and_the_access_log_off_no_clock_is_read(loop: ClockLoop) -> None:
    def no_clock() -> float:
        raise AssertionError("a clock was read with metrics and the access log off")

    wire, state = http_connection(loop, Handler(loop))
    state.clock = no_clock
    assert not state.timed
    paths = ["/200/0.001", "/async/200/0.001", "/stream/200/0.001"]
    for path in paths:
        wire.send(request("POST", path, body=b"12"))
        loop.advance(0.001)
    assert [response.status for response in wire.responses()] == [200, 200, 200]


class CountingClock:
    """A clock that says each read's value, a millisecond apart from the last, and keeps them."""

    def __init__(self, start: float) -> None:
        self.reads: list[float] = []
        self.next = start

    def __call__(self) -> float:
        self.reads.append(self.next)
        self.next += 0.001
        return self.reads[-1]


def connection_with_metrics(loop: ClockLoop, clock: CountingClock, shared_with_loop: bool) -> Any:
    """A connection with metrics on whose durations are read on ``clock``; ``shared_with_loop``:
    that clock is also the loop's (``ServerState.loop_clock``)."""
    wire, state = http_connection(loop, Handler(loop), keep_alive_timeout=5.0)
    state.clock = clock
    state.loop_clock = clock if shared_with_loop else None
    state.metrics = MetricsRecorder(SharedMetrics(1).writer(0))
    state.timed = True
    return wire


@pytest.mark.parametrize("path", ["/200/0", "/200/0.002"])
def test_the_keep_alive_deadline_is_the_responses_end_read_when_that_clock_is_the_loops(
    loop: ClockLoop, path: str
) -> None:
    clock = CountingClock(5000.0)  # far from the loop's time: a deadline from it shows
    wire = connection_with_metrics(loop, clock, shared_with_loop=True)
    wire.send(request("GET", path))
    assert [response.status for response in wire.responses()] == [200]
    assert len(clock.reads) == 2  # the handler's call and the response's end, nothing more
    assert wire.protocol.deadline == clock.reads[-1] + 5.0


@pytest.mark.parametrize("path", ["/async/200/0", "/stream/200/0"])
def test_a_response_finished_after_an_await_takes_the_loops_clock_for_its_keep_alive_deadline(
    loop: ClockLoop, path: str
) -> None:
    # its end read was made in another call than the one that sets the deadline (exchange_done)
    clock = CountingClock(5000.0)
    wire = connection_with_metrics(loop, clock, shared_with_loop=True)
    wire.send(request("GET", path))
    assert [response.status for response in wire.responses()] == [200]
    assert wire.protocol.deadline == loop.time() + 5.0


@pytest.mark.parametrize("path", ["/200/0", "/async/200/0", "/stream/200/0"])
def test_the_keep_alive_deadline_is_on_the_loops_clock_when_the_metrics_clock_is_another(
    loop: ClockLoop, path: str
) -> None:
    clock = CountingClock(5000.0)
    wire = connection_with_metrics(loop, clock, shared_with_loop=False)
    wire.send(request("GET", path))
    assert [response.status for response in wire.responses()] == [200]
    assert wire.protocol.deadline == loop.time() + 5.0


def test_a_response_sent_later_does_not_lend_its_end_to_a_later_keep_alive_deadline(
    loop: ClockLoop,
) -> None:
    # an async response's end is read outside data_received: the next feed, a health check
    # answered without the handler, must take the loop's time, not that older read
    clock = CountingClock(loop.time())
    wire, state = http_connection(loop, Handler(loop), keep_alive_timeout=5.0, health_path="/hz")
    state.clock = state.loop_clock = clock
    state.metrics = MetricsRecorder(SharedMetrics(1).writer(0))
    state.timed = True
    state.serving = True
    wire.send(request("GET", "/async/200/0.5"))
    loop.advance(0.5)
    loop.advance(3.0)
    wire.send(request("GET", "/hz"))
    assert [response.status for response in wire.responses()] == [200, 200]
    assert wire.protocol.deadline == loop.time() + 5.0


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers ``ok`` whole, on the loop (``--threads 0``: sent within data_received)."""
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def timed_wsgi_connection(
    loop: ClockLoop, threads: int, shared_with_loop: bool
) -> tuple[Wire, CountingClock, WsgiHandler]:
    """A WSGI connection (``wsgi_app``) with metrics on a counting clock, which is also the
    loop's clock when ``shared_with_loop``; keep-alive timeout 5 s."""
    clock = CountingClock(5000.0)
    config = Config(threads=threads, keep_alive_timeout=5.0)
    handler = WsgiHandler(wsgi_app, config)
    wire, state = http_connection(loop, handler, state=ServerState(config, handler, loop))
    state.clock = clock
    state.loop_clock = clock if shared_with_loop else None
    state.metrics = MetricsRecorder(SharedMetrics(1).writer(0))
    state.timed = True
    return wire, clock, handler


@pytest.mark.parametrize("shared_with_loop", [True, False])
def test_a_wsgi_response_sent_whole_lends_its_end_to_the_keep_alive_deadline_like_a_native_one(
    loop: ClockLoop, shared_with_loop: bool
) -> None:
    wire, clock, handler = timed_wsgi_connection(loop, 0, shared_with_loop)
    for _ in range(2):
        wire.send(request("GET", "/"))
        loop.advance(1.0)
    assert [response.status for response in wire.responses()] == [200, 200]
    assert len(clock.reads) == 4  # each request's start and end, nothing more
    if shared_with_loop:
        assert wire.protocol.deadline == clock.reads[-1] + 5.0
    else:
        assert wire.protocol.deadline == loop.time() - 1.0 + 5.0


@pytest.mark.parametrize("shared_with_loop", [True, False])
def test_a_wsgi_pool_response_lends_its_end_to_the_keep_alive_deadline_like_a_native_one(
    loop: ClockLoop, shared_with_loop: bool
) -> None:
    # the response is sent on the loop when a pool thread has made it, then the exchange ends
    # in the same call: its end read is "now" for the deadline that follows
    wire, clock, handler = timed_wsgi_connection(loop, 2, shared_with_loop)
    try:
        statuses = []
        for _ in range(2):
            wire.send(request("GET", "/"))
            for _ in range(1000):  # the pool thread's answer reaches the loop (bounded wait)
                loop.run_ready()
                responses = wire.responses()
                if responses:
                    break
                time.sleep(0.002)
            statuses += [response.status for response in responses]
            loop.advance(1.0)
    finally:
        handler.close()
    assert statuses == [200, 200]
    assert len(clock.reads) == 4  # each request's start and end, nothing more
    if shared_with_loop:
        assert wire.protocol.deadline == clock.reads[-1] + 5.0
    else:
        assert wire.protocol.deadline == loop.time() - 1.0 + 5.0
