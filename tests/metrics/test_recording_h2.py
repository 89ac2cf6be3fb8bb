"""What an HTTP/2 connection counts per response, in-process, with the clock in the test's hands
(the connection's clock, ``ServerState.clock``, is the loop's here): a stream answered inside
the read that brought it takes the time its synchronous handler ran, one answered later the
time until its answer. The handler is the HTTP/1 tests' (``test_recording.Handler``)."""

from __future__ import annotations

from collections.abc import Iterator

import hpack
import pytest

from peregrine.aio.h2connection import Http2Connection
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.http2 import frames as f
from peregrine.metrics.recorder import MetricsRecorder
from peregrine.metrics.shared import SharedMetrics
from peregrine.metrics.text import render

from ..aio.fakes import ClockLoop, FakeTransport, clock_loop
from .test_recording import BOUNDS, Handler, durations
from .test_text import sample


@pytest.fixture
def loop() -> Iterator[ClockLoop]:
    """A hand-moved loop (``page_after`` makes its clock the connection's)."""
    with clock_loop() as hand_moved:
        yield hand_moved


def page_after(loop: ClockLoop, paths: list[str], seconds: float, loop_clock: bool = False) -> str:
    """GET each of ``paths`` on its own stream, all in one read; move the loop's clock by
    ``seconds``; the page the answers make. ``loop_clock``: the duration clock is also the one
    the server knows to be the loop's (``ServerState.loop_clock``), as perf_counter is under
    uvloop, so the connection reads it at each read and its streams start there."""
    shared = SharedMetrics(1)
    block = shared.claim()
    assert block is not None
    state = ServerState(Config(), Handler(loop), loop)
    state.clock = loop.time
    if loop_clock:
        state.loop_clock = state.clock
    state.metrics = MetricsRecorder(shared.writer(block))
    state.timed = True
    connection = Http2Connection(state)
    connection.connection_made(FakeTransport(loop))  # type: ignore[arg-type]
    encoder = hpack.Encoder()
    read = f.PREFACE + f.settings_frame([])
    for i, path in enumerate(paths):
        fields = encoder.encode(
            [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "t")]
        )
        flags = f.FLAG_END_HEADERS | f.FLAG_END_STREAM
        read += f.frame_header(len(fields), f.HEADERS, flags, 1 + 2 * i) + fields
    connection.data_received(read)
    loop.advance(seconds)
    assert state.requests == len(paths)
    state.metrics.publish()
    return render(shared.totals(), {}, 0, 1)


def test_streams_answered_inside_their_read_take_their_handlers_time(loop: ClockLoop) -> None:
    page = page_after(loop, ["/200/0", "/404/0.003", "/200/2.0"], 0.0)
    assert sample(page, 'peregrine_requests_total{method="GET",status="2xx"}') == 2
    assert sample(page, 'peregrine_requests_total{method="GET",status="4xx"}') == 1
    # cumulative: 0 s in le="0.001", 3 ms in le="0.005", 2 s in le="2.5"
    assert durations(page) == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3], page
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(2.003)
    assert sample(page, "peregrine_response_body_bytes_total") == 9


@pytest.mark.parametrize(
    ("seconds", "le"), [(0.0009, "0.001"), (0.002, "0.0025"), (0.003, "0.005"), (0.3, "0.5")]
)
def test_a_stream_answered_later_takes_the_time_until_its_answer(
    loop: ClockLoop, seconds: float, le: str
) -> None:
    page = page_after(loop, [f"/async/201/{seconds}"], seconds)
    assert sample(page, 'peregrine_requests_total{method="GET",status="2xx"}') == 1
    first = BOUNDS.index(le)
    assert durations(page) == [0] * first + [1] * (len(BOUNDS) - first), page
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(seconds)


def test_streams_of_one_read_start_at_that_read_on_the_loops_own_clock(loop: ClockLoop) -> None:
    # the read is the streams' arrival: each duration covers its own handler and the handlers
    # run before it in that read (0 s; 0 + 3 ms; 0 + 3 ms + 2 s), all on one clock read
    page = page_after(loop, ["/200/0", "/404/0.003", "/200/2.0"], 0.0, loop_clock=True)
    assert sample(page, 'peregrine_requests_total{method="GET",status="2xx"}') == 2
    assert sample(page, 'peregrine_requests_total{method="GET",status="4xx"}') == 1
    # cumulative: 0 s in le="0.001", 3 ms in le="0.005", 2.003 s in le="2.5"
    assert durations(page) == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3], page
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(2.006)


@pytest.mark.parametrize(("seconds", "le"), [(0.0009, "0.001"), (0.002, "0.0025"), (0.3, "0.5")])
def test_a_stream_answered_later_on_the_loops_own_clock_takes_the_time_until_its_answer(
    loop: ClockLoop, seconds: float, le: str
) -> None:
    page = page_after(loop, [f"/async/201/{seconds}"], seconds, loop_clock=True)
    first = BOUNDS.index(le)
    assert durations(page) == [0] * first + [1] * (len(BOUNDS) - first), page
    assert sample(page, "peregrine_request_duration_seconds_sum") == pytest.approx(seconds)
