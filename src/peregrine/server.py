"""``Server``: the object a program makes and starts."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional, Union

from . import __version__
from .aio.loop import loop_factory
from .config import Config
from .log import configure_logging
from .process.listeners import describe, make_listeners, remove_unix_socket, unix_paths
from .process.worker import Worker, pin_to_core

log = logging.getLogger("peregrine")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not just the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def handler_factory(handler: Any) -> Callable[[], Any]:
    """Normalise what users pass: a class (instantiated per worker), or a ready instance."""
    if isinstance(handler, type):
        return handler
    if hasattr(handler, "handle_request"):
        return lambda: handler
    if callable(handler):
        # a plain function handle_request(req, resp)
        return lambda: _FunctionHandler(handler)
    raise TypeError("handler must be a class with handle_request(req, resp), an instance, or a function")


class _FunctionHandler:
    def __init__(self, function: Callable[..., Any]) -> None:
        self.handle_request = function


class Server:
    """A Peregrine HTTP server.

    ``handler`` is a class with ``handle_request(req, resp)`` (one instance is made per worker),
    an instance, or a plain function. Keyword options are :class:`Config` fields, or pass
    ``config=Config(...)``.
    """

    def __init__(self, handler: Any, config: Optional[Config] = None, **options: Any) -> None:
        self.handler = handler
        self.handler_factory = handler_factory(handler)
        self.config = config.replace(**options) if config is not None else Config(**options)
        self._worker: Optional[Worker] = None
        self._supervisor: Any = None

    @property
    def workers(self) -> int:
        """The number of worker processes ``start`` runs."""
        return self.config.workers or available_cores()

    def start(self) -> None:
        """Serve until SIGINT/SIGTERM or :meth:`shutdown`; returns after a graceful stop."""
        configure_logging(self.config.log_level)
        # Recycling after max_requests needs someone to start the replacement: with one worker
        # that is a supervisor too.
        if (self.workers > 1 or self.config.max_requests) and not hasattr(os, "fork"):
            log.warning("worker processes need fork(), which this platform lacks: serving in one process")
        elif self.workers > 1 or self.config.max_requests:
            from .process.supervisor import Supervisor

            self._supervisor = Supervisor(self.config, self.handler_factory, self.workers,
                                          handler=self.handler)
            code = self._supervisor.run()
            if code:
                raise SystemExit(code)
            return
        self._serve_here()

    def _serve_here(self) -> None:
        config = self.config
        try:
            sockets = make_listeners(config)
        except OSError as exc:
            log.error("cannot start: %s", exc)
            raise SystemExit(1) from None
        paths = unix_paths(sockets)
        if config.cpu_affinity:
            pin_to_core(0)
        ssl_context = None
        if config.tls:
            from .process.tls import make_ssl_context

            ssl_context = make_ssl_context(config)
        _, loop_name = loop_factory(config.loop)
        log.info(
            "peregrine %s serving on %s (1 worker, pid %d, %s)", __version__,
            ", ".join(describe(s, config.tls) for s in sockets), os.getpid(), loop_name,
        )
        self._worker = Worker(config, self.handler_factory, sockets, ssl_context)
        try:
            self._worker.run()
        finally:
            for sock in sockets:
                sock.close()  # already closed when the worker stopped accepting; harmless
            for path in paths:
                remove_unix_socket(path)
        log.info("stopped")

    def shutdown(self) -> None:
        """Stop gracefully (from another thread, or from a handler)."""
        if self._worker is not None:
            self._worker.stop()
        if self._supervisor is not None:
            self._supervisor.stop()


def run(handler: Any, **options: Any) -> None:
    """Shorthand for ``Server(handler, **options).start()``."""
    Server(handler, **options).start()
