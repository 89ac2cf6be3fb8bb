"""The send timeout: drop a client that reads nothing of what we send.

A slow client is not a stalled one. The watchdog looks at the transport's unsent backlog every
``timeout`` seconds while there is one, and gives up on the client only when the backlog has not
shrunk since the last look. Shared by the HTTP and WebSocket protocols.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("peregrine.error")


class SendWatchdog:
    """Calls ``on_stall`` when ``transport``'s backlog stops shrinking for ``timeout`` seconds."""

    __slots__ = ("loop", "transport", "timeout", "on_stall", "_timer", "_backlog")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: Any,
        timeout: float,
        on_stall: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.transport = transport
        self.timeout = timeout
        self.on_stall = on_stall
        self._timer: asyncio.TimerHandle | None = None
        self._backlog = 0

    def start(self) -> None:
        """Watch from now on (does nothing when already watching)."""
        if self._timer is None:
            self._backlog = self.transport.get_write_buffer_size()
            self._timer = self.loop.call_later(self.timeout, self._check)

    def stop(self) -> None:
        """Stop watching; called on resume_writing and on every close path."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        backlog = self.transport.get_write_buffer_size()
        if not backlog:
            return
        if backlog >= self._backlog:
            log.info("send timeout: dropping a client that stopped reading")
            self.on_stall()
            return
        self._backlog = backlog
        self._timer = self.loop.call_later(self.timeout, self._check)
