"""The supervisor: forks the workers, keeps them alive, and turns signals into lifecycle.

It is a small single-threaded loop in the server's main process, doing no HTTP itself:

* it binds the listening socket(s) once (learning the real port when ``port`` is 0), then forks
  ``workers`` children; each runs :func:`~peregrine.process.child.run_child`, which makes its
  own handler instance and serves with :class:`~peregrine.process.worker.Worker`;
* every child has a pipe back to it and says ``ready`` once accepting, ``limit`` when it has
  served its ``max_requests``, ``draining`` once it has stopped accepting, or ``error <text>``
  when it could not start; and ``alive`` every second or so while its event loop runs, for the
  hung-worker watchdog (``worker_timeout``, :mod:`.watchdog`);
* signals arrive through ``signal.set_wakeup_fd`` on a pipe, so they are handled in the loop,
  never in the middle of something else. The handlers are in place before anything is bound.

Vocabulary: a *slot* is one of the ``workers`` places; it has an ``active`` child (ready and
serving) and sometimes an ``incoming`` one (started, not ready yet). An incoming child takes the
slot over when it says ``ready``, and only then is the previous one told to stop. That single
rule gives rolling restarts (SIGHUP) and max-requests recycling without a moment where the slot
serves nobody. A slot *needs a child* when none is starting and it has none serving, or its
serving one asked for a successor.

A slot's ``failures`` counts its consecutive failed starts (a child that never got ready or
died within ``_MIN_UPTIME``); it sets the back-off before the next attempt, and goes back to 0
once a child of the slot has served for ``_MIN_UPTIME``.

With ``reuse_port`` every slot has its own ``SO_REUSEPORT`` socket, kept across its workers. A
slot left without any worker for a while (waiting out a back-off) closes its socket meanwhile,
or the kernel would keep handing it a share of the connections that nobody accepts; the next
attempt binds a new one but does not ``listen()`` on it: the new worker does, once its handler
is built, so a failing attempt never holds connections.

Signals: SIGINT/SIGTERM stop gracefully (a second SIGINT kills at once); SIGHUP restarts the
workers one at a time with freshly imported application code (:mod:`.reload`); SIGTTIN/SIGTTOU
add/remove a worker; SIGCHLD means a child exited. :meth:`Supervisor.stop` called in a worker
(``Server.shutdown()`` from a handler) sends the supervisor SIGTERM.
"""

from __future__ import annotations

import logging
import math
import os
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..app import app_factory
from ..config import Config
from ..metrics.endpoint import MetricsEndpoint
from ..metrics.recorder import install
from ..metrics.shared import SharedMetrics
from ..metrics.text import render
from .child import BOOT_FAILURE, run_child
from .listeners import SocketFile, bind_tcp, created_socket_files, make_listeners, uses_reuse_port
from .reload import find_reload_target, load_fresh
from .startup import startup_line
from .watchdog import DUMP_SIGNAL, HangWatch

log = logging.getLogger("peregrine")

# A worker that dies sooner than this after starting counts as crash-looping.
_MIN_UPTIME = 1.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 10.0
# Time a stopping worker gets beyond graceful_timeout to run close() hooks and exit.
_EXIT_GRACE = 5.0
_TICK = 1.0
# how long the final SIGKILL of every worker may take to be reaped
_KILL_WAIT = 5.0

_HANDLED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


@dataclass(eq=False)
class _Child:
    pid: int
    slot: int
    fd: int
    generation: int
    started: float
    ready: bool = False
    ready_at: float = 0.0
    #: has stopped accepting new connections (said "draining")
    draining: bool = False
    stopping: bool = False
    kill_at: float = 0.0
    error: str | None = None
    buffer: bytes = b""
    #: liveness, for the hung-worker watchdog (worker_timeout)
    watch: HangWatch = field(default_factory=lambda: HangWatch(time.monotonic()))
    #: its block of metrics shared memory (None: metrics off, or no block free)
    metrics_block: int | None = None


@dataclass(eq=False)
class _Slot:
    index: int
    active: _Child | None = None
    incoming: _Child | None = None
    #: consecutive crashes at or soon after start
    failures: int = 0
    #: when to start a child for this slot (monotonic), None = not planned
    start_at: float | None = None
    #: the active child asked to be replaced (max_requests)
    wants_successor: bool = False

    @property
    def needs_child(self) -> bool:
        """No child is starting, and none serves or the serving one asked for a successor."""
        return self.incoming is None and (self.active is None or self.wants_successor)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    if code == 0:
        return "exited"
    if code == BOOT_FAILURE:
        return "failed to start"
    return f"exited with status {code}"


def restart_delay(failures: int, *, was_serving: bool) -> float:
    """Seconds to wait before the next start in a slot with ``failures`` consecutive failures.

    A worker that was serving and crashed once is replaced at once: one crash is not a loop.
    Otherwise (a second failure in a row, or a start that failed: fork, import, bind) the wait
    is ``_BACKOFF_FIRST``, doubling with each further failure up to ``_BACKOFF_MAX``.
    """
    if was_serving and failures <= 1:
        return 0.0
    # _BACKOFF_FIRST * 2**doublings, the exponent bounded so a long loop cannot overflow it
    doublings = min(max(failures - 2, 0), 32)
    return min(math.ldexp(_BACKOFF_FIRST, doublings), _BACKOFF_MAX)


class Supervisor:
    """Runs ``workers`` worker processes over shared listening sockets (see the module docstring).

    ``handler`` is what the user gave :class:`peregrine.Server`; where it lives is noted at once
    (:func:`~peregrine.process.reload.find_reload_target`) so that SIGHUP can import it afresh.
    :meth:`run` must be called from the main thread; it returns the process exit status.
    """

    def __init__(
        self, config: Config, handler_factory: Callable[[], Any], workers: int, handler: Any = None
    ) -> None:
        self.config = config
        self.handler_factory = handler_factory
        self.reload_target = find_reload_target(handler) if handler is not None else None
        self.target = workers
        self.slots: dict[int, _Slot] = {}
        self.children: dict[int, _Child] = {}
        #: the shared listening sockets (every worker serves all of them)
        self.sockets: list[Any] = []
        #: with reuse_port, one SO_REUSEPORT listening socket per slot instead
        self.slot_sockets: dict[int, Any] = {}
        self._socket_files: list[SocketFile] = []
        self.reuse_port = uses_reuse_port(config)
        self.port = config.port
        self.pid = os.getpid()
        self.generation = 0
        #: spawn workers with freshly imported application code (after the first SIGHUP)
        self.reload = False
        #: slots left in the current rolling restart
        self.rolling: list[int] | None = None
        self.booted = False
        self.stopping = False
        self.exit_code = 0
        self.cores: list[int] | None = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        )
        #: the last reason a worker gave for failing to start
        self.last_error: str | None = None
        #: why the server gave up (every worker failed to start), for Server.start to raise
        self.failure: str | None = None
        self._interrupts = 0
        self._stop_requested = False
        self._wake_r = -1
        self._wake_w = -1
        self._selector: selectors.BaseSelector | None = None
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1
        self.metrics: SharedMetrics | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        #: workers replaced other than by a reload, by cause (for the metrics)
        self.restarts: dict[str, int] = {}
        self.reloads = 0

    # --- public -------------------------------------------------------------------------------

    def run(self) -> int:
        """Start the workers and supervise them until stopped; return the exit status."""
        self._selector = selectors.DefaultSelector()
        # Signals first: a SIGTERM while binding is then a stop, not a death leaving a socket file.
        self._install_signals()
        try:
            # OSError, ValueError, ssl.SSLError propagate: Server.start's caller reports them
            self._open_listeners()
            if self.config.tls:
                from .tls import make_ssl_context

                make_ssl_context(self.config)  # fail now, once, rather than in every worker
            self._metrics_open()
            self._read_signals()  # any that came while binding
            if self._stop_requested:
                self._begin_stop("shutting down")
            if not self.stopping:
                for index in range(self.target):
                    self.slots[index] = _Slot(index)
                    self._spawn(self.slots[index])
            while self.children or not self.stopping:
                self._step()
        finally:
            self._kill_all()
            self._metrics_close()
            self._restore_signals()
            self._close_listeners()
            self._selector.close()
        if self.booted:
            log.info("stopped")
        return self.exit_code

    def stop(self) -> None:
        """Begin a graceful stop; safe from any thread, and from a worker process.

        In the supervisor it only writes to the wake-up pipe. In a worker (``Server.shutdown()``
        called by a handler runs there, on the forked copy of this object) it sends the
        supervisor SIGTERM: the whole server stops, not just this worker.
        """
        if os.getpid() != self.pid:
            if os.getppid() == self.pid:
                _kill(self.pid, signal.SIGTERM)
            return
        self._stop_requested = True  # seen by run() if it has not set up its pipe yet
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, bytes([signal.SIGTERM]))
            except OSError:
                pass

    # --- sockets and signals ------------------------------------------------------------------

    def _open_listeners(self) -> None:
        if self.reuse_port:
            for index in range(self.target):
                self._open_slot_socket(index)
        else:
            self.sockets = make_listeners(self.config)
            self._socket_files = created_socket_files(self.config)

    def _open_slot_socket(self, index: int, listen: bool = True) -> None:
        """Bind slot ``index``'s SO_REUSEPORT socket (the first one learns the port if it is 0).

        The supervisor keeps each slot's socket, and each worker of the slot inherits it. So
        when a worker is replaced the socket lives on with its queue of accepted connections:
        closing a SO_REUSEPORT socket would reset the connections waiting in it (the kernel does
        not pass them on unless net.ipv4.tcp_migrate_req is set). Without ``listen`` the socket
        gets no connections until its worker calls ``listen()``, ready to accept them.
        """
        config = self.config
        sock = bind_tcp(config.host, self.port, config.backlog, reuse_port=True, listen=listen)
        self.port = sock.getsockname()[1]
        self.slot_sockets[index] = sock

    def _close_slot_socket(self, index: int) -> None:
        sock = self.slot_sockets.pop(index, None)
        if sock is not None:
            sock.close()

    def _close_listeners(self, remove_files: bool = True) -> None:
        for sock in [*self.sockets, *self.slot_sockets.values()]:
            sock.close()
        self.slot_sockets.clear()
        if not remove_files:
            return
        for file in self._socket_files:
            file.remove()
        self._socket_files = []

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w)
        for sig in _HANDLED_SIGNALS:
            # The C-level handler writes the signal number to the wake-up pipe; the Python
            # handler has nothing left to do.
            self._old_handlers[sig] = signal.signal(sig, _ignore)
        assert self._selector is not None
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def _restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()
        signal.set_wakeup_fd(self._old_wakeup)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # --- the loop -----------------------------------------------------------------------------

    def _step(self) -> None:
        assert self._selector is not None
        for key, _ in self._selector.select(self._timeout()):
            if key.data is None:
                self._read_signals()
            elif callable(key.data):
                key.data()  # the metrics listener and its scrapes
            else:
                self._read_child(key.data)
        self._reap()
        self._run_timers()

    def _timeout(self) -> float:
        now = time.monotonic()
        moments = [slot.start_at for slot in self.slots.values() if slot.start_at is not None]
        moments += [c.kill_at for c in self.children.values() if c.kill_at]
        if self.config.worker_timeout:
            moments += [
                c.watch.next_moment(self.config.worker_timeout)
                for c in self.children.values()
                if c.ready and c.watch.next_moment(self.config.worker_timeout)
            ]
        if not moments:
            return _TICK
        return max(0.0, min(min(moments) - now, _TICK))

    def _read_signals(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for number in data:
            self._on_signal(number)

    def _on_signal(self, number: int) -> None:
        if number == signal.SIGCHLD:
            return  # reaping happens on every step
        if number == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                log.warning("second interrupt: killing the workers and exiting at once")
                self.exit_code = 1
                self._kill_all()
                self.stopping = True
                return
            self._begin_stop("interrupt: shutting down gracefully (Ctrl+C again to force)")
        elif number == signal.SIGTERM:
            if self.stopping:
                self._skip_drain()
            else:
                self._begin_stop("shutting down gracefully")
        elif number == signal.SIGHUP:
            self._begin_reload()
        elif number == signal.SIGTTIN:
            self._add_worker()
        elif number == signal.SIGTTOU:
            self._remove_worker()

    def _read_child(self, child: _Child) -> None:
        try:
            data = os.read(child.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._forget_fd(child)
            return
        child.watch.heard_at = time.monotonic()
        child.buffer += data
        while b"\n" in child.buffer:
            line, _, child.buffer = child.buffer.partition(b"\n")
            message = line.decode("utf-8", "replace")
            if message == "ready":
                self._on_ready(child)
            elif message == "limit":
                self._on_limit(child)
            elif message == "draining":
                child.draining = True
            elif message.startswith("error "):
                child.error = message[6:]
            elif message != "alive":
                child.watch.add_stack_line(message)  # a hung worker's stack dump

    def _forget_fd(self, child: _Child) -> None:
        if child.fd >= 0:
            assert self._selector is not None
            self._selector.unregister(child.fd)
            os.close(child.fd)
            child.fd = -1

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue  # not one of ours (a process the application started)
            if child.fd >= 0:
                self._read_child(child)  # a last "error ..." may still be in the pipe
                self._forget_fd(child)
            self._metrics_release(child)
            self._on_exit(child, status)

    def _run_timers(self) -> None:
        now = time.monotonic()
        if self.config.worker_timeout:
            self._check_hung(now)
        for child in list(self.children.values()):
            if child.kill_at and now >= child.kill_at:
                log.warning(
                    "worker %d (pid %d) did not stop in time: killing it", child.slot, child.pid
                )
                child.kill_at = 0.0
                _kill(child.pid, signal.SIGKILL)
        if self.stopping:
            return
        for slot in list(self.slots.values()):
            if slot.start_at is not None and now >= slot.start_at:
                slot.start_at = None
                if slot.needs_child:
                    self._spawn(slot)
        self._continue_reload()

    def _check_hung(self, now: float) -> None:
        """The watchdog: a ready worker silent for ``worker_timeout`` is dumped, then killed.

        Its event loop sends ``alive`` every second or so (:mod:`.watchdog`); silence means a
        handler is blocking it. The stack dump it is asked for arrives on its pipe within
        ``DUMP_WAIT``; then it is logged, and the SIGKILL makes the slot start a replacement.
        """
        timeout = self.config.worker_timeout
        for child in list(self.children.values()):
            watch = child.watch
            if not child.ready or watch.killed:
                continue
            if watch.watching and now - watch.heard_at >= timeout:
                log.error(
                    "worker %d (pid %d) is hung: its event loop has not run for %.1fs "
                    "(worker_timeout %gs); killing it",
                    child.slot,
                    child.pid,
                    now - watch.heard_at,
                    timeout,
                )
                watch.found_hung(now)
                _kill(child.pid, DUMP_SIGNAL)
            elif watch.dumping and now >= watch.dump_until:
                if child.fd >= 0:
                    self._read_child(child)  # what has arrived of the dump since the last step
                watch.killed = True
                log.error(
                    "worker %d (pid %d) was stuck at (all threads, most recent call first):\n%s",
                    child.slot,
                    child.pid,
                    watch.stack_text(),
                )
                _kill(child.pid, signal.SIGKILL)

    # --- children ------------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        """Fork a child for ``slot``; it becomes the slot's ``incoming`` until it says ready."""
        assert self._selector is not None
        if self.reuse_port and slot.index not in self.slot_sockets:
            try:
                self._open_slot_socket(slot.index, listen=False)  # the worker listens when ready
            except OSError as exc:
                self._start_failed(slot, f"cannot start worker {slot.index}: {exc}")
                return
        metrics_block = self._metrics_claim()
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # Signals stay blocked across fork so that the child never runs the supervisor's
        # handlers (they would write into the supervisor's wake-up pipe).
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            os.close(read_fd)
            os.close(write_fd)
            if metrics_block is not None and self.metrics is not None:
                self.metrics.release(metrics_block)
            self._start_failed(slot, f"cannot start worker {slot.index}: {exc}")
            return
        if pid == 0:  # the child: never returns into the supervisor's code
            status = 1
            try:
                os.close(read_fd)
                sockets = self._leave_to_worker(slot.index)
                self._metrics_enter_child(metrics_block)
                status = run_child(
                    self.config,
                    self._child_factory,
                    sockets,
                    index=slot.index,
                    cores=self.cores,
                    pipe=write_fd,
                    parent_pid=self.pid,
                    signal_mask=old_mask,
                )
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        child = _Child(pid, slot.index, read_fd, self.generation, time.monotonic())
        child.metrics_block = metrics_block
        self.children[pid] = child
        slot.incoming = child
        self._selector.register(read_fd, selectors.EVENT_READ, child)

    def _start_failed(self, slot: _Slot, message: str) -> None:
        """No child could even be forked for ``slot``: log it and try again later."""
        log.error("%s", message)
        self._count_failure(slot)
        self._schedule(slot, restart_delay(slot.failures, was_serving=False))

    def _leave_to_worker(self, index: int) -> list[Any]:
        """In a newly forked child: drop the supervisor's state; return worker ``index``'s sockets."""
        signal.set_wakeup_fd(-1)
        for fd in [self._wake_r, self._wake_w] + [c.fd for c in self.children.values()]:
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._selector is not None:
            try:
                self._selector.close()
            except OSError:
                pass
        if not self.reuse_port:
            return self.sockets  # the inherited copies of the shared sockets
        for other, sock in self.slot_sockets.items():
            if other != index:
                sock.close()  # the other slots' sockets are the other workers' business
        return [self.slot_sockets[index]]

    def _child_factory(self) -> Callable[[], Any]:
        """The handler factory of a new worker (runs in it): after a SIGHUP, the code on disk."""
        if not self.reload or self.reload_target is None:
            return self.handler_factory
        return app_factory(load_fresh(self.reload_target), self.config)

    def _on_ready(self, child: _Child) -> None:
        child.ready = True
        child.ready_at = time.monotonic()
        slot = self.slots.get(child.slot)
        if slot is None or slot.incoming is not child or self.stopping:
            return
        previous = slot.active
        slot.active, slot.incoming = child, None
        slot.wants_successor = False
        if previous is not None:
            self._retire(previous)
        if not self.booted:
            self._check_boot()
        self._continue_reload()

    def _on_limit(self, child: _Child) -> None:
        slot = self.slots.get(child.slot)
        if slot is None or slot.active is not child or self.stopping:
            return
        log.info(
            "worker %d (pid %d) reached max_requests: starting its replacement",
            child.slot,
            child.pid,
        )
        slot.wants_successor = True
        self._count_restart("max_requests")
        if slot.incoming is None:
            self._spawn(slot)

    def _retire(self, child: _Child) -> None:
        """Tell ``child`` to stop gracefully; kill it if it takes too long."""
        if child.stopping:
            return
        child.stopping = True
        child.kill_at = (
            time.monotonic() + self.config.drain_delay + self.config.graceful_timeout + _EXIT_GRACE
        )
        _kill(child.pid, signal.SIGTERM)

    def _count_failure(self, slot: _Slot) -> None:
        """One more failed start for ``slot``, after forgetting those a good run has made up for."""
        active = slot.active
        if (
            active is not None
            and active.ready
            and time.monotonic() - active.ready_at >= _MIN_UPTIME
        ):
            slot.failures = 0
        slot.failures += 1

    def _schedule(self, slot: _Slot, delay: float) -> None:
        """Start a child for ``slot`` in ``delay`` seconds.

        With reuse_port, a slot that has no worker at all meanwhile closes its socket: the kernel
        would go on handing it a share of the new connections, which nobody would accept.
        """
        slot.start_at = time.monotonic() + delay
        if delay > 0 and slot.active is None and slot.incoming is None and self.reuse_port:
            self._close_slot_socket(slot.index)

    def _on_exit(self, child: _Child, status: int) -> None:
        how = _describe_status(status)
        if child.stopping or self.stopping:
            log.info("worker %d (pid %d) %s", child.slot, child.pid, how)
            return
        slot = self.slots.get(child.slot)
        if slot is None:
            return
        uptime = time.monotonic() - child.started
        self._count_restart(_restart_cause(child, status))
        why = f": {child.error}" if child.error else ""
        if child.error:
            self.last_error = child.error
        if not child.ready or uptime < _MIN_UPTIME:
            self._count_failure(slot)
        else:
            slot.failures = 0
        if slot.active is child:
            slot.active = None
            delay = restart_delay(slot.failures, was_serving=True)
            if slot.incoming is None:
                self._schedule(slot, delay)
            log.warning(
                "worker %d (pid %d) %s after %.1fs%s; %s",
                child.slot,
                child.pid,
                how,
                uptime,
                why,
                "its replacement is starting"
                if slot.incoming is not None
                else f"restarting it in {delay:.1f}s"
                if delay
                else "restarting it",
            )
            return
        if slot.incoming is child:
            slot.incoming = None
            if not self.booted:
                log.error("worker %d (pid %d) %s%s", child.slot, child.pid, how, why)
                self._check_boot()
                return
            if self.rolling is not None and child.generation == self.generation:
                log.error(
                    "reload failed: the new worker %d (pid %d) %s%s; the running workers keep "
                    "serving the code they have",
                    child.slot,
                    child.pid,
                    how,
                    why,
                )
                self.rolling = None
            if not slot.needs_child:
                return  # the slot's running worker goes on: nothing is tried again
            delay = restart_delay(slot.failures, was_serving=False)
            self._schedule(slot, delay)
            log.warning(
                "worker %d (pid %d) %s%s; trying again in %.1fs",
                child.slot,
                child.pid,
                how,
                why,
                delay,
            )

    def _check_boot(self) -> None:
        """After the first start: report serving once every slot is settled, or give up."""
        if any(slot.incoming is not None for slot in self.slots.values()):
            return  # someone is still starting
        ready = [slot for slot in self.slots.values() if slot.active is not None]
        if not ready:
            # not logged here: Server.start raises it, and whoever called it reports it once
            self.failure = "no worker could start" + (
                f": {self.last_error}" if self.last_error else ""
            )
            self.exit_code = 1
            self.stopping = True
            return
        self.booted = True
        for slot in self.slots.values():
            if slot.active is None:
                self._schedule(slot, restart_delay(slot.failures, was_serving=False))
        count = len(self.slots)
        log.info(
            startup_line(
                self.config,
                self._listening(),
                f"{count} worker{'s' if count != 1 else ''}, supervisor pid {self.pid}",
                ", SO_REUSEPORT" if self.reuse_port else "",
            )
        )

    def _listening(self) -> list[Any]:
        """The sockets to name in the startup line (one per address)."""
        if self.reuse_port:
            return list(self.slot_sockets.values())[:1]
        return self.sockets

    # --- lifecycle -------------------------------------------------------------------------------

    def _begin_stop(self, message: str) -> None:
        if self.stopping:
            return
        log.info(message)
        self.stopping = True
        self.rolling = None
        # Close our copy at once: it would otherwise keep the socket open (and queueing
        # connections nobody takes) after the last worker has stopped accepting. The workers'
        # copies serve on through their drain period; a unix socket's file stays until we exit.
        self._close_listeners(remove_files=self.config.drain_delay <= 0)
        for child in self.children.values():
            self._retire(child)

    def _skip_drain(self) -> None:
        """A second SIGTERM while stopping: the workers end their drain period now."""
        if self.config.drain_delay <= 0:
            return
        log.info("second SIGTERM: the workers end their drain period now")
        for child in self.children.values():
            if child.stopping:
                _kill(child.pid, signal.SIGTERM)

    def _kill_all(self) -> None:
        """Kill every child still there and reap them (waiting at most ``_KILL_WAIT``)."""
        for child in list(self.children.values()):
            _kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + _KILL_WAIT
        while self.children and time.monotonic() < deadline:
            for pid in list(self.children):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid  # reaped elsewhere
                if done:
                    self._forget_fd(self.children.pop(pid))
            if self.children:
                time.sleep(0.01)
        for child in self.children.values():
            log.error(
                "worker %d (pid %d) survived SIGKILL for %.0fs: leaving it",
                child.slot,
                child.pid,
                _KILL_WAIT,
            )
            self._forget_fd(child)
        self.children.clear()

    def _begin_reload(self) -> None:
        if self.stopping:
            return
        if not self.booted:
            log.warning("SIGHUP before the workers are up: ignored")
            return
        if self.reload_target is None:
            log.warning(
                "the handler was made inside a function (or is a lambda): the new "
                "workers keep its old code"
            )
        self.generation += 1
        self.reloads += 1
        self.reload = True
        self.rolling = sorted(self.slots)
        log.info("reloading: restarting the workers one at a time (%d)", len(self.rolling))
        self._continue_reload()

    def _continue_reload(self) -> None:
        """Move the rolling restart on: one slot at a time, the next once the new child is ready.

        The restart is complete when every slot serves the new code and no older worker accepts
        connections any more: from then on, every new connection meets the new code.
        """
        while self.rolling:
            slot = self.slots.get(self.rolling[0])
            if slot is None or (
                slot.active is not None and slot.active.generation == self.generation
            ):
                self.rolling.pop(0)
                continue
            if slot.incoming is None and slot.start_at is None:
                self._spawn(slot)
            return
        if self.rolling is None:
            return
        if any(c.generation < self.generation and not c.draining for c in self.children.values()):
            return  # an old worker has been told to stop but may still accept for a moment
        self.rolling = None
        log.info("reload complete")

    def _add_worker(self) -> None:
        if self.stopping:
            return
        if not self.slots:
            log.warning("SIGTTIN before the workers are started: ignored")
            return
        index = max(self.slots, default=-1) + 1
        if self.reuse_port:
            try:
                self._open_slot_socket(index)
            except OSError as exc:
                log.error("SIGTTIN: cannot add a worker: %s", exc)
                return
        self.slots[index] = _Slot(index)
        self.target += 1
        log.info("SIGTTIN: adding worker %d (%d workers)", index, self.target)
        self._spawn(self.slots[index])

    def _remove_worker(self) -> None:
        if self.stopping:
            return
        if len(self.slots) <= 1:
            log.warning("SIGTTOU: one worker is the minimum")
            return
        index = max(self.slots)
        slot = self.slots.pop(index)
        self.target -= 1
        log.info("SIGTTOU: stopping worker %d (%d workers)", index, self.target)
        for child in (slot.active, slot.incoming):
            if child is not None:
                self._retire(child)
        # the retiring worker takes what is queued on it before closing its copy
        self._close_slot_socket(index)

    # --- metrics (docs/production.md) ------------------------------------------------------------

    def _metrics_open(self) -> None:
        """Map the shared counters and bind the metrics listener (``metrics_port`` set)."""
        config = self.config
        if config.metrics_port is None:
            return
        assert self._selector is not None
        # blocks for every slot's worker, its successor, and room for SIGTTIN and slow exits
        self.metrics = SharedMetrics(max(16, 4 * self.target))
        self.metrics_endpoint = MetricsEndpoint(
            self._selector, config.metrics_host, config.metrics_port, self._metrics_render
        )
        host, port = self.metrics_endpoint.address[:2]
        log.info(
            "metrics on http://%s/metrics", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        )

    def _metrics_render(self) -> str:
        assert self.metrics is not None
        return render(self.metrics.totals(), self.restarts, self.reloads, len(self.children))

    def _metrics_claim(self) -> int | None:
        if self.metrics is None:
            return None
        block = self.metrics.claim()
        if block is None:
            log.warning("metrics: no shared block left for a new worker; it will not be counted")
        return block

    def _metrics_enter_child(self, block: int | None) -> None:
        """In a new worker: count into ``block``; the listener is the supervisor's alone."""
        if self.metrics_endpoint is not None:
            for conn in list(self.metrics_endpoint.pending):
                conn.close()
            self.metrics_endpoint.sock.close()
            self.metrics_endpoint = None
        if self.metrics is not None:
            install(self.metrics, block)

    def _metrics_release(self, child: _Child) -> None:
        if self.metrics is not None and child.metrics_block is not None:
            self.metrics.release(child.metrics_block)
            child.metrics_block = None

    def _metrics_close(self) -> None:
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
            self.metrics_endpoint = None

    def _count_restart(self, cause: str | None) -> None:
        if cause is not None:
            self.restarts[cause] = self.restarts.get(cause, 0) + 1


def _restart_cause(child: _Child, status: int) -> str | None:
    """Why an unplanned exit of ``child`` needs a replacement (None: it was told to stop)."""
    if child.stopping:
        return None
    if not child.ready or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == BOOT_FAILURE):
        return "boot_failure"
    if child.watch.dump_until or child.watch.killed:
        return "hung"  # the watchdog found its event loop blocked (and killed it)
    if os.WIFSIGNALED(status):
        return "killed"
    return "exited" if os.WEXITSTATUS(status) == 0 else "crashed"


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _ignore(number: int, frame: Any) -> None:
    """Python-level signal handler: the wake-up pipe already carries the signal."""
