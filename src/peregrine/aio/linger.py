"""The lingering close: how a connection ends after an error response.

Closing a TCP socket while bytes from the client still sit unread in it makes Linux answer with
a reset rather than a FIN, and data arriving after the close gets one too. A reset makes the
client's kernel drop what it has received but not yet handed to the application: the answers to
the requests it pipelined before the bad one, and the error response itself. That happens after
every refusal that leaves input unread: a malformed request followed by more bytes, a 413 sent
before the body it refuses, a 408 while the client still sends.

So after writing an error response the HTTP connection hands its transport to a
:class:`Lingerer` (as nginx's ``lingering_close`` and Apache do), which

1. shuts down the write side once the buffered output has gone (``write_eof``; the client reads
   everything, then EOF), where the transport can (TLS cannot: its output is simply flushed);
2. reads and throws away whatever the client still sends, at most ``lingering_max`` bytes;
3. closes when the client closes its side, when the bytes run over, or after
   ``lingering_timeout`` seconds. That period starts again while our output is still being
   delivered and shrinking (a slow reader is not a stalled one); output that has not moved in a
   whole period means a client that no longer reads, and the connection is dropped.

Its one timer is cancelled in ``connection_lost``, however the connection ends.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Lingerer(asyncio.Protocol):
    """Drains and discards a refused client's input for a bounded time and amount, then closes.

    ``transport``'s previous protocol must have written its last bytes and let go of it; call
    :meth:`start` to take it over. ``state`` is the worker's ``ServerState``: the lingering
    connection counts among its connections until it is gone.
    """

    __slots__ = ("transport", "state", "loop", "timeout", "budget", "timer", "backlog", "ended")

    def __init__(self, transport: asyncio.Transport, state: Any) -> None:
        self.transport = transport
        self.state = state
        self.loop: asyncio.AbstractEventLoop = state.loop
        self.timeout: float = state.config.lingering_timeout
        #: bytes we still read and discard before closing anyway
        self.budget: int = state.config.lingering_max
        self.timer: asyncio.TimerHandle | None = None
        #: our unsent output when the timer was set: has it shrunk when the timer fires?
        self.backlog = 0
        self.ended = False

    def start(self) -> None:
        """Take the transport over: half-close it, and read until one of the bounds is met."""
        transport = self.transport
        transport.set_protocol(self)
        self.state.connections.add(self)
        if transport.can_write_eof():
            transport.write_eof()  # sent as a FIN once the buffered output has gone
        self.backlog = transport.get_write_buffer_size()
        self.timer = self.loop.call_later(self.timeout, self._on_timer)
        transport.resume_reading()

    # --- asyncio callbacks --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.budget -= len(data)
        if self.budget < 0:
            self._end()

    def eof_received(self) -> bool | None:
        # The client has sent all it will: closing now cannot cause a reset. Returning None lets
        # the transport close (after flushing what is left of our output).
        self._stop_timer()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ended = True
        self._stop_timer()
        self.state.connections.discard(self)

    # --- ending ---------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        self.timer = None
        if self.ended:
            return
        backlog = self.transport.get_write_buffer_size()
        if backlog and backlog < self.backlog:
            # still being delivered, slowly: the client reads, so it gets another period
            self.backlog = backlog
            self.timer = self.loop.call_later(self.timeout, self._on_timer)
            return
        self._end()

    def _end(self) -> None:
        """Close now: gracefully when our output has gone, else drop it (nobody reads it)."""
        self.ended = True
        self._stop_timer()
        transport = self.transport
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # --- graceful shutdown (the worker treats every connection alike) ------------------------

    def is_idle(self) -> bool:
        """Never: closing early would cause the reset the linger is there to avoid.

        A worker shutting down waits for it like for a response in flight; its own bounds
        (``lingering_timeout``) end it first.
        """
        return False

    def shutdown(self) -> None:
        """Nothing to do: the linger ends on its own, within its bounds."""
