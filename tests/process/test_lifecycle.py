"""Graceful shutdown: in-flight requests finish, idle connections close, nothing is left behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..helpers import ROOT, read_response
from .support import LaunchedServer, alive, children, get, peregrine_argv, refuses, wait_until

APP = "tests.process.apps:Pid"


class SlowRequests:
    """``count`` slow requests in flight on their own connections, answered or not."""

    def __init__(self, host: str, port: int, count: int, seconds: float) -> None:
        self.results: list[object] = [None] * count
        self.sent = threading.Barrier(count + 1)
        self.threads = [
            threading.Thread(target=self._one, args=(host, port, i, seconds), daemon=True)
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()
        self.sent.wait(10)

    def _one(self, host: str, port: int, index: int, seconds: float) -> None:
        try:
            with socket.create_connection((host, port), timeout=20) as sock:
                sock.sendall(f"GET /slow?s={seconds} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                self.sent.wait(10)
                self.results[index] = read_response(sock, timeout=20)
        except Exception as exc:  # recorded for the assertion message
            self.results[index] = exc

    def join(self) -> list[object]:
        for thread in self.threads:
            thread.join(20)
        return self.results


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_in_flight_requests_finish_then_exit_0(start_server, workers: int, sig: int) -> None:
    server = start_server(APP, workers=workers)
    worker_pids = children(server.proc.pid)
    slow = SlowRequests(server.host, server.port, 4, 1.5)
    time.sleep(0.3)  # let the server read them
    server.send_signal(sig)
    # stop accepting at once, even though requests are still running
    assert wait_until(lambda: refuses(server.host, server.port), timeout=1.0), "still accepting"
    results = slow.join()
    for result in results:
        assert isinstance(result, tuple), result
        status, headers, body = result
        assert status == 200 and body.startswith(b"slept"), result
        assert headers.get("connection") == "close"
    assert server.proc.wait(10) == 0, server.output
    assert refuses(server.host, server.port)
    assert not any(alive(pid) for pid in worker_pids)


@pytest.mark.parametrize("workers", [1, 2])
def test_idle_keep_alive_connections_close_at_once(start_server, workers: int) -> None:
    server = start_server(APP, "--keep-alive-timeout", "30", workers=workers)
    sock = server.connect()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = read_response(sock)
    assert status == 200 and headers.get("connection") != "close"
    server.send_signal(signal.SIGTERM)
    # Keep-alive (30 s) and graceful_timeout (30 s) cannot end it within these 5 s: only the
    # shutdown's closing of idle connections can. The timeouts only make a hang fail.
    sock.settimeout(5)
    assert sock.recv(100) == b""  # closed by the server, without waiting for keep-alive to end
    assert server.proc.wait(5) == 0
    assert "graceful_timeout" not in server.output  # nothing was cut short
    sock.close()


def test_graceful_timeout_cuts_long_requests(start_server) -> None:
    server = start_server(APP, "--graceful-timeout", "0.5", workers=2)
    slow = SlowRequests(server.host, server.port, 2, 30)
    time.sleep(0.3)
    server.send_signal(signal.SIGTERM)
    # the requests take 30 s: an exit within 10 s means they were cut (the wait only makes a
    # hang fail), and the log says it was the graceful timeout that cut them
    assert server.proc.wait(10) == 0
    assert all(not isinstance(r, tuple) for r in slow.join())
    assert "graceful_timeout (0.5s) passed: cutting" in server.output


def test_second_interrupt_forces_exit(start_server) -> None:
    server = start_server(APP, workers=2)
    worker_pids = children(server.proc.pid)
    slow = SlowRequests(server.host, server.port, 2, 30)
    time.sleep(0.3)
    server.send_signal(signal.SIGINT)
    assert server.wait_for_line("Ctrl\\+C again", 5)
    server.send_signal(signal.SIGINT)
    # the requests take 30 s and graceful_timeout is 30 s: an exit within 5 s is the forced one
    # (the wait only makes a hang fail); its exit code and log line say so
    assert server.proc.wait(5) == 1
    assert "second interrupt: killing the workers and exiting at once" in server.output
    assert wait_until(lambda: not any(alive(pid) for pid in worker_pids), timeout=3)
    slow.join()
    assert refuses(server.host, server.port)


SHUTDOWN_SCRIPT = """
import logging, sys, threading, peregrine
from tests.process.apps import Pid
server = peregrine.Server(Pid, host="127.0.0.1", port=0, workers=int(sys.argv[1]))


class ShutdownOnceServing(logging.Handler):
    # shutdown() from another thread as soon as the server serves (however loaded the machine)
    def emit(self, record):
        if "serving on" in record.getMessage():
            threading.Thread(target=server.shutdown).start()


logging.basicConfig(level=logging.INFO, stream=sys.stderr)
logging.getLogger().addHandler(ShutdownOnceServing())
server.start()
print("start returned", flush=True)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_server_shutdown_method(workers: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT, str(workers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "start returned" in proc.stdout
    assert "serving on" in proc.stderr and "stopped" in proc.stderr


def test_requests_keep_working_until_the_signal(start_server) -> None:
    server = start_server(APP, workers=2)
    for _ in range(10):
        assert get(server.url + "/").status_code == 200
    assert server.stop() == 0


PID_APP = "tests.process.apps:Pid"


SLOW_INIT_APP = '''
import os, time


class Handler:
    """Building the handler takes a while (loading a model, connecting to a database...)."""

    def __init__(self):
        time.sleep(float(os.environ.get("INIT_DELAY", "2")))

    def handle_request(self, req, resp):
        resp.set_body(f"pid={os.getpid()}")
'''


def _proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_sighup_with_one_worker_does_not_kill_the_server(start_server) -> None:
    server = start_server(PID_APP, workers=1)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)
        server.send_signal(signal.SIGHUP)
        try:
            status, _, body = read_response(sock, timeout=5)
        except (ConnectionError, OSError, ValueError, AssertionError) as exc:
            pytest.fail(
                f"in-flight request lost on SIGHUP: {exc!r}; exit status {server.proc.poll()}"
            )
    assert status == 200 and body.startswith(b"slept")
    assert server.proc.poll() is None, f"server died: exit status {server.proc.returncode}"


def test_sigttin_with_one_worker_does_not_freeze_the_server() -> None:
    # a process group of its own whose parent (this test) is in the same session: not orphaned,
    # like a server started from an interactive shell
    proc = subprocess.Popen(
        [sys.executable, "-m", "peregrine", "run", PID_APP, "--port", "0", "--workers", "1"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=os.setpgrp,  # process_group=0 needs Python 3.11
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + 15
        while port is None and time.monotonic() < deadline:
            match = re.search(
                r"serving on http://127\.0\.0\.1:(\d+)", proc.stdout.readline().decode()
            )
            if match:
                port = int(match.group(1))
        assert port is not None, "server did not start"
        os.kill(proc.pid, signal.SIGTTIN)
        time.sleep(0.5)
        state = _proc_state(proc.pid)
        assert state != "T", "SIGTTIN stopped (froze) the server process"
        assert get(f"http://127.0.0.1:{port}/", timeout=3).status_code == 200
    finally:
        proc.kill()
        proc.wait(10)


def test_sigterm_while_the_single_worker_starts_exits_0_and_removes_the_socket(
    launched, tmp_path
) -> None:
    (tmp_path / "slowinit.py").write_text(SLOW_INIT_APP)
    path = str(tmp_path / "s.sock")
    server = LaunchedServer(
        peregrine_argv("run", "slowinit:Handler", "--uds", path, "--workers", "1"),
        ready=r"serving on http\+unix://",
        cwd=str(tmp_path),
        env={"INIT_DELAY": "3"},  # read by the app: the server is still a fork (tests/forked.py)
    )
    launched.append(server)
    server.send_signal(signal.SIGTERM)  # Handler() is still sleeping
    code = server.proc.wait(10)
    assert (code, os.path.exists(path)) == (0, False), server.output


SHUTDOWN_FROM_HANDLER = """
import os, sys
import peregrine


class Handler:
    def handle_request(self, req, resp):
        if req.path == "/stop":
            SERVER.shutdown()
        resp.set_body(f"pid={os.getpid()}")


SERVER = peregrine.Server(Handler, host="127.0.0.1", port=0, workers=2)
SERVER.start()
print("start returned", flush=True)
"""


def test_server_shutdown_from_a_handler_with_several_workers(start_server, tmp_path) -> None:
    script = tmp_path / "stopper.py"
    script.write_text(SHUTDOWN_FROM_HANDLER)
    server = start_server(script=[str(script)], workers=2)  # --workers etc. are ignored by it
    assert get(server.url + "/stop").status_code == 200
    try:
        code = server.proc.wait(8)
    except subprocess.TimeoutExpired:
        pytest.fail("Server.shutdown() from a handler did not stop the server")
    assert code == 0
    assert "start returned" in server.output
