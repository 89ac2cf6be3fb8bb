"""Helpers of ``cluster-test.sh``: the load generator, HAProxy's view of the servers, a summary.

Standard library only (it runs wherever the script runs). Subcommands:

* ``load URL --connections N --rate R --stop-file F --max-seconds S --out FILE``: N threads, each
  with one keep-alive connection, send GET requests at R requests/s in all until F exists (or S
  seconds pass, a bound against a forgotten run); every request that does not get a 200 is a
  failure, recorded with its reason. Writes a JSON summary to FILE.
* ``wait-servers SOCKET STATE NAME... --timeout S``: wait until HAProxy (its stats socket) reports
  each named server of backend ``hosts`` in STATE (``UP`` or ``DOWN``).
* ``report FILE...``: print the phases' numbers as a table; exit 1 when a phase that must lose
  nothing lost something.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


class LoadClient:
    """One keep-alive connection sending requests at a fixed pace."""

    def __init__(self, host: str, port: int, path: str, interval: float) -> None:
        self.host, self.port, self.path, self.interval = host, port, path, interval
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self.latencies: list[float] = []
        self.connections = 0
        self.conn: http.client.HTTPConnection | None = None

    def run(self, stop: threading.Event, stop_file: str, deadline: float) -> None:
        next_at = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            if os.path.exists(stop_file):
                stop.set()
                break
            self.one()
            next_at += self.interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()  # behind: no burst to catch up
        if self.conn is not None:
            self.conn.close()

    def one(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            self.connections += 1
        start = time.monotonic()
        try:
            self.conn.request("GET", self.path)
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.failures.append((time.time(), f"{type(exc).__name__}: {exc}"))
            self.conn.close()
            self.conn = None
            return
        self.latencies.append(time.monotonic() - start)
        if response.status == 200 and body.startswith(b"host="):
            self.ok += 1
        else:
            self.failures.append((time.time(), f"status {response.status}: {body[:80]!r}"))
        if response.will_close:
            self.conn.close()
            self.conn = None


def load(args: argparse.Namespace) -> int:
    target = urlsplit(args.url)
    assert target.hostname is not None and target.port is not None
    interval = args.connections / args.rate
    clients = [
        LoadClient(target.hostname, target.port, target.path or "/", interval)
        for _ in range(args.connections)
    ]
    stop = threading.Event()
    deadline = time.monotonic() + args.max_seconds
    threads = [
        threading.Thread(target=c.run, args=(stop, args.stop_file, deadline), daemon=True)
        for c in clients
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.max_seconds + 15)
    elapsed = time.monotonic() - started
    latencies = sorted(x for c in clients for x in c.latencies)
    failures = [f for c in clients for f in c.failures]
    reasons: dict[str, int] = {}
    for _, reason in failures:
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    summary = {
        "phase": args.phase,
        "requests": sum(c.ok for c in clients) + len(failures),
        "ok": sum(c.ok for c in clients),
        "failed": len(failures),
        "reasons": reasons,
        "first_failures": [reason for _, reason in sorted(failures)[:5]],
        "connections_opened": sum(c.connections for c in clients),
        "seconds": round(elapsed, 2),
        "p50_ms": round(_quantile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_quantile(latencies, 0.99) * 1000, 2),
        "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 2),
    }
    with open(args.out, "w") as f:
        json.dump(summary, f)
    return 0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def server_states(stats_socket: str) -> dict[str, str]:
    """``{server name: status}`` of backend ``hosts``, from HAProxy's ``show stat``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(stats_socket)
        sock.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))  # trailing empty fields
        if row.get("pxname") == "hosts" and row.get("svname") not in ("BACKEND", "FRONTEND"):
            states[row["svname"]] = row["status"]
    return states


def wait_servers(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            states = server_states(args.socket)
        except OSError:
            states = {}
        if all(states.get(name, "").split(" ")[0] == args.state for name in args.names):
            return 0
        time.sleep(0.05)
    print(f"timeout: wanted {args.names} {args.state}, HAProxy says {states}", file=sys.stderr)
    return 1


def report(args: argparse.Namespace) -> int:
    rows = []
    for path in args.files:
        with open(path) as f:
            rows.append(json.load(f))
    print(
        f"{'phase':<10} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'conns':>6}  reasons"
    )
    bad = False
    for row in rows:
        print(
            f"{row['phase']:<10} {row['requests']:>8} {row['failed']:>6} {row['p50_ms']:>7}"
            f" {row['p99_ms']:>7} {row['max_ms']:>7} {row['connections_opened']:>6}"
            f"  {row['reasons'] or '-'}"
        )
        if row["phase"] in args.must_not_fail and row["failed"]:
            bad = True
            print(f"  {row['phase']}: first failures: {row['first_failures']}")
        if row["requests"] == 0:
            bad = True
            print(f"  {row['phase']}: no request was sent: the load generator did not run")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("load")
    p.add_argument("url")
    p.add_argument("--phase", required=True)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rate", type=float, default=400.0)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--out", required=True)
    p = commands.add_parser("wait-servers")
    p.add_argument("socket")
    p.add_argument("state", choices=("UP", "DOWN"))
    p.add_argument("names", nargs="+")
    p.add_argument("--timeout", type=float, default=20.0)
    p = commands.add_parser("report")
    p.add_argument("files", nargs="+")
    p.add_argument("--must-not-fail", nargs="*", default=[])
    args = parser.parse_args()
    return {"load": load, "wait-servers": wait_servers, "report": report}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
