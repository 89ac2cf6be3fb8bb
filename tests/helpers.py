"""Starting real Peregrine servers for tests, and talking to them with raw sockets.

Servers run as processes of their own (``python -m peregrine run ...``, as users run them;
forked from the test process, which has imported Peregrine already: tests/forked.py), on
127.0.0.1 with port 0; the port is read from the startup line.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from . import forked

ROOT = Path(__file__).resolve().parent.parent
_ADDRESS = re.compile(r"serving on (https?)://([^,\s]+):(\d+)")


def popen_server(argv: list[str], cwd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A server as a new process: no stdin, stdout and stderr together on one pipe (read line
    by line by the caller), in a session of its own (so its whole group can be signalled)."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class ServerProcess:
    """A Peregrine server in a child process; a context manager that stops it on exit.

    ``args`` go to the command line after ``run TARGET`` (or replace it when ``command`` is
    given, e.g. ``["static", DIR]``). ``workers`` defaults to 1. The process is a fork of the
    test process running ``python -m peregrine`` or, with ``script`` (``[PATH, ARGS...]``),
    ``python PATH ARGS...`` (tests/forked.py); with ``real_process``, or an ``env`` that changes
    how an interpreter starts, a new interpreter.
    """

    def __init__(
        self,
        target: str | None = None,
        *args: str,
        command: list[str] | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        start_timeout: float = 15.0,
        script: list[str] | None = None,
        real_process: bool = False,
    ) -> None:
        options = ["--host", "127.0.0.1", "--port", "0", "--workers", str(workers), *args]
        cli_args = [*(command or ["run", str(target)]), *options]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | forked.ForkedProcess
        if not real_process and not forked.needs_exec(env):
            # a fork of this process running `python -m peregrine` or `python SCRIPT`
            # (tests/forked.py says why)
            if script is None:
                self.proc, _ = forked.spawn(cli_args, cwd=cwd or str(ROOT), env=full_env)
            else:
                self.proc, _ = forked.spawn(
                    [*script[1:], *options], cwd=cwd or str(ROOT), env=full_env, script=script[0]
                )
            self.argv = self.proc.args
        else:
            if script is not None:
                argv = [sys.executable, *script, *options]
            else:
                argv = [sys.executable, "-m", "peregrine", *cli_args]
            self.argv = argv
            self.proc = popen_server(argv, cwd or str(ROOT), full_env)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        match = self.wait_for_line(_ADDRESS, start_timeout)
        if match is None:
            self.kill()
            raise RuntimeError(f"server did not start: {' '.join(self.argv)}\n{self.output}")
        m = _ADDRESS.search(match)
        assert m is not None
        self.scheme, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        self.url = f"{self.scheme}://{self.host}:{self.port}"

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything the server printed so far."""
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(
        self, pattern: re.Pattern[str] | str, timeout: float = 10.0, start: int = 0
    ) -> str | None:
        """The first output line from index ``start`` on that matches ``pattern``, waiting up to ``timeout``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._changed.wait(min(remaining, 0.1))

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit code (killing the process group after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self._reader.join(5)
        code = self.proc.returncode
        assert code is not None
        return code

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        """A raw TCP connection to the server."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self.proc.poll() is None:
                self.kill()


def share_httpx_default_tls_context() -> None:
    """Make every httpx client that verifies with the default CA bundle share one TLS context.

    httpx builds a new ``ssl.SSLContext`` for each client, and ``httpx.get`` makes a client per
    call: reading the CA bundle costs 20-40 ms of CPU each time, a few hundred times per run,
    for requests that are nearly all plain ``http://`` to test servers. A context with the
    default verification is the same every time, so it is made once per test process (and
    again if ``SSL_CERT_FILE``/``SSL_CERT_DIR``, which httpx reads, change). Clients given a
    context of their own, ``verify=False`` or a certificate get httpx's own behaviour. Does
    nothing if httpx's transport no longer builds its context through ``create_ssl_context``
    (tests/test_helpers.py then fails, saying so).
    """
    try:
        from httpx._transports import default as transport
    except ImportError:
        return
    build = getattr(transport, "create_ssl_context", None)
    if build is None or getattr(build, "shares_the_default", False):
        return
    shared: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}

    def create_ssl_context(
        verify: object = True, cert: object = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is not True or cert:
            context: ssl.SSLContext = build(verify=verify, cert=cert, trust_env=trust_env)
            return context
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in shared:
            shared[key] = build(verify=True, cert=None, trust_env=trust_env)
        return shared[key]

    create_ssl_context.shares_the_default = True  # type: ignore[attr-defined]
    setattr(transport, "create_ssl_context", create_ssl_context)  # noqa: B010 - not exported


def run_peregrine(
    *args: str,
    cwd: str | Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    real_process: bool = False,
    base_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m peregrine ARGS`` to its end, output captured as text (``subprocess.run``).

    ``env`` adds to ``base_env`` (this process's environment by default). Like :class:`ServerProcess`, a fork of the test
    process unless ``real_process`` or ``env`` asks for a new interpreter (tests/forked.py).
    """
    full_env = {**(os.environ if base_env is None else base_env), **(env or {})}
    if not real_process and not forked.needs_exec(env):
        return forked.run(list(args), cwd=str(cwd), env=full_env, timeout=timeout)
    return subprocess.run(
        [sys.executable, "-m", "peregrine", *args],
        cwd=str(cwd),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """Poll ``predicate`` until it is true (return True) or ``timeout`` passes (return False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the peer sends until it closes (or ``timeout`` passes: then fail loudly)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def raw_exchange(server: ServerProcess, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection, then read until the server closes it."""
    with server.connect(timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length- or chunked-framed response: (status, lower-cased headers, body)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a complete head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                break
        return status, headers, body
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return status, headers, rest[:length]
