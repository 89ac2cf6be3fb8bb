"""CPU time and context switches per request of a real WSGI server process, over loopback.

    python bench/cpu_per_request.py [--threads N] [--requests R] [--connections C] [--rounds K]

Starts ``peregrine run wsgi_app:app`` (bench/apps/wsgi_app.py, one worker, uvloop, no access
log) with ``--threads N`` (0: the app on the loop thread), warms it up, then runs ``h2load --h1
-n R -c C`` K times (GET /, the seed body) and prints, per round, the server's CPU seconds
(user + system, every thread of every process of the server, from /proc) and its context
switches (voluntary and involuntary), each divided by R. CPU seconds per request depend much
less on what else the machine runs than requests per second do, and they count what
instruction counts cannot see: the kernel's share of the thread pool's wake-ups and the GIL's
hand-overs between threads. ``PEREGRINE_PURE_PYTHON=1`` in the environment runs the pure build.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import syscalls  # bench/syscalls.py: free_port, descendants, wait_until_answering, load

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def usage(pids: list[int]) -> tuple[float, int, int]:
    """``(CPU seconds, voluntary switches, involuntary switches)`` of every thread of ``pids``."""
    cpu = 0.0
    voluntary = involuntary = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (all threads)
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return cpu, voluntary, involuntary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = syscalls.free_port()
    env = dict(os.environ, PYTHONPATH=str(HERE / "apps"))
    cmd = [sys.executable, "-m", "peregrine", "run", "wsgi_app:app", "--interface", "wsgi"]
    cmd += ["--threads", str(args.threads), "--host", syscalls.HOST, "--port", str(port)]
    cmd += ["--workers", "1", "--loop", "uvloop", "--access-log", "false"]
    server = subprocess.Popen(cmd, env=env)
    try:
        syscalls.wait_until_answering(port, server)
        syscalls.load(port, 5_000, args.connections)  # warm-up: caches, the pool's threads
        pids = syscalls.descendants(server.pid)
        per_request = []
        for _ in range(args.rounds):
            cpu0, vol0, invol0 = usage(pids)
            syscalls.load(port, args.requests, args.connections)
            cpu1, vol1, invol1 = usage(pids)
            n = args.requests
            us = (cpu1 - cpu0) / n * 1e6
            per_request.append(us)
            print(
                f"threads={args.threads} c={args.connections}: {us:6.1f} us CPU/request, "
                f"{(vol1 - vol0) / n:5.2f} voluntary + {(invol1 - invol0) / n:5.2f} "
                f"involuntary switches/request"
            )
        print(f"median {statistics.median(per_request):.1f} us CPU/request")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
