"""The supervisor's decisions that need no process: the restart back-off."""

from __future__ import annotations

import pytest

from peregrine.process.supervisor import restart_delay

# consecutive failures, was the slot's serving worker -> seconds before the next start
RESTART_DELAYS = [
    # a serving worker that crashed once is replaced at once; a second crash in a row waits
    (1, True, 0.0),
    (2, True, 0.5),
    (3, True, 1.0),
    # a start that failed (fork, import, bind, or a worker that never got ready) always waits
    (0, False, 0.5),  # a slot still empty when the server comes up
    (1, False, 0.5),
    (2, False, 0.5),
    (3, False, 1.0),
    (4, False, 2.0),
    (5, False, 4.0),
    (6, False, 8.0),
    # then the cap
    (7, False, 10.0),
    (7, True, 10.0),
    (1000, False, 10.0),
]


@pytest.mark.parametrize("failures, was_serving, delay", RESTART_DELAYS)
def test_restart_delay(failures: int, was_serving: bool, delay: float) -> None:
    assert restart_delay(failures, was_serving=was_serving) == delay
