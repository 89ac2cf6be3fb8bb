"""The life of a supervised worker process, from just after the fork to its exit status.

The supervisor (:mod:`.supervisor`) forks one child per worker slot; the child calls
:func:`run_child`, which puts its signals back in order, asks to die with its parent, reports
to the supervisor on a pipe and serves with a :class:`~.worker.Worker` built by
:func:`~.startup.build_worker`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from ..config import Config
from .signals import SUPERVISOR_SIGNALS
from .startup import build_worker, one_line
from .watchdog import arm_stack_dump

log = logging.getLogger("peregrine")

#: exit status of a supervised worker that could not start (bad handler, bad new code, TLS...)
BOOT_FAILURE = 3
_PR_SET_PDEATHSIG = 1  # prctl's option number (linux/prctl.h)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the parent poll in Worker still covers it


def run_child(
    config: Config,
    make_factory: Callable[[], Callable[[], Any]],
    sockets: list[socket.socket],
    *,
    index: int,
    cores: list[int] | None,
    pipe: int,
    parent_pid: int,
    signal_mask: Any,
) -> int:
    """The life of a supervised worker process, from just after the fork; returns its exit status.

    The supervisor forked with its signals blocked (``signal_mask`` is the mask to return to):
    the child resets them first. It reports to the supervisor on ``pipe``, one line each:
    ``ready`` once accepting, ``limit`` at its ``max_requests``, ``draining`` once it has
    stopped accepting (it finishes what it has), ``error TEXT`` when it could not start (then it
    exits with :data:`BOOT_FAILURE`), and ``alive`` every few seconds while its event loop runs
    (with ``worker_timeout``; on :data:`~.watchdog.DUMP_SIGNAL` it writes its threads' stacks
    there too). ``make_factory`` gives the handler factory (importing the application afresh
    after a SIGHUP).
    """
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    for sig in SUPERVISOR_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # the supervisor's business, not a worker's
    signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:
        return 0  # the supervisor died while we were being born
    from ..util.shared import mark_worker_process

    mark_worker_process()
    # Never block on the pipe: a supervisor that stops reading must not stop the event loop.
    os.set_blocking(pipe, False)
    if config.worker_timeout:
        arm_stack_dump(pipe)

    def send(message: str) -> None:
        try:
            os.write(pipe, message.encode("utf-8", "replace") + b"\n")
        except OSError:
            pass  # the supervisor is gone; the parent watch will stop us

    ready = False

    def on_ready() -> None:
        nonlocal ready
        ready = True
        send("ready")

    try:
        worker = build_worker(
            config,
            make_factory(),
            sockets,
            index,
            cores,
            on_request_limit=lambda: send("limit"),
            on_ready=on_ready,
            on_draining=lambda: send("draining"),
            on_heartbeat=lambda: send("alive"),
            parent_pid=parent_pid,
        )
        worker.run()
    except BaseException as exc:
        if ready:
            raise
        log.exception("worker %d could not start", index)
        send("error " + one_line(exc))
        return BOOT_FAILURE
    return 0
