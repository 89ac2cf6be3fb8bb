"""A response body going from an application thread to the event loop, bounded in memory.

The application thread :meth:`~OutputChannel.push` es chunks; the loop takes them and writes
them to the connection (:func:`pump`). The thread waits while more than :data:`LIMIT` bytes
it pushed are not yet accepted by the connection, and the connection accepts no more once its
send buffer is above ``write_buffer_high`` (it waits for the client to read): so a slow reader
makes the application wait, and memory stays at about ``LIMIT + write_buffer_high`` per
response, however long the body.

Whether the body goes out whole (with a Content-Length the server computes) or streamed
(chunked) is decided by the loop when it first looks at the channel: if the application had
finished by then, the body is whole. A short response therefore costs one hand-off, and a body
whose first piece is ready is never held back while the application produces the next (PEP 3333).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._build import mypyc_attr

if TYPE_CHECKING:
    from ..aio.exchange import AnyExchange

log = logging.getLogger("peregrine.error")

#: bytes an application thread may push ahead of what the connection has accepted
LIMIT = 256 * 1024


@mypyc_attr(native_class=False)  # mypyc cannot make a native subclass of a built-in exception
class ClientGone(ConnectionError):
    """The response cannot be delivered any more: the client left, or its connection was cut."""


class OutputChannel:
    """The body of one response between its application thread and the loop."""

    __slots__ = (
        "_lock",
        "_room",
        "chunks",
        "queued",
        "ended",
        "failed",
        "broken",
        "_waiter",
        "_post",
    )

    def __init__(self, post: Callable[[Callable[[Any], None], Any], None]) -> None:
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.chunks: list[bytes] = []
        #: bytes pushed and not yet accepted by the connection
        self.queued = 0
        #: True once the application pushed its last chunk
        self.ended = False
        #: True when the application failed after output began: the connection is cut
        self.failed = False
        #: True once the loop stopped taking chunks (client gone): pushing raises ClientGone
        self.broken = False
        # the loop waits for chunks (a future on the loop), set and cleared under the lock
        self._waiter: asyncio.Future[None] | None = None
        # runs a callable on the loop (see handler.LoopInbox.post)
        self._post = post

    # --- the application thread's side --------------------------------------------------------

    def push(self, chunk: bytes) -> None:
        """Queue ``chunk``; waits while too much is queued; raises ClientGone if undeliverable."""
        with self._lock:
            while self.queued > LIMIT and not self.broken:
                self._room.wait()
            if self.broken:
                raise ClientGone("the client has gone")
            self.chunks.append(chunk)
            self.queued += len(chunk)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._post(_wake, waiter)

    def end(self, failed: bool = False) -> None:
        """No more chunks (``failed``: the application broke off; cut the connection)."""
        with self._lock:
            self.ended = True
            self.failed = failed
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._post(_wake, waiter)

    # --- the loop's side ----------------------------------------------------------------------

    def take(self) -> tuple[list[bytes], bool]:
        """``(chunks, ended)``: what is queued, and whether that is all."""
        with self._lock:
            chunks = self.chunks
            if not chunks:
                return [], self.ended  # not the list pushes append to
            self.chunks = []
            return chunks, self.ended

    def wait(self) -> asyncio.Future[None] | None:
        """A future done when more is pushed or the body ends; None when that is so already."""
        with self._lock:
            if self.chunks or self.ended:
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            return waiter

    def accepted(self, size: int) -> None:
        """The connection took ``size`` bytes: room for the thread to push more."""
        with self._lock:
            self.queued -= size
            if self.queued <= LIMIT:
                self._room.notify()

    def close(self) -> None:
        """Take nothing more: a waiting or later ``push`` raises ClientGone."""
        with self._lock:
            self.broken = True
            self.chunks = []
            self._room.notify_all()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def pump(exchange: AnyExchange, channel: OutputChannel, first: list[bytes]) -> None:
    """Write the channel's chunks to ``exchange`` (whose head is out) until the body ends.

    Raises ConnectionError when the client goes, ``ContentLengthExceeded`` when the application
    sends more than its declared Content-Length. A body the application broke off
    (``channel.failed``) is not ended: the caller reports the failure, which cuts the
    connection. Closes the channel whatever happens.
    """
    try:
        chunks = first
        while True:
            for chunk in chunks:
                await exchange.write(chunk)
                channel.accepted(len(chunk))
            chunks, ended = channel.take()
            if chunks:
                continue
            if ended:
                break
            waiter = channel.wait()
            if waiter is not None:
                await waiter
        if not channel.failed:
            exchange.end()
        # else the application failed mid-body: the caller reports it, which cuts the connection
        # (never a complete-looking end)
    finally:
        channel.close()
