"""``wsgi.input``: the request body, read by the application from its own thread.

Two kinds, one reading interface (:class:`BodyReader`: ``read``, ``readline``, ``readlines``,
iteration):

- :data:`BufferedInput` (``io.BytesIO``) over bytes the engine already holds: a body that had arrived whole
  when the request was dispatched (the common case: small bodies come with their head), or any
  body with ``--threads 0``, where the engine reads it whole (up to ``max_body_size``) first.
- :class:`StreamedInput` over a body still arriving: each time the application wants more, it
  asks the event loop for what has arrived since (at most the connection's read high-water
  mark, beyond which the engine stops reading the socket), so the body is never buffered whole
  and a slow application makes TCP push back on the client.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Final

from .._build import mypyc_attr
from ..aio.body import RequestBody


@mypyc_attr(native_class=False)  # mypyc cannot make a native subclass of a built-in exception
class BodyIncomplete(OSError):
    """The request body broke off: the client left, was too slow, or framed it wrongly."""


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled, it may still be subclassed in Python
class BodyReader:
    """The file-like reading interface of PEP 3333 over a source of pieces (:meth:`_more`).

    What is buffered is ``_buffer[_pos:]``: reading moves an index rather than re-slicing the
    rest, so reading a large body in small pieces stays linear.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._pos = 0
        self._eof = False

    def _more(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        raise NotImplementedError

    def _fill(self) -> bool:
        """Append the next piece to what is buffered; False at the end of the body."""
        if self._eof:
            return False
        piece = self._more()
        if not piece:
            self._eof = True
            return False
        rest = self._buffer[self._pos :] if self._pos else self._buffer
        self._buffer = rest + piece if rest else piece
        self._pos = 0
        return True

    def _available(self) -> int:
        return len(self._buffer) - self._pos

    def _take(self, count: int) -> bytes:
        pos = self._pos
        if pos == 0 and count >= len(self._buffer):
            data, self._buffer = self._buffer, b""
            return data
        data = self._buffer[pos : pos + count]
        self._pos = pos + len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` is None or negative)."""
        if size is None or size < 0:
            pieces = [self._take(self._available())]
            while not self._eof:
                piece = self._more()
                if not piece:
                    self._eof = True
                pieces.append(piece)
            return b"".join(pieces)
        while self._available() < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, ``b"\\n"`` included (at most ``size`` bytes when ``size`` >= 0)."""
        limit = -1 if size is None else size
        checked = 0  # bytes after _pos known to hold no newline (kept across a refill)
        while True:
            end = self._buffer.find(b"\n", self._pos + checked)
            if end >= 0:
                count = end + 1 - self._pos
                break
            checked = self._available()
            if 0 <= limit <= checked:
                count = limit
                break
            if not self._fill():
                count = self._available()
                break
        if 0 <= limit < count:
            count = limit
        return self._take(count)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines (stopping once ``hint`` bytes are read, when it is positive)."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """Nothing to release (the engine drains an unread body for keep-alive)."""


#: a body held whole: ``io.BytesIO`` has the PEP's reading interface, in C
BufferedInput = io.BytesIO


class EmptyInput(BodyReader):
    """The ``wsgi.input`` of every request without a body: one object, shared.

    Reading it changes nothing (its buffer stays empty and the end is the end), so requests
    and threads can share it, and the most common request makes no reader at all.
    """

    def _more(self) -> bytes:
        return b""


#: the one :class:`EmptyInput` (Final: compiled, a C static, where a module name is a lookup)
EMPTY_INPUT: Final = EmptyInput()


def whole_input(data: bytes) -> BodyReader | io.BytesIO:
    """``wsgi.input`` over a body held whole: the shared empty one when there is none."""
    return BufferedInput(data) if data else EMPTY_INPUT


class StreamedInput(BodyReader):
    """A body still arriving on the event loop, read from an application thread."""

    def __init__(self, body: RequestBody, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._body = body
        self._loop = loop

    def _more(self) -> bytes:
        # One round trip to the loop per piece; pieces are what arrived meanwhile, so a fast
        # upload takes few trips. Only bodies not whole at dispatch come this way.
        return asyncio.run_coroutine_threadsafe(next_piece(self._body), self._loop).result()


async def next_piece(body: RequestBody) -> bytes:
    """What has arrived of ``body`` and not been taken, waiting for it; ``b""`` at the end.

    Raises :class:`BodyIncomplete` when the body broke off. Runs on the event loop.
    """
    while True:
        data = body.take()
        if data:
            return data
        if body.complete:
            return b""
        if body.failed:
            raise BodyIncomplete("the request body broke off (client gone, timeout or bad framing)")
        await body.wait()


async def read_whole(body: RequestBody) -> bytes:
    """The whole of ``body`` once it has arrived (``--threads 0``); bounded by max_body_size,
    which the parser enforces. Raises :class:`BodyIncomplete` when it breaks off."""
    pieces: list[bytes] = []
    while True:
        piece = await next_piece(body)
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)
