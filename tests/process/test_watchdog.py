"""The hung-worker watchdog (``worker_timeout``): a real supervisor, real workers, a handler that
blocks its event loop in ``time.sleep``."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest

from peregrine.process.watchdog import DUMP_WAIT, HangWatch, Heartbeat, heartbeat_interval

from ..aio.fakes import ClockLoop
from ..helpers import ServerProcess, read_until_closed
from .support import alive, children, get, wait_until

APP = "tests.process.apps:Pid"
HUNG = re.compile(r"worker (\d+) \(pid (\d+)\) is hung: .*worker_timeout 1s")


def request(server: ServerProcess, path: str) -> socket.socket:
    sock = server.connect(timeout=20)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize("reuse_port", ["false", "true"])
def test_hung_worker_is_logged_with_its_stack_killed_and_replaced(
    start_server: Callable[..., ServerProcess], reuse_port: str
) -> None:
    server = start_server(APP, "--worker-timeout", "1", "--reuse-port", reuse_port, workers=2)
    supervisor = server.proc.pid
    assert wait_until(lambda: len(children(supervisor)) == 2)
    blocked = request(server, "/block?s=3600")
    time.sleep(0.3)  # the handler now blocks (connections its worker took before are lost)
    # Sent while the worker hangs: with reuse_port some wait in the hung worker's own socket
    # and are served by its replacement, which inherits that socket.
    waiting = [request(server, "/") for _ in range(10)]
    line = server.wait_for_line(HUNG, timeout=15)
    assert line is not None, server.output
    match = HUNG.search(line)
    assert match is not None
    slot, pid = match.group(1), int(match.group(2))
    assert server.wait_for_line(rf"worker {slot} \(pid {pid}\) was stuck at", timeout=5)
    # the stack is the same log record's next lines: wait for them too (the output is read
    # line by line, so the header can be seen before the lines after it)
    handler_frame = r'tests/process/apps\.py", line \d+ in handle_request'
    server.wait_for_line(handler_frame, timeout=5)
    stack = server.output.split(f"(pid {pid}) was stuck at", 1)[1]
    assert re.search(handler_frame, stack), stack
    assert server.wait_for_line(rf"worker {slot} \(pid {pid}\) was killed by SIGKILL", timeout=5)
    assert wait_until(lambda: not alive(pid))
    with blocked:
        assert read_until_closed(blocked, 10) == b""  # its connection died with it
    assert wait_until(lambda: len(children(supervisor)) == 2)
    assert pid not in children(supervisor)
    for sock in waiting:
        with sock:
            answer = read_until_closed(sock, 15)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert f"pid={pid}".encode() not in answer
    answers = {get(server.url + "/").text for _ in range(20)}
    assert f"pid={pid}" not in answers


def test_worker_busy_awaiting_is_not_hung(start_server: Callable[..., ServerProcess]) -> None:
    """A handler that awaits for longer than worker_timeout keeps the loop running: no kill."""
    server = start_server(APP, "--worker-timeout", "1", workers=2)
    started = time.monotonic()
    assert get(server.url + "/slow?s=1.5").text.startswith("slept pid=")
    assert time.monotonic() - started >= 1.5
    assert "hung" not in server.output


def test_worker_timeout_0_turns_the_watchdog_off(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(APP, "--worker-timeout", "0", workers=2)
    before = set(children(server.proc.pid))
    assert get(server.url + "/block?s=1.5").text.startswith(
        "pid="
    )  # longer than the other tests allow
    assert set(children(server.proc.pid)) == before
    assert "hung" not in server.output


def test_single_process_mode_has_no_watchdog(start_server: Callable[..., ServerProcess]) -> None:
    """With ``--workers 1`` there is no supervisor to watch the loop (documented): a handler
    blocking past worker_timeout is answered by the same process, which is not killed."""
    server = start_server(APP, "--worker-timeout", "1", workers=1)
    assert get(server.url + "/block?s=2.5").text == f"pid={server.proc.pid}"
    assert server.proc.poll() is None
    assert "hung" not in server.output


# --- the pieces, in-process ------------------------------------------------------------------


def test_heartbeat_beats_while_the_loop_runs() -> None:
    loop = ClockLoop()
    try:
        beats: list[float] = []
        heartbeat = Heartbeat(loop, 0.05, lambda: beats.append(loop.elapsed))
        heartbeat.start()
        loop.advance(0.22)
        assert beats == [0.0, 0.05, 0.1, 0.15, 0.2]  # at once, then every interval
        heartbeat.stop()
        loop.advance(0.1)
        assert len(beats) == 5  # stopped
    finally:
        loop.close()
    assert heartbeat_interval(30) == 1.0 and heartbeat_interval(1) == 0.25


def test_hang_watch_collects_the_stack_only_while_dumping() -> None:
    watch = HangWatch(10.0)
    assert watch.next_moment(30) == 40.0
    watch.add_stack_line("not a stack: the worker is not hung")
    watch.found_hung(41.0)
    assert watch.dumping and watch.next_moment(30) == 41.0 + DUMP_WAIT
    watch.add_stack_line('  File "app.py", line 3 in handle_request')
    assert watch.stack_text() == '      File "app.py", line 3 in handle_request'
    watch.killed = True
    assert watch.next_moment(30) == 0.0
    assert "no stack received" in HangWatch(0.0).stack_text()
