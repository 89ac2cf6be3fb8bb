"""The signals of a server running without a supervisor (``workers=1``).

The supervisor's own signals (SIGHUP reloads, SIGTTIN/SIGTTOU add or remove a worker) mean
nothing to a server without one, and their default actions would kill or stop it: such a server
logs and ignores them (:data:`SUPERVISOR_SIGNALS`). While its event loop runs, the
:class:`~.worker.Worker` handles SIGINT/SIGTERM on the loop; before and after, the
:class:`SignalGuard` does.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("peregrine")

#: the supervisor's own signals, each with the line a server running without one logs for it
#: (a supervised worker ignores them silently: they are the supervisor's business)
SUPERVISOR_SIGNALS = {
    getattr(signal, name): f"{name}: {what} needs the supervisor (workers 0 or 2+); ignored"
    for name, what in (
        ("SIGHUP", "reloading"),
        ("SIGTTIN", "adding a worker"),
        ("SIGTTOU", "removing a worker"),
    )
    if hasattr(signal, name)
}


class SignalGuard:
    """Signal handlers for a standalone server's moments without an event loop.

    Before the worker's loop runs (binding, TLS, building the worker) and after it has stopped
    (closing sockets, removing the unix socket file), the default actions of SIGTERM and SIGHUP
    would kill the process half-way and SIGTTIN/SIGTTOU would stop it. Here SIGINT/SIGTERM call
    ``on_stop`` (a second SIGINT raises KeyboardInterrupt, as usual) and the others are logged
    and ignored. The loop's own handlers take over while it runs. Main thread only; elsewhere
    (``signal`` refuses) it does nothing.
    """

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self._saved: dict[int, Any] = {}
        self._interrupts = 0

    def install(self) -> None:
        """Put the guard's handlers in place (again: the loop resets them when it closes)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM, *SUPERVISOR_SIGNALS):
            previous = signal.signal(sig, self._handle)
            self._saved.setdefault(sig, previous)

    def restore(self) -> None:
        """Put back the handlers found at the first :meth:`install`."""
        for sig, handler in self._saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()

    def _handle(self, number: int, frame: Any) -> None:
        if number in SUPERVISOR_SIGNALS:
            log.warning(SUPERVISOR_SIGNALS[number])
            return
        if number == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                raise KeyboardInterrupt
        log.info("shutting down gracefully")
        self.on_stop()
