"""Syscalls per request: a server under ``strace -c -f`` while a client sends a fixed number of requests.

    python bench/syscalls.py SERVER [--requests N] [--connections C]

SERVER is peregrine (the installed build: compiled where it was built), peregrine-pure
(PEREGRINE_PURE_PYTHON=1), floor (bench/apps/floor.py: bare uvloop, no parsing) or nginx (the
benchmark's own configuration, bench/run.py). Each serves the seed benchmark's GET / (6150 bytes)
with one worker on 127.0.0.1, as bench/run.py starts them.

The script starts the server, waits until it answers, attaches ``strace -c -f`` to it (and to its
children: nginx serves from a worker process), runs ``h2load --h1 -n N -c C -m 1`` (N keep-alive
GET requests over C connections, one outstanding request per connection, as wrk sends them;
``--pipeline M`` keeps M outstanding),
detaches, and prints every syscall's count divided by N (``--close``: instead of h2load, N
requests each on its own connection, ``Connection: close``, from C client threads), grouped as receive, send, epoll_wait,
epoll_ctl and other. Defaults: 20,000 requests over 100 connections; ``--connections 1`` is the
worst case (every request its own wake-up). h2load's connect and close are counted too: with
keep-alive they are 2 x C accepts/closes over N requests, negligible at the defaults.

strace counts are exact whatever else the machine runs; but tracing slows the server down (every
syscall stops it), so more requests wait per wake-up than they would untraced, and epoll_wait per
request may come out lower than in an untraced run at the same load. ``--check-perf`` runs the
same load again untraced and counts it with perf's syscall tracepoints (``perf stat``), one more
row in the same columns.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(APPS))

HOST = "127.0.0.1"

#: syscall name -> the column it is counted in (anything else is "other")
GROUPS = {
    "read": "receive",
    "recvfrom": "receive",
    "recvmsg": "receive",
    "readv": "receive",
    "write": "send",
    "writev": "send",
    "sendto": "send",
    "sendmsg": "send",
    "sendfile": "send",
    "epoll_wait": "epoll_wait",
    "epoll_pwait": "epoll_wait",
    "epoll_pwait2": "epoll_wait",
    "epoll_ctl": "epoll_ctl",
}
COLUMNS = ("receive", "send", "epoll_wait", "epoll_ctl", "other")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, port: int, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the seed request on ``port``."""
    env = dict(os.environ, PYTHONPATH=str(APPS))
    env.pop("PEREGRINE_PURE_PYTHON", None)
    py = sys.executable
    if kind in ("peregrine", "peregrine-pure"):
        if kind == "peregrine-pure":
            env["PEREGRINE_PURE_PYTHON"] = "1"
        cmd = [py, "-m", "peregrine", "run", "peregrine_app:Handler", "--host", HOST]
        cmd += ["--port", str(port), "--workers", "1", "--loop", "uvloop", "--backlog", "4096"]
        cmd += ["--access-log", "false"]
        return cmd, env
    if kind == "floor":
        from common import SEED_BODY

        return [py, str(APPS / "floor.py"), str(port), str(len(SEED_BODY))], env
    if kind == "nginx":
        import run  # bench/run.py: the benchmark's own nginx configuration

        ctx = run.Ctx(tmp=tmp, static_dir=tmp)
        conf = run.write_nginx_conf(ctx, port)
        return ["nginx", "-c", str(conf), "-p", str(tmp)], env
    raise SystemExit(f"unknown server {kind!r}")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (nginx: master and worker)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += descendants(int(child))
    return found


def wait_until_answering(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not answer within 30 s")


#: put before h2load's command line (cpu_per_request.py --pin: ``taskset -c 1``)
LOAD_PREFIX: list[str] = []


def load(port: int, requests: int, connections: int, pipeline: int = 1) -> str:
    """h2load's report after ``requests`` GET / over ``connections`` keep-alive connections,
    ``pipeline`` requests outstanding on each."""
    cmd = [
        *LOAD_PREFIX,
        "h2load",
        "--h1",
        "-n",
        str(requests),
        "-c",
        str(connections),
        "-m",
        str(pipeline),
    ]
    result = subprocess.run(
        [*cmd, f"http://{HOST}:{port}/"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise SystemExit(f"h2load failed: {result.stderr or result.stdout}")
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", result.stdout
    )
    if not done or int(done.group(2)) != requests:
        raise SystemExit(f"h2load did not complete {requests} requests:\n{result.stdout}")
    return result.stdout


def load_closing(port: int, requests: int, connections: int) -> None:
    """``requests`` GET / each on a new connection that the server closes after answering
    (``Connection: close``), from ``connections`` client threads at once: what accepting and
    closing cost per connection."""
    from concurrent.futures import ThreadPoolExecutor

    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    def one(_: int) -> None:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {answer[:80]!r}")

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(one, range(requests)))


def parse_strace(text: str) -> dict[str, int]:
    """``strace -c``'s table as {syscall: calls} (the total row left out)."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3])
    return calls


def perf_counts(
    pids: list[int], port: int, requests: int, connections: int, pipeline: int
) -> dict[str, int]:
    """The same load again, counted by perf's syscall tracepoints (no ptrace stops): the calls
    of each syscall in GROUPS that the kernel has, and of all syscalls (key "total")."""
    if shutil.which("perf") is None:
        raise SystemExit("--check-perf: perf is not installed")
    available = subprocess.run(
        ["perf", "list", "syscalls:sys_enter_*"], capture_output=True, text=True
    ).stdout
    names = [n for n in GROUPS if f"syscalls:sys_enter_{n} " in available]
    events = ["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{n}" for n in names)]
    cmd = ["perf", "stat", "-x", ",", "-e", ",".join(events), "-p", ",".join(map(str, pids))]
    perf = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    load(port, requests, connections, pipeline)
    time.sleep(0.3)
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=30)
    counts: dict[str, int] = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit():
            event = fields[2]
            key = "total" if event == "raw_syscalls:sys_enter" else event.split("sys_enter_")[-1]
            counts[key] = int(fields[0])
    if "total" not in counts:
        raise SystemExit(f"perf stat gave no count: {err.strip()}")
    return counts


def row(label: str, calls: dict[str, int], requests: int) -> str:
    """One table row: calls per request in each column (with "total": other is the rest)."""
    columns = dict.fromkeys(COLUMNS, 0.0)
    for name, count in calls.items():
        if name != "total":
            columns[GROUPS.get(name, "other")] += count / requests
    total = calls["total"] / requests if "total" in calls else sum(columns.values())
    columns["other"] += total - sum(columns.values())
    cells = " | ".join(f"{columns[c]:.2f}" for c in COLUMNS)
    return f"| {label} | {cells} | {total:.2f} |"


def report(
    kind: str, calls: dict[str, int], requests: int, connections: int, pipeline: int
) -> None:
    print(
        f"# {kind}: syscalls per request, {requests} requests over {connections} connections,"
        f" {pipeline} outstanding per connection"
    )
    print("| server | " + " | ".join(COLUMNS) + " | total |")
    print("|---|" + "---:|" * (len(COLUMNS) + 1))
    print(row(kind, calls, requests))
    print("# every syscall, per request:")
    for name, count in sorted(calls.items(), key=lambda item: -item[1]):
        print(f"#   {name:<16} {count / requests:8.4f}  ({count} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("server", choices=["peregrine", "peregrine-pure", "floor", "nginx"])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument(
        "--pipeline", type=int, default=1, help="requests outstanding per connection (not floor)"
    )
    parser.add_argument(
        "--close", action="store_true", help="a new connection per request (not the floor)"
    )
    parser.add_argument("--check-perf", action="store_true", help="also count untraced (perf)")
    args = parser.parse_args()
    if args.close and args.check_perf:
        parser.error("--check-perf counts h2load's keep-alive load only")
    if args.server == "floor" and (args.pipeline > 1 or args.close):
        parser.error("the floor answers once per read and never closes: not pipelined or --close")
    tmp = Path(tempfile.mkdtemp(prefix="peregrine-syscalls-"))
    port = free_port()
    cmd, env = server_command(args.server, port, tmp)
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=APPS
    )
    strace: subprocess.Popen[bytes] | None = None
    try:
        wait_until_answering(port, server)
        pids = descendants(server.pid)
        if args.close:
            load_closing(port, min(args.requests, 2000), args.connections)  # warm-up
        else:
            load(port, min(args.requests, 2000), args.connections, args.pipeline)  # warm-up
        out = tmp / "strace.txt"
        attach = [arg for pid in pids for arg in ("-p", str(pid))]
        strace = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), *attach])
        time.sleep(1.0)  # strace attaches to every thread
        if args.close:
            load_closing(port, args.requests, args.connections)
        else:
            load(port, args.requests, args.connections, args.pipeline)
        time.sleep(0.3)
        strace.send_signal(signal.SIGINT)
        strace.wait(30)
        calls = parse_strace(out.read_text())
        report(args.server, calls, args.requests, args.connections, args.pipeline)
        if args.check_perf:
            counts = perf_counts(pids, port, args.requests, args.connections, args.pipeline)
            print(row(f"{args.server}, untraced (perf stat)", counts, args.requests))
    finally:
        if strace is not None and strace.poll() is None:
            strace.kill()
        server.send_signal(signal.SIGQUIT if args.server == "nginx" else signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
