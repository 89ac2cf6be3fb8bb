"""A request body as it arrives, for the interfaces that read bodies while they stream in.

The connection feeds it (``feed``, ``finish``, ``fail``) as the parser reports body pieces; an
application adapter reads it (``take`` and ``wait``). While more than ``high_water`` bytes wait
unread, the connection stops reading the socket, so a client cannot make the server hold more
than that of a body the application is slow to take (TCP pushes back on the client instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

#: unread body bytes above which reading pauses, and below which it resumes
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024


class RequestBody:
    """The body of one request, between the parser and the application."""

    __slots__ = ("chunks", "unread", "complete", "failed", "discarding", "waiter", "_on_wanted")

    def __init__(self, on_wanted: Callable[[RequestBody], None]) -> None:
        self.chunks: list[bytes] = []
        #: bytes fed and not yet taken
        self.unread = 0
        #: True once the whole body has arrived
        self.complete = False
        #: True when the body will never complete: the client left, timed out or sent bad framing
        self.failed = False
        #: True once the response is done: what still arrives is dropped (keep-alive stays in sync)
        self.discarding = False
        self.waiter: asyncio.Future[None] | None = None
        # The connection's "the application waits for this body": send 100 Continue, read on.
        self._on_wanted = on_wanted

    # --- the connection's side ----------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """A piece of the body arrived."""
        if not self.discarding:
            self.chunks.append(chunk)
            self.unread += len(chunk)
            self._wake()

    def finish(self) -> None:
        """The whole body has arrived."""
        self.complete = True
        self._wake()

    def fail(self) -> None:
        """The body will not complete (client gone, timeout, bad framing)."""
        if not self.complete:
            self.failed = True
        self._wake()

    def discard(self) -> None:
        """The response is done: drop what is buffered and whatever else arrives."""
        self.discarding = True
        self.chunks.clear()
        self.unread = 0

    @property
    def over_high_water(self) -> bool:
        """True while so much waits unread that the connection should stop reading."""
        return self.unread > HIGH_WATER

    # --- the application's side ---------------------------------------------------------------

    def take(self) -> bytes:
        """Every piece that has arrived and not been taken, joined (may be empty)."""
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.unread = 0
        self._on_wanted(self)  # room again: reading may resume
        return data

    async def wait(self) -> None:
        """Wait until more arrives, the body completes, or it fails (returns at once if so)."""
        if self.chunks or self.complete or self.failed:
            return
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = asyncio.get_running_loop().create_future()
        self._on_wanted(self)  # the client may wait for 100 Continue; reading may be paused
        await waiter

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


def _never_wanted(body: RequestBody) -> None:
    """What the empty body calls when read: nothing (it never is; nothing will arrive)."""


#: the body of every request that has none (its end came with its head): complete and empty,
#: shared rather than made per request. It never changes: feed, finish and fail are only called
#: on a body still arriving, discard only on one that is not complete, and take and wait change
#: nothing on a complete body with no pieces.
EMPTY_BODY: Final = RequestBody(_never_wanted)
EMPTY_BODY.complete = True
