"""``Server``: the object a program makes and starts."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional, Union

from . import __version__
from .aio.loop import loop_factory
from .config import Config
from .log import configure_logging
from .process.listeners import describe, make_listeners
from .process.worker import Worker

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
        if self.workers > 1:
            from .process.supervisor import Supervisor

            self._supervisor = Supervisor(self.config, self.handler_factory, self.workers)
            raise SystemExit(self._supervisor.run())
        self._serve_here()

    def _serve_here(self) -> None:
        config = self.config
        sockets = make_listeners(config)
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
                sock.close()
            if config.uds and os.path.exists(config.uds):
                os.unlink(config.uds)
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
