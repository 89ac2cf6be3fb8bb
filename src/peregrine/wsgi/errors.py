"""``wsgi.errors``: what an application writes there goes to the server's error log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

log = logging.getLogger("peregrine.error")


class ErrorStream:
    """A text stream whose complete lines become log records (one per line, per thread).

    Partial lines wait, per thread, for their end (or ``flush``), so two application threads
    writing at once do not mix their text into one record.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._partial = threading.local()

    def write(self, text: str) -> int:
        """Log every complete line of ``text``; keep a trailing partial line for later."""
        pending = getattr(self._partial, "text", "") + text
        *lines, rest = pending.split("\n")
        for line in lines:
            if line:
                self._log.error("%s", line)
        self._partial.text = rest
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log a partial line now."""
        rest = getattr(self._partial, "text", "")
        if rest:
            self._partial.text = ""
            self._log.error("%s", rest)
