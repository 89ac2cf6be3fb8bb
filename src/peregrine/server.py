"""``Server``: the object a program makes and starts."""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

from .app import app_factory
from .config import Config
from .log import configure_logging
from .process.listeners import created_socket_files, make_listeners
from .process.worker import SignalGuard, Worker, build_worker, startup_line

log = logging.getLogger("peregrine")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not just the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Server:
    """A Peregrine HTTP server.

    ``handler`` is a class with ``handle_request(req, resp)`` (one instance is made per worker),
    an instance, a plain function, an ASGI 3 application or a WSGI application (see
    :mod:`peregrine.app`; ``interface=`` overrides the guess). Keyword options are
    :class:`Config` fields, or pass ``config=Config(...)``.
    """

    def __init__(self, handler: Any, config: Config | None = None, **options: Any) -> None:
        self.handler = handler
        self.config = config.replace(**options) if config is not None else Config(**options)
        #: what a worker calls once for its handler (a native handler, or an ASGI/WSGI adapter)
        self.handler_factory = app_factory(handler, self.config)
        self._worker: Worker | None = None
        self._supervisor: Any = None
        #: shutdown() was called: seen by a start() that has not made its worker/supervisor yet
        self._stop_requested = False

    @property
    def workers(self) -> int:
        """The number of worker processes ``start`` runs."""
        return self.config.workers or available_cores()

    def start(self) -> None:
        """Serve until SIGINT/SIGTERM or :meth:`shutdown`; returns after a graceful stop.

        ``workers=1`` serves in this process; any other count (0 included, even on one core)
        runs the supervisor, which is what restarts crashed workers and reloads on SIGHUP.
        Recycling after ``max_requests`` needs someone to start the replacement: with one
        worker that is a supervisor too.
        """
        configure_logging(self.config.log_level)
        try:
            if self._stop_requested:
                log.info("shutdown() was called before start(): not starting")
                return
            supervised = self.config.workers != 1 or self.config.max_requests
            if supervised and not hasattr(os, "fork"):
                if self.workers > 1 or self.config.max_requests:
                    log.warning(
                        "worker processes need fork(), which this platform lacks: "
                        "serving in one process"
                    )
            elif supervised:
                self._supervise()
                return
            self._serve_here()
        finally:
            self._worker = self._supervisor = None
            self._stop_requested = False

    def shutdown(self) -> None:
        """Stop gracefully: from another thread, from a handler (in any worker), or before start()."""
        self._stop_requested = True
        worker, supervisor = self._worker, self._supervisor
        if worker is not None:
            worker.stop()
        if supervisor is not None:
            supervisor.stop()  # from a worker process, that signals the supervisor

    def _supervise(self) -> None:
        from .process.supervisor import Supervisor

        supervisor = Supervisor(
            self.config, self.handler_factory, self.workers, handler=self.handler
        )
        self._supervisor = supervisor
        if self._stop_requested:  # shutdown() ran between the check in start() and now
            supervisor.stop()
        code = supervisor.run()
        if code:
            raise SystemExit(code)

    def _serve_here(self) -> None:
        config = self.config
        guard = SignalGuard(self._request_stop)
        guard.install()
        try:
            try:
                sockets = make_listeners(config)
            except (OSError, ValueError) as exc:
                log.error("cannot start: %s", exc)
                raise SystemExit(1) from None
            files = created_socket_files(config)
            try:
                try:
                    worker = build_worker(
                        config,
                        self.handler_factory,
                        sockets,
                        # "serving on" once the worker accepts (after an ASGI lifespan startup)
                        on_ready=lambda: log.info(
                            startup_line(config, sockets, f"1 worker, pid {os.getpid()}")
                        ),
                    )
                except (OSError, ValueError, ssl.SSLError) as exc:
                    log.error("cannot start: %s", exc)
                    raise SystemExit(1) from None
                self._worker = worker
                if self._stop_requested:
                    worker.stop()
                try:
                    worker.run()
                finally:
                    guard.install()  # the loop reset the handlers as it closed
            finally:
                for sock in sockets:
                    sock.close()  # already closed when the worker stopped accepting; harmless
                for file in files:
                    file.remove()
        finally:
            guard.restore()
        log.info("stopped")

    def _request_stop(self) -> None:
        """A SIGINT/SIGTERM while no event loop runs: stop as soon as the worker can."""
        self._stop_requested = True
        if self._worker is not None:
            self._worker.stop()


def run(handler: Any, **options: Any) -> None:
    """Shorthand for ``Server(handler, **options).start()``."""
    Server(handler, **options).start()
