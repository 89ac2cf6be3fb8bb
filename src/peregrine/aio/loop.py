"""Choosing the event loop: uvloop when it is there, the standard library's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory(name: str = "auto") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """Return a function making a new event loop, and the loop's name for the startup line.

    ``name`` is ``auto`` (uvloop if importable), ``uvloop`` (required) or ``asyncio``.
    """
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise RuntimeError("loop 'uvloop' asked for, but uvloop is not installed") from None
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"
