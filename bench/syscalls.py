"""Syscalls per request: a server under ``strace -c -f`` while one keep-alive client sends N requests.

    python bench/syscalls.py peregrine|peregrine-pure|floor|nginx [N]

Starts the server (the seed benchmark's apps: bench/apps), waits until it answers, attaches
``strace -c -f`` to it, sends N sequential GET / requests on one keep-alive connection from this
process, detaches, and prints strace's table with each count divided by N. One connection and no
pipelining: every request costs the server its own wake-up, read and write (the worst case for
syscalls per request; with many connections one epoll_wait serves several).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "apps"))

PORT = 38611
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def server_command(kind: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(HERE / "apps"))
    py = sys.executable
    if kind in ("peregrine", "peregrine-pure"):
        if kind == "peregrine-pure":
            env["PEREGRINE_PURE_PYTHON"] = "1"
        cmd = [py, "-m", "peregrine", "run", "peregrine_app:Handler", "--port", str(PORT)]
        return cmd, env
    if kind == "floor":
        return [py, str(HERE / "apps" / "floor.py"), str(PORT)], env
    if kind == "nginx":
        import run  # bench/run.py: the benchmark's own nginx configuration

        ctx = run.Ctx(tmp=tmp, static_dir=tmp)
        conf = run.write_nginx_conf(ctx, PORT)
        return ["nginx", "-c", str(conf), "-p", str(tmp)], env
    raise SystemExit(f"unknown server {kind!r}")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def read_response(sock: socket.socket, buf: bytearray) -> None:
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(buf) >= end + 4 + length:
                del buf[: end + 4 + length]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk


def main() -> None:
    kind = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    tmp = Path(tempfile.mkdtemp(prefix="peregrine-syscalls-"))
    cmd, env = server_command(kind, tmp)
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE / "apps"
    )
    strace = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        out = tmp / "strace.txt"
        pids = [server.pid, *children(server.pid)]  # nginx serves from a worker process
        attach = [arg for pid in pids for arg in ("-p", str(pid))]
        strace = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), *attach])
        time.sleep(1.0)  # strace attaches to every thread
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = bytearray()
            for _ in range(count):
                sock.sendall(REQUEST)
                read_response(sock, buf)
        time.sleep(0.3)
        strace.send_signal(signal.SIGINT)
        strace.wait(10)
        time.sleep(0.2)
        print(f"# {kind}: syscalls per request over {count} keep-alive requests (one connection)")
        total = 0.0
        for line in out.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[3].isdigit():
                name = parts[-1]
                calls = int(parts[3])
                if name != "total":
                    total += calls / count
                    if calls >= count // 10:
                        print(f"{name:>16} {calls / count:6.2f}")
        print(f"{'total':>16} {total:6.2f}")
    finally:
        if strace is not None and strace.poll() is None:
            strace.kill()
        server.send_signal(signal.SIGINT if kind != "nginx" else signal.SIGQUIT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
