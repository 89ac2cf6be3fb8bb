"""Helpers for tests of the process model: process trees, ports, polling."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from .. import forked
from ..helpers import ROOT, ServerProcess, popen_server
from ..helpers import wait_until as wait_until  # re-exported: the process tests import it from here

SERVING = re.compile(r"serving on ")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return status != "Z"


def refuses(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (the connection is refused)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# One client for the whole run (making one costs a TLS context), keeping no connection alive:
# every request opens a new connection, so the kernel picks a worker for each.
_client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def get(url: str, timeout: float = 10.0, **kwargs: object) -> httpx.Response:
    """One request on a new connection (``Connection: close``), so the kernel picks a worker."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return _client.get(url, timeout=timeout, headers=headers, **kwargs)  # type: ignore[arg-type]


def raw_get(host: str, port: int, path: str = "/", timeout: float = 10.0) -> bytes:
    """One request on a new raw connection, returning everything until the server closes it."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


class Hammer:
    """Sends requests on new connections from a thread until stopped, recording every failure."""

    def __init__(self, host: str, port: int, path: str = "/") -> None:
        self.host, self.port, self.path = host, port, path
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = raw_get(self.host, self.port, self.path, timeout=10)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if response.startswith(b"HTTP/1.1 200"):
                self.ok += 1
                self.bodies.append(response.partition(b"\r\n\r\n")[2])
            else:
                self.failures.append(repr(response[:200]))

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


class LaunchedServer(ServerProcess):
    """A server started from an arbitrary command line, ready once ``ready`` matches a line.

    For listeners whose startup line does not carry ``host:port`` (unix sockets).
    """

    def __init__(
        self,
        argv: list[str],
        ready: str = r"serving on ",
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.argv = argv
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | forked.ForkedProcess
        if argv[:3] == peregrine_argv() and not forked.needs_exec(env):
            # `python -m peregrine` as a fork of this process, as ServerProcess starts it
            # (tests/forked.py: an interpreter start and Peregrine's import cost ~0.2 s of CPU)
            self.proc, _ = forked.spawn(argv[3:], cwd=cwd or str(ROOT), env=full_env)
        else:
            self.proc = popen_server(argv, cwd or str(ROOT), full_env)
        self.lines = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if self.wait_for_line(ready, start_timeout) is None:
            self.kill()
            raise RuntimeError(f"server did not start: {' '.join(argv)}\n{self.output}")


def peregrine_argv(*args: str) -> list[str]:
    """``python -m peregrine ARGS`` with this interpreter."""
    return [sys.executable, "-m", "peregrine", *args]
