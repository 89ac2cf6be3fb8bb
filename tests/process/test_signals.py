"""A server without a supervisor: SignalGuard's handlers while no event loop runs."""

from __future__ import annotations

import logging
import signal

import pytest

from peregrine.process.signals import SUPERVISOR_SIGNALS, SignalGuard


@pytest.fixture
def guard():  # type: ignore[no-untyped-def]
    stops: list[None] = []
    g = SignalGuard(lambda: stops.append(None))
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    g.install()
    try:
        yield g, stops
    finally:
        g.restore()
        for sig, handler in before.items():
            assert signal.getsignal(sig) is handler, "restore() did not put the handler back"


def test_sigterm_asks_for_a_graceful_stop(guard) -> None:  # type: ignore[no-untyped-def]
    _, stops = guard
    signal.raise_signal(signal.SIGTERM)
    assert stops == [None]


def test_second_sigint_raises_keyboard_interrupt(guard) -> None:  # type: ignore[no-untyped-def]
    _, stops = guard
    signal.raise_signal(signal.SIGINT)
    assert stops == [None]
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert stops == [None]


@pytest.mark.parametrize("sig", sorted(SUPERVISOR_SIGNALS), ids=lambda s: signal.Signals(s).name)
def test_supervisor_signals_are_logged_and_ignored(guard, sig, caplog) -> None:  # type: ignore[no-untyped-def]
    _, stops = guard
    with caplog.at_level(logging.WARNING, logger="peregrine"):
        signal.raise_signal(sig)
    assert stops == []
    assert caplog.messages == [SUPERVISOR_SIGNALS[sig]]
    assert "needs the supervisor" in caplog.messages[0]
