"""Regressions found by review of the process model (issue 3), fixed since.

Each test reproduces, with real processes, a defect the review proved, and states the behaviour
the issue or the docs promise.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..helpers import ROOT, read_response
from .support import LaunchedServer, children, get, peregrine_argv, wait_until

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


def _raw_request(host: str, port: int, headers: list[tuple[str, str]]) -> dict:
    """One request with exactly these header lines (repeated names kept); the Echo app's JSON."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n\r\n".encode())
        status, _, body = read_response(sock)
    assert status == 200
    return json.loads(body)


# --- signals with one worker (no supervisor) -------------------------------------------------


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
        process_group=0,
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
        env={"INIT_DELAY": "3", "PYTHONPATH": str(ROOT / "src")},
    )
    launched.append(server)
    server.send_signal(signal.SIGTERM)  # Handler() is still sleeping
    code = server.proc.wait(10)
    assert (code, os.path.exists(path)) == (0, False), server.output


# --- Server.shutdown() -------------------------------------------------------------------------

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


# --- SharedCounter ------------------------------------------------------------------------------

COUNTER_KILLED_MID_INCREMENT = '''
import os, signal, struct, threading
from peregrine.util import shared
from peregrine.util.shared import SharedCounter

counter = SharedCounter()
pid = os.fork()
if pid == 0:
    class DiesWhileWriting:
        """The OOM killer (or a SIGKILL) strikes a worker in the middle of next()."""
        size = struct.calcsize("q")
        def unpack_from(self, buffer, offset):
            return struct.unpack_from("q", buffer, offset)
        def pack_into(self, *args):
            os.kill(os.getpid(), signal.SIGKILL)
    shared._INT = DiesWhileWriting()
    counter.next()
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.WIFSIGNALED(status)
result = []
thread = threading.Thread(target=lambda: result.append(counter.next()), daemon=True)
thread.start()
thread.join(3)
print("next() returned" if result else "next() hangs", flush=True)
os._exit(0)
'''


def test_counter_survives_a_worker_killed_while_holding_its_lock() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", COUNTER_KILLED_MID_INCREMENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "next() returned" in proc.stdout, proc.stdout + proc.stderr


# --- proxy headers ----------------------------------------------------------------------------


def test_client_forwarded_header_passed_through_by_an_x_forwarded_proxy(start_server) -> None:
    server = start_server("tests.apps:Echo", "--forwarded-allow-ips", "127.0.0.1", workers=1)
    # what nginx sends upstream with the docs' config: the client's headers, plus its own XFF/XFP
    data = _raw_request(
        server.host,
        server.port,
        [
            ("Forwarded", "for=6.6.6.6;proto=https"),  # written by the client
            ("X-Forwarded-For", "203.0.113.7"),  # $proxy_add_x_forwarded_for
            ("X-Forwarded-Proto", "http"),  # $scheme
        ],
    )
    assert (data["client"][0], data["scheme"]) == ("203.0.113.7", "http")


def test_unterminated_quote_cannot_swallow_the_proxys_forwarded_element(start_server) -> None:
    server = start_server("tests.apps:Echo", "--forwarded-allow-ips", "127.0.0.1", workers=1)
    # client sent `Forwarded: for=6.6.6.6;x="`; the proxy appended `, for=203.0.113.7;proto=http`
    data = _raw_request(
        server.host,
        server.port,
        [
            ("Forwarded", 'for=6.6.6.6;x=", for=203.0.113.7;proto=http'),
        ],
    )
    assert data["client"][0] != "6.6.6.6"


def test_x_forwarded_proto_uses_the_value_the_proxy_appended(start_server) -> None:
    server = start_server("tests.apps:Echo", "--forwarded-allow-ips", "127.0.0.1", workers=1)
    data = _raw_request(
        server.host,
        server.port,
        [
            ("X-Forwarded-Proto", "https"),  # written by the client
            ("X-Forwarded-For", "203.0.113.7"),  # appended by the proxy
            ("X-Forwarded-Proto", "http"),  # appended by the proxy
        ],
    )
    assert (data["client"][0], data["scheme"]) == ("203.0.113.7", "http")


def test_bad_forwarded_allow_ips_is_refused_before_serving() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "peregrine",
            "run",
            PID_APP,
            "--port",
            "0",
            "--workers",
            "1",
            "--forwarded-allow-ips",
            "10.0.0.0/8, localhost",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "localhost" in proc.stderr
    assert "Traceback" not in proc.stderr and "serving on" not in proc.stderr, proc.stderr


# --- unix sockets -----------------------------------------------------------------------------


def _uds_get(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200
    return body


def test_stopping_a_server_does_not_remove_another_servers_unix_socket(launched, tmp_path) -> None:
    path = str(tmp_path / "app.sock")
    first = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "1"),
        ready=r"serving on http\+unix://",
    )
    launched.append(first)
    os.unlink(path)  # e.g. a deploy script cleaning up, or see the next test
    second = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "2"),
        ready=r"serving on http\+unix://",
    )
    launched.append(second)
    assert first.stop() == 0
    assert os.path.exists(path), "stopping the first server removed the second server's socket"
    assert _uds_get(path).startswith(b"pid=")


def test_a_live_unix_socket_is_not_taken_over(launched, tmp_path) -> None:
    path = str(tmp_path / "app.sock")
    first = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "1"),
        ready=r"serving on http\+unix://",
    )
    launched.append(first)
    second = LaunchedServer(
        peregrine_argv("run", PID_APP, "--uds", path, "--workers", "1"), ready=r"."
    )
    launched.append(second)
    # a refusing server exits within a second or two; a taking-over one says it is serving
    wait_until(lambda: second.proc.poll() is not None or "serving on" in second.output, timeout=8)
    assert "serving on" not in second.output, "a second server took over a live server's socket"
    assert second.proc.wait(5) != 0
    assert _uds_get(path) == f"pid={first.proc.pid}".encode()


# --- TLS --------------------------------------------------------------------------------------


def test_encrypted_key_without_password_fails_instead_of_prompting(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    from cryptography.hazmat.primitives import serialization

    cert = trustme.CA().issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    keyfile, certfile = tmp_path / "key.pem", tmp_path / "cert.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    pid, fd = pty.fork()  # a controlling terminal, as when run by hand
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "peregrine",
                "run",
                PID_APP,
                "--port",
                "0",
                "--workers",
                "1",
                "--ssl-certfile",
                str(certfile),
                "--ssl-keyfile",
                str(keyfile),
            ],
        )
    output, status = b"", None
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    pass
            if b"pass phrase" in output:
                break  # waiting for someone to type the password
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert b"pass phrase" not in output, output.decode(errors="replace")
    assert status is not None and status != 0, "start-up hung instead of failing"


# --- reload and reuse_port --------------------------------------------------------------------

INSTANCE_APP = """
VERSION = {version!r}


class Handler:
    def handle_request(self, req, resp):
        resp.set_body(VERSION)


handler = Handler()
"""


def test_sighup_loads_new_code_for_an_instance_handler(start_server, tmp_path) -> None:
    (tmp_path / "instapp.py").write_text(INSTANCE_APP.format(version="v1"))
    server = start_server(
        "instapp:handler", workers=2, cwd=str(tmp_path), env={"PYTHONDONTWRITEBYTECODE": "1"}
    )
    assert get(server.url + "/").text == "v1"
    (tmp_path / "instapp.py").write_text(INSTANCE_APP.format(version="v2"))
    mark = len(server.lines)
    server.send_signal(signal.SIGHUP)
    assert server.wait_for_line("reload complete", 10, start=mark), server.output
    assert {get(server.url + "/").text for _ in range(6)} == {"v2"}


def test_reuse_port_slot_without_a_worker_does_not_swallow_connections(
    start_server, tmp_path
) -> None:
    flag = tmp_path / "crash"
    server = start_server(
        "tests.process.apps:FailsWhenFlagged",
        "--reuse-port",
        "true",
        workers=2,
        env={"PEREGRINE_TEST_CRASH_FLAG": str(flag)},
    )
    flag.write_text("on")  # from now on a new worker cannot start
    os.kill(children(server.proc.pid)[0], signal.SIGKILL)
    assert server.wait_for_line("failed to start", 5), server.output
    clients = []
    try:
        for _ in range(20):
            sock = socket.create_connection((server.host, server.port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            clients.append(sock)
        answered: set[socket.socket] = set()
        wait_until(
            lambda: answered.update(select.select(clients, [], [], 0)[0]) or len(answered) == 20,
            timeout=3,
        )
        assert len(answered) == 20, f"{20 - len(answered)} of 20 connections never answered"
    finally:
        for sock in clients:
            sock.close()
        flag.unlink()
