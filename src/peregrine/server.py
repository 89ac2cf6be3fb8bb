"""``Server``: the object a program makes and starts."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from typing import Any

from .app import app_factory
from .config import Config
from .log import configure_logging
from .process.listeners import created_socket_files, describe, make_listeners
from .process.signals import SignalGuard
from .process.startup import build_worker, one_line, startup_line
from .process.worker import Worker

log = logging.getLogger("peregrine")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not just the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class StartupError(RuntimeError):
    """The server could not start serving (every worker failed to start, say).

    Binding errors are ``OSError`` (the message names the address) and bad TLS files
    ``OSError``/``ValueError``/``ssl.SSLError``; this is the rest. The ``peregrine`` command
    prints any of them as one line and exits with status 1.
    """


class Server:
    """A Peregrine HTTP server.

    ``handler`` is a class with ``handle_request(req, resp)`` (one instance is made per worker),
    an instance, a plain function, an ASGI 3 application or a WSGI application (see
    :mod:`peregrine.app`; ``interface=`` overrides the guess). Keyword options are
    :class:`Config` fields, or pass ``config=Config(...)``.

    Two ways to run it: :meth:`start` blocks and owns the process (signals, workers), and
    ``await`` :meth:`serve` runs one worker inside a program's own event loop. Both stop on
    :meth:`shutdown`, and both report a failure to start with an exception, never ``SystemExit``.
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
        #: the listening sockets while serving (their addresses: :attr:`addresses`)
        self.sockets: list[socket.socket] = []

    @property
    def workers(self) -> int:
        """The number of worker processes ``start`` runs."""
        return self.config.workers or available_cores()

    @property
    def addresses(self) -> list[str]:
        """Where a running single-process server listens, e.g. ``["http://127.0.0.1:3000"]``."""
        return [describe(sock, self.config.tls) for sock in self.sockets]

    def start(self) -> None:
        """Serve until SIGINT/SIGTERM or :meth:`shutdown`; returns after a graceful stop.

        ``workers=1`` serves in this process; any other count (0 included, even on one core)
        runs the supervisor, which is what restarts crashed workers and reloads on SIGHUP.
        Recycling after ``max_requests`` needs someone to start the replacement: with one
        worker that is a supervisor too. The supervisor needs the main thread; ``workers=1``
        runs in any thread (signal handlers are installed only in the main one).

        Raises ``OSError`` when a socket cannot be bound (the message names the address),
        :class:`StartupError` when no worker could start, ``RuntimeError`` for a supervisor asked
        for outside the main thread.
        """
        if _loop_running():
            raise RuntimeError(
                "start() blocks and runs its own event loop; inside a running loop use "
                "'await server.serve()'"
            )
        configure_logging(self.config.log_level, self.config.log_config)
        pid_file = _PidFile(self.config.pid_file) if self.config.pid_file else None
        try:
            if self._stop_requested:
                log.info("shutdown() was called before start(): not starting")
                return
            supervised = (
                self.config.workers != 1
                or self.config.max_requests
                or self.config.metrics_port is not None  # the supervisor serves the metrics
            )
            if supervised and not hasattr(os, "fork"):
                if self.workers > 1 or self.config.max_requests:
                    log.warning(
                        "worker processes need fork(), which this platform lacks: "
                        "serving in one process"
                    )
            elif supervised:
                if threading.current_thread() is not threading.main_thread():
                    raise RuntimeError(
                        f"workers={self.config.workers}: the supervisor needs the main thread; "
                        "call start() from it, or use workers=1 to serve in this thread"
                    )
                if pid_file is not None:
                    pid_file.write()
                self._supervise()
                return
            if pid_file is not None:
                pid_file.write()
            self._serve_here()
        finally:
            if pid_file is not None:
                pid_file.remove()
            self._worker = self._supervisor = None
            self._stop_requested = False

    async def serve(self) -> None:
        """Serve in the running event loop until :meth:`shutdown`; one worker, this process.

        The program owns the loop and its signals (none are installed). ``workers`` must be 0
        or 1. Raises ``OSError`` when a socket cannot be bound and :class:`StartupError` when the
        handler cannot be made.
        """
        config = self.config
        if config.workers > 1:
            raise ValueError(
                f"serve() runs in this process and loop: workers={config.workers} needs start()"
            )
        configure_logging(config.log_level, config.log_config)
        if self._stop_requested:
            self._stop_requested = False
            return
        sockets = make_listeners(config)
        files = created_socket_files(config)
        try:
            worker = build_worker(
                config,
                self.handler_factory,
                sockets,
                on_ready=lambda: log.info(startup_line(config, sockets, "in this loop")),
            )
            self._worker = worker
            self.sockets = sockets
            try:
                await worker.serve()
            except Exception as exc:
                if worker.ready:
                    raise
                log.exception("the worker could not start")
                raise StartupError(f"no worker could start: {one_line(exc)}") from exc
        finally:
            self._worker = None
            self.sockets = []
            self._stop_requested = False
            for sock in sockets:
                sock.close()
            for file in files:
                file.remove()
        log.info("stopped")

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
        if supervisor.failure is not None:
            raise StartupError(supervisor.failure)
        if code:
            raise KeyboardInterrupt  # a second Ctrl+C: the workers were killed

    def _serve_here(self) -> None:
        config = self.config
        in_main_thread = threading.current_thread() is threading.main_thread()
        guard = SignalGuard(self._request_stop)
        guard.install()  # does nothing outside the main thread
        try:
            sockets = make_listeners(config)  # OSError names the address
            files = created_socket_files(config)
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
                self._worker = worker
                self.sockets = sockets
                if self._stop_requested:
                    worker.stop()
                try:
                    worker.run(install_signals=in_main_thread)
                except Exception as exc:
                    if worker.ready:
                        raise
                    # the same summary as the supervisor's when its workers cannot start
                    log.exception("worker 0 could not start")
                    raise StartupError(f"no worker could start: {one_line(exc)}") from exc
                finally:
                    guard.install()  # the loop reset the handlers as it closed
            finally:
                self.sockets = []
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


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _PidFile:
    """``pid_file``: this process's id, written at start and removed at exit if still ours."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written = False

    def write(self) -> None:
        try:
            with open(self.path, "w") as file:
                file.write(f"{os.getpid()}\n")
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot write --pid-file {self.path!r}: {exc.strerror}"
            ) from None
        self.written = True

    def remove(self) -> None:
        if not self.written:
            return
        try:
            with open(self.path) as file:
                if file.read().strip() != str(os.getpid()):
                    return  # another server wrote its own since
            os.unlink(self.path)
        except OSError:
            pass


def run(handler: Any, **options: Any) -> None:
    """Shorthand for ``Server(handler, **options).start()``."""
    Server(handler, **options).start()
