"""``wsgi.file_wrapper``: files sent with the engine's ``sendfile`` path when they can be.

An application returns ``environ["wsgi.file_wrapper"](filelike, block_size)``. When that object
comes back unchanged and wraps a regular file, the engine sends it from the file's current
position with ``sendfile`` (length: the application's Content-Length, else to the end of the
file). Anything else (a pipe, a ``BytesIO``, a wrapper another middleware re-wrapped) is an
ordinary iterable that reads ``block_size`` bytes at a time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

#: bytes read per block when a file cannot be sent with sendfile
DEFAULT_BLOCK_SIZE = 64 * 1024


class FileWrapper:
    """An iterable over ``filelike`` in blocks; ``close()`` closes the file (PEP 3333)."""

    def __init__(self, filelike: Any, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def sendable(self, declared_length: int | None) -> tuple[Any, int, int] | None:
        """``(file, offset, count)`` when the wrapped object is a regular file, else None."""
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
            offset = self.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        count = max(0, info.st_size - offset)
        if declared_length is not None:
            count = min(count, declared_length)
        return self.filelike, offset, count
