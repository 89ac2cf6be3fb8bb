"""Where ``MetricsRecorder.count`` puts each response: the slot of its method class, status class
and duration bucket (``layout.response_index``), exactly, whether responses repeat a slot (kept
as a run in native fields until published) or change it."""

from __future__ import annotations

from bisect import bisect_left

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


def published(responses: list[tuple[str, int, float]]) -> list[int]:
    """The response slots of a block after counting ``responses`` (each with body sizes 3, 5)."""
    shared = SharedMetrics(1)
    rec = MetricsRecorder(shared.writer(0))
    for method, status, seconds in responses:
        rec.count(method, status, seconds, 3, 5)
    rec.publish()
    return shared.read(0)


@pytest.mark.parametrize("method", METHODS)
def test_each_response_lands_in_the_slot_of_its_method_status_and_duration(method: str) -> None:
    responses = [(method, status, seconds) for status in STATUSES for seconds in DURATIONS]
    counts = published(responses)
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
    ],
)
def test_runs_of_one_slot_add_up_exactly_when_published(
    responses: list[tuple[str, int, float]],
) -> None:
    counts = published(responses)
    for response in set(responses):
        assert counts[expected_slot(*response)] == responses.count(response)
    assert sum(counts[: layout.DURATION_SUM_US]) == len(responses)


def test_counts_published_twice_are_not_counted_twice() -> None:
    shared = SharedMetrics(1)
    rec = MetricsRecorder(shared.writer(0))
    for _ in range(3):
        rec.count("GET", 200, 0.0, 0, 0)
    rec.publish()
    rec.publish()
    rec.count("GET", 200, 0.0, 0, 0)
    rec.publish()
    assert shared.read(0)[expected_slot("GET", 200, 0.0)] == 4
