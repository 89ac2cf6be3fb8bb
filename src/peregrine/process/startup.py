"""Starting a worker, the same in both process models.

With or without a supervisor, a worker is pinned to its core, given its TLS context and built
(:func:`build_worker`), announced with one line (:func:`startup_line`), and when it cannot start,
the reason is told in one line (:func:`one_line`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from .._build import describe as describe_build
from .._version import __version__
from ..aio.loop import loop_factory
from ..config import Config
from .listeners import describe
from .worker import Worker


def pin_to_core(index: int, cores: list[int] | None = None) -> int | None:
    """Pin this process to the ``index``-th core it may run on (wrapping around); return it.

    Does nothing (returns None) where the platform cannot set an affinity.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    available = cores if cores is not None else sorted(os.sched_getaffinity(0))
    core = available[index % len(available)]
    os.sched_setaffinity(0, {core})
    return core


def build_worker(
    config: Config,
    handler_factory: Callable[[], Any],
    sockets: list[socket.socket],
    index: int = 0,
    cores: list[int] | None = None,
    **hooks: Any,
) -> Worker:
    """What a worker needs before it runs, the same in both process models.

    Pins the process to its core (``cpu_affinity``), makes the TLS context (raising ``OSError``,
    ``ssl.SSLError`` or ``ValueError`` when it cannot) and returns the :class:`Worker`; ``hooks``
    are its keyword arguments (``on_ready``...).
    """
    if config.cpu_affinity:
        pin_to_core(index, cores)
    ssl_context = None
    if config.tls:
        from .tls import make_ssl_context

        ssl_context = make_ssl_context(config)
    return Worker(config, handler_factory, sockets, ssl_context, **hooks)


def startup_line(config: Config, sockets: list[socket.socket], who: str, extra: str = "") -> str:
    """``peregrine X serving on ADDRESSES (WHO, LOOP, BUILD EXTRA)``: the line a server starts with.

    BUILD says which modules run the request path: ``compiled with mypyc`` or ``pure Python``,
    and for pure Python why when it was not asked for (:func:`peregrine._build.describe`).
    """
    _, loop_name = loop_factory(config.loop)
    addresses = ", ".join(describe(sock, config.tls) for sock in sockets)
    build = describe_build()
    return f"peregrine {__version__} serving on {addresses} ({who}, {loop_name}, {build}{extra})"


def one_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (at most 500 characters)."""
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]
