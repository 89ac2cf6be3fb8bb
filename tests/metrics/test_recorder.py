"""Where ``MetricsRecorder.count`` puts each response: the slot of its method class, status class
and duration bucket (``layout.response_index``), exactly, whether responses repeat a slot (kept
as a run in native fields until published) or change it."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

import pytest

from peregrine.metrics import layout
from peregrine.metrics.recorder import MetricsRecorder
from peregrine.metrics.shared import SharedMetrics

METHODS = [*layout.METHODS[:-1], "PROPFIND", "get", "CONNECT"]
# each status class's edges, and statuses outside 100-599 (counted as 1xx and 5xx)
STATUSES = [0, 99, 100, 199, 200, 299, 300, 399, 400, 499, 500, 599, 600, 999]
# every bound, just above it, zero and beyond the last (+Inf)
DURATIONS = [0.0, 10.5, 1000.0] + [b for bound in layout.BUCKETS for b in (bound, bound * 1.001)]


def expected_slot(method: str, status: int, seconds: float) -> int:
    return layout.response_index(method, status, bisect_left(layout.BUCKETS, seconds))


def published(responses: list[tuple[str, int, float]], pending: bool = False) -> list[int]:
    """The response slots of a block after counting ``responses`` (each with body sizes 3, 5);
    ``pending``: left in ``MetricsRecorder.pending`` for publish() to count, as the interpreted
    build's connections do (in either build here)."""
    shared = SharedMetrics(1)
    rec = MetricsRecorder(shared.writer(0))
    rec.pending = [] if pending else None
    for method, status, seconds in responses:
        if rec.pending is not None:
            rec.pending.extend((method, status, seconds, 3, 5))
        else:
            rec.count(method, status, seconds, 3, 5)
    rec.publish()
    return shared.read(0)


@pytest.mark.parametrize("pending", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_each_response_lands_in_the_slot_of_its_method_status_and_duration(
    method: str, pending: bool
) -> None:
    responses = [(method, status, seconds) for status in STATUSES for seconds in DURATIONS]
    counts = published(responses, pending)
    expected = [0] * layout.SIZE
    for response in responses:
        expected[expected_slot(*response)] += 1
    assert counts[: layout.DURATION_SUM_US] == expected[: layout.DURATION_SUM_US]
    assert counts[layout.REQUEST_BODY_BYTES] == 3 * len(responses)
    assert counts[layout.RESPONSE_BODY_BYTES] == 5 * len(responses)


@pytest.mark.parametrize(
    "responses",
    [
        [("GET", 200, 0.0)] * 5,  # one run, never switched
        [("GET", 200, 0.0)] * 3 + [("POST", 500, 2.0)] + [("GET", 200, 0.0)] * 2,
        [("GET", 200, 0.0), ("GET", 404, 0.0)] * 4,  # a switch on every response
        [("GET", 100, 0.0)],  # slot 0, the run's starting slot
        [("POST", 201, 0.0005)] * 7,  # one class in the first bucket: a batch counted whole
        [("POST", 201, 0.0005)] * 3 + [("POST", 201, 0.001)],  # on the first bound: still it
        [("POST", 201, 0.0005)] * 3 + [("POST", 201, 0.0011)],  # just past it
        [("POST", 201, 0.0)] * 3 + [("POST", 202, 0.0)],  # same class, another status
        # one class's responses in several buckets, another class between them
        [("GET", 200, 0.0), ("GET", 200, 0.003), ("GET", 200, 0.0), ("GET", 200, 20.0)]
        + [("GET", 404, 2.0), ("GET", 200, 0.003), ("GET", 200, 0.3), ("GET", 200, 0.0)],
    ],
)
@pytest.mark.parametrize("pending", [False, True])
def test_runs_of_one_slot_add_up_exactly_when_published(
    responses: list[tuple[str, int, float]], pending: bool
) -> None:
    counts = published(responses, pending)
    expected = Counter(expected_slot(*response) for response in responses)
    for slot, number in expected.items():
        assert counts[slot] == number
    assert sum(counts[: layout.DURATION_SUM_US]) == len(responses)


def test_counts_published_twice_are_not_counted_twice() -> None:
    shared = SharedMetrics(1)
    rec = MetricsRecorder(shared.writer(0))
    for _ in range(3):
        rec.count("GET", 200, 0.0, 0, 0)
    rec.publish()
    rec.publish()
    rec.count("GET", 200, 0.0, 0, 0)
    rec.count("GET", 200, 0.007, 0, 0)
    rec.publish()
    rec.count("GET", 200, 0.007, 0, 0)
    rec.publish()
    counts = shared.read(0)
    assert counts[expected_slot("GET", 200, 0.0)] == 4
    assert counts[expected_slot("GET", 200, 0.007)] == 2


@pytest.mark.parametrize("pending", [False, True])
def test_durations_and_body_sizes_are_summed_exactly(pending: bool) -> None:
    shared = SharedMetrics(1)
    rec = MetricsRecorder(shared.writer(0))
    rec.pending = [] if pending else None
    responses = [("GET", 200, 0.00025, 0, 7), ("GET", 200, 0.0005, 11, 0)] * 4
    for response in responses:
        if rec.pending is not None:
            rec.pending.extend(response)
        else:
            rec.count(*response)
    rec.publish()
    counts = shared.read(0)
    assert counts[layout.DURATION_SUM_US] == 3000  # 4 x 250 us + 4 x 500 us
    assert counts[layout.REQUEST_BODY_BYTES] == 44
    assert counts[layout.RESPONSE_BODY_BYTES] == 28
    assert rec.pending in (None, [])
