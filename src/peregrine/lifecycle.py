"""Where this process's server is in its life, for handlers to ask.

A handler may want to know that the server is draining (a deploy is taking this host out of the
load balancer): to end long polls early, tell WebSocket clients to reconnect elsewhere, or stop
taking new background work. :func:`draining` says so; it is one flag per process, set by the
worker when its drain begins (each worker is its own process, so "this process" is "this
worker"). A handler runs in exactly one worker, so the answer is about the worker serving it.
"""

from __future__ import annotations

_draining = False


def draining() -> bool:
    """True once the server in this process began draining (SIGTERM, or an old worker in a
    reload): the health path answers 503, every response closes its connection, and the worker
    stops accepting after ``drain_delay``."""
    return _draining


def set_draining(value: bool) -> None:
    """Set by the worker (and by tests); applications only read :func:`draining`."""
    global _draining
    _draining = value
