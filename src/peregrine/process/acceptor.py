"""Accepting connections on a listening socket, by hand rather than with ``loop.create_server``.

Two reasons, measured on the loops Peregrine runs on:

* out of file descriptors (EMFILE), uvloop's libuv silently accepts and drops the waiting
  connections, and on other accept errors uvloop closes the listening socket for good; the
  standard loop (Python 3.11) reschedules itself once per backlog slot per event, which snowballs
  into thousands of log lines and timers a second. The acceptor logs the error, leaves the
  connections waiting in the kernel's queue, and tries again after a growing pause.
* at shutdown it takes what is already in the kernel's accept queue before closing the socket,
  so a connection the kernel completed just before the stop is served rather than reset (this
  matters with ``SO_REUSEPORT``, where a closed socket's queue is not passed to the others).

What one accepted connection costs is paid again for every connection, so with short-lived
connections (or a thousand at once) it matters as much as a request: the acceptor takes the
descriptor with ``socket._accept()`` and wraps it in a socket class made for its listener
(:func:`accepted_socket_class`), and leaves making it non-blocking to the loop, which does that
anyway (``bench/README.md``, "In situ").
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger("peregrine")

# accept() failures that mean "out of resources for now", not "broken"
_ACCEPT_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# connections taken per readiness event: as many as the worker already serves, at least this many.
# Proportional, so that accepting at most doubles the time of a loop iteration (the connections
# already open are not starved, and one worker of several sharing a socket does not swallow a
# whole burst alone), while a burst is taken in a few iterations: with a fixed 16, the 1,000
# connections of a benchmark's start were taken 16 per iteration of a loop that served ever more
# of them, and the last waited ~1.1 s for its first answer (wrk -c1000: p99 ~0.5-0.7 s, not 90 ms).
_ACCEPT_BATCH = 16
_BACKOFF_FIRST, _BACKOFF_MAX = 0.05, 1.0
# connections taken from the kernel's queue when a worker stops accepting (bounded: under a flood
# the queue could refill as fast as it is emptied)
_DRAIN_MAX = 4096
_LOG_EVERY = 5.0  # seconds between repeated accept-error log lines


def accepted_socket_class(listener: socket.socket) -> type[socket.socket]:
    """A ``socket.socket`` subclass for the connections accepted on ``listener``, whose
    ``family`` and ``type`` are plain class attributes (those of the listener).

    ``socket.socket`` makes ``family`` and ``type`` properties that convert the number to an enum
    at every read, ~7,000 instructions each on CPython 3.11; ``socket.accept()`` reads both of the
    listener's, and uvloop's ``connect_accepted_socket`` both of the new socket's (three reads):
    ~35,000 instructions per connection, twice what answering a request costs. Everything else
    is ``socket.socket``'s, so a loop closes or detaches it as any socket.
    """
    family, kind = listener.family, listener.type

    class AcceptedSocket(socket.socket):
        __slots__ = ()

    # set after the class body: there, ``type`` would be the name being defined, not the builtin
    AcceptedSocket.family = family  # type: ignore[assignment]
    AcceptedSocket.type = kind  # type: ignore[assignment]
    return AcceptedSocket


class Acceptor:
    """Accepts connections on one listening socket and hands them to the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[Any], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        served: Callable[[], int] | None = None,
    ) -> None:
        self.loop = loop
        #: how many connections the worker serves now (the batch size per readiness event)
        self.served = served
        self.sock = sock
        #: makes a connection's protocol, given the peer address ``accept()`` returned with it
        #: (``(host, port)``, ``(host, port, flowinfo, scope_id)``, or a unix socket's path): the
        #: protocol need not ask the socket again (``getsockname`` and ``getpeername`` in uvloop)
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        #: connections whose TLS handshake (or transport set-up) is still running
        self.pending: set[asyncio.Task[Any]] = set()
        self.accepting = False
        self._fd = sock.fileno()
        self._socket_class = accepted_socket_class(sock)
        self._family, self._kind, self._proto = int(sock.family), int(sock.type), sock.proto
        self._backoff = 0.0
        self._retry: asyncio.TimerHandle | None = None
        self._errors = 0
        self._last_log = -_LOG_EVERY

    def start(self, backlog: int) -> None:
        """Begin accepting (listening first on a socket that is bound but not listening yet)."""
        if not self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            self.sock.listen(backlog)
        self.accepting = True
        self.loop.add_reader(self._fd, self._on_readable)

    def stop(self) -> None:
        """Stop accepting for good: take what the kernel already queued, then close the socket."""
        if not self.accepting:
            return
        self.accepting = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        else:
            self.loop.remove_reader(self._fd)
        self._accept_batch(_DRAIN_MAX, closing=True)
        self.sock.close()

    def _on_readable(self) -> None:
        served = self.served() if self.served is not None else 0
        self._accept_batch(max(_ACCEPT_BATCH, served + len(self.pending)))

    def _accept_batch(self, limit: int, closing: bool = False) -> None:
        accepted = 0
        # socket.accept() without what it reads of the listener at each call (enum properties)
        accept = self.sock._accept  # type: ignore[attr-defined]
        make, family, kind, proto = self._socket_class, self._family, self._kind, self._proto
        while accepted < limit:
            try:
                fd, peer = accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue  # the client gave up while queued: nothing to serve
            except OSError as exc:
                if not closing:  # while closing, there is nothing left to retry
                    self._pause(exc)
                break
            accepted += 1
            self._adopt(make(family, kind, proto, fd), peer)
        if accepted and self._errors:
            log.warning("accepting connections again after %d failed attempts", self._errors)
            self._errors = 0
            self._backoff = 0.0

    def _adopt(self, conn: socket.socket, peer: Any) -> None:
        # Not made non-blocking here: both loops do it as they take the socket (asyncio's
        # connect_accepted_socket calls setblocking(False), libuv's uv_tcp_open sets O_NONBLOCK),
        # and a second ioctl per connection is a syscall for nothing. Until then nothing reads it.
        task = self.loop.create_task(self._connect(conn, peer))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _connect(self, conn: socket.socket, peer: Any) -> None:
        try:
            await self.loop.connect_accepted_socket(
                functools.partial(self.protocol_factory, peer),  # (a partial: no Python frame)
                conn,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.handshake_timeout if self.ssl_context else None,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            # A failed or stalled TLS handshake, or a client that reset at once: its business,
            # not the server's. The transport has closed the socket already.
            log.debug("connection dropped before it started: %r", exc)
        except Exception:
            log.exception("could not set up an accepted connection")
            conn.close()

    def _pause(self, exc: OSError) -> None:
        """Stop watching the socket for a while: accept() would fail again at once."""
        self._errors += 1
        now = self.loop.time()
        if now - self._last_log >= _LOG_EVERY:
            self._last_log = now
            expected = exc.errno in _ACCEPT_ERRNOS
            log.error(
                "accept() failed: %s%s; connections wait in the listen queue, retrying in %.2fs",
                exc,
                "" if expected else " (unexpected)",
                max(self._backoff * 2, _BACKOFF_FIRST),
            )
        self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
        self.loop.remove_reader(self._fd)
        self._retry = self.loop.call_later(self._backoff, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if self.accepting:
            self.loop.add_reader(self._fd, self._on_readable)
