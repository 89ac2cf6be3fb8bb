"""CPU time and context switches per request of a real WSGI server process, over loopback.

    python bench/cpu_per_request.py [--threads N] [--requests R] [--connections C] [--rounds K]
                                    [--pin] [--perf] [--server-args ...]

Starts ``peregrine run wsgi_app:app`` (bench/apps/wsgi_app.py, one worker, uvloop, no access
log) with ``--threads N`` (0: the app on the loop thread), warms it up, then runs ``h2load --h1
-n R -c C`` K times (GET /, the seed body) and prints, per round, the server's CPU seconds
(user + system, every thread of every process of the server, from /proc) and its context
switches (voluntary and involuntary), each divided by R. CPU seconds per request depend much
less on what else the machine runs than requests per second do, and they count what
instruction counts cannot see: the kernel's share of the thread pool's wake-ups and the GIL's
hand-overs between threads. ``PEREGRINE_PURE_PYTHON=1`` in the environment runs the pure build.

``--pin`` runs the server on CPU 0 and h2load on CPU 1 (``taskset``), as ``bench/run.py`` does:
the loop and the application threads then share one core, so every hand-off between them is a
context switch on it. Each round also splits the CPU time between the loop thread (the
process's main thread) and the others (the application threads). ``--perf`` counts each round
with ``perf stat`` as well: context switches, futex calls and ``epoll_wait`` calls per request
(software events and syscall tracepoints; no ptrace stops, so the server runs at its own pace).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import syscalls  # bench/syscalls.py: free_port, descendants, wait_until_answering, load

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


#: what --perf counts: software events and syscall tracepoints (no hardware counters needed)
PERF_EVENTS = (
    "context-switches",
    "syscalls:sys_enter_futex",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
)


def usage(pids: list[int]) -> tuple[float, int, int, float]:
    """``(CPU seconds, voluntary switches, involuntary switches, CPU seconds of the main
    threads)`` of every thread of ``pids``."""
    cpu = main_cpu = 0.0
    voluntary = involuntary = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (all threads)
        main = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        main_cpu += (int(main[11]) + int(main[12])) / TICKS
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return cpu, voluntary, involuntary, main_cpu


def start_perf(pids: list[int]) -> subprocess.Popen[str]:
    """``perf stat`` on every thread of ``pids`` (stopped and read by :func:`stop_perf`)."""
    available = subprocess.run(
        ["perf", "list", "syscalls:sys_enter_*"], capture_output=True, text=True
    ).stdout
    events = [e for e in PERF_EVENTS if ":" not in e or f"{e} " in available]
    cmd = ["perf", "stat", "-x", ",", "-e", ",".join(events), "-p", ",".join(map(str, pids))]
    perf = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # perf attaches
    return perf


def stop_perf(perf: subprocess.Popen[str]) -> dict[str, int]:
    """Each event's count (epoll_wait and epoll_pwait as one, "epoll_wait")."""
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=30)
    counts: dict[str, int] = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit():
            name = fields[2].split("sys_enter_")[-1].replace("epoll_pwait", "epoll_wait")
            counts[name] = counts.get(name, 0) + int(fields[0])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--app", default="wsgi_app:app", help="module:callable to serve")
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, h2load on CPU 1")
    parser.add_argument("--perf", action="store_true", help="also count with perf stat")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()
    port = syscalls.free_port()
    paths = [str(HERE / "apps"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    cmd = [sys.executable, "-m", "peregrine", "run", args.app, "--interface", "wsgi"]
    cmd += ["--threads", str(args.threads), "--host", syscalls.HOST, "--port", str(port)]
    cmd += ["--workers", "1", "--loop", "uvloop", "--access-log", "false", *args.server_args]
    if args.pin:
        cmd = ["taskset", "-c", "0", *cmd]
        syscalls.LOAD_PREFIX[:] = ["taskset", "-c", "1"]
    server = subprocess.Popen(cmd, env=env)
    try:
        syscalls.wait_until_answering(port, server)
        syscalls.load(port, 5_000, args.connections)  # warm-up: caches, the pool's threads
        pids = syscalls.descendants(server.pid)
        per_request = []
        for _ in range(args.rounds):
            perf = start_perf(pids) if args.perf else None
            cpu0, vol0, invol0, main0 = usage(pids)
            syscalls.load(port, args.requests, args.connections)
            cpu1, vol1, invol1, main1 = usage(pids)
            n = args.requests
            us = (cpu1 - cpu0) / n * 1e6
            per_request.append(us)
            counted = ""
            if perf is not None:
                counts = stop_perf(perf)
                counted = ", perf: " + ", ".join(f"{k} {v / n:.2f}" for k, v in counts.items())
            print(
                f"threads={args.threads} c={args.connections}: {us:6.1f} us CPU/request "
                f"(loop thread {(main1 - main0) / n * 1e6:.1f}), "
                f"{(vol1 - vol0) / n:5.2f} voluntary + {(invol1 - invol0) / n:5.2f} "
                f"involuntary switches/request{counted}"
            )
        print(f"median {statistics.median(per_request):.1f} us CPU/request")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
