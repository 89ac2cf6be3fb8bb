#!/usr/bin/env python3
"""Memory per idle keep-alive connection: RSS and tracemalloc bytes, and where they go.

Starts a server in a child process (Peregrine's ``Server.serve()`` with one worker, or uvicorn
with httptools and uvloop), opens N keep-alive connections to it over loopback with
``bench/idleconns.py``, makes one request on each and holds them idle. The child measures
itself before and while they are held. Two passes: one plain, for RSS (what the benchmark's
idle-mem case measures), and one under ``tracemalloc``, for the Python heap per connection and
the source lines that allocated it (tracemalloc's own bookkeeping would inflate RSS, hence
the separate pass).

    .venv/bin/python bench/idle_memory.py                      # Peregrine, 10,000 connections
    .venv/bin/python bench/idle_memory.py --conns 2000 --top 15
    .venv/bin/python bench/idle_memory.py --server uvicorn     # needs uvicorn (bench/.venv)

RLIMIT_NOFILE is raised to its hard limit in both processes (each connection is a descriptor
in the server and one in the client). Target is always 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
BODY = b"x" * 64


def raise_nofile(want: int) -> None:
    """Lift the soft open-files limit to the hard one when ``want`` descriptors are needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < want:
        print(f"warning: open-files hard limit {hard} < {want}", file=sys.stderr)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- the server child -------------------------------------------------------------------------


class Small:
    """Answers every request with a small body (the benchmark's /small)."""

    def handle_request(self, req: Any, resp: Any) -> None:
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(BODY)


async def small_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"64")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


async def start_server(kind: str, conns: int) -> tuple[int, Any]:
    """Start the server in this loop; return its port and a function that stops it."""
    if kind == "peregrine":
        from peregrine import Server

        server = Server(
            Small,
            host=HOST,
            port=0,
            workers=1,
            keep_alive_timeout=3600,  # idle connections must outlive the measurement
            max_connections=conns + 100,
            backlog=4096,
            log_level="warning",
        )
        task = asyncio.ensure_future(server.serve())
        while not server.sockets:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return server.sockets[0].getsockname()[1], server.shutdown
    import uvicorn

    config = uvicorn.Config(
        small_asgi,
        host=HOST,
        port=0,
        loop="none",
        http="httptools",
        ws="none",
        lifespan="off",
        timeout_keep_alive=3600,
        backlog=4096,
        log_level="warning",
        access_log=False,
    )
    userver = uvicorn.Server(config)
    task = asyncio.ensure_future(userver.serve())
    while not userver.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = userver.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        userver.should_exit = True

    return port, stop


def measure(snapshot: bool) -> tuple[dict[str, int], Any]:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    snap = tracemalloc.take_snapshot() if snapshot and tracemalloc.is_tracing() else None
    return {"rss": rss_bytes(), "traced": traced}, snap


async def child_main(kind: str, conns: int, frames: int, top: int) -> None:
    if frames:
        tracemalloc.start(frames)
    port, stop = await start_server(kind, conns)
    loop = asyncio.get_running_loop()
    print(f"PORT {port}", flush=True)
    base: dict[str, int] = {}
    base_snap = None
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if line == "base":
            base, base_snap = measure(snapshot=True)
            print("OK", flush=True)
        elif line.startswith("measure"):
            held = int(line.split()[1])
            now, snap = measure(snapshot=True)
            result: dict[str, Any] = {k: now[k] - base[k] for k in now}
            if snap is not None and base_snap is not None:
                group = "traceback" if frames > 1 else "lineno"
                stats = snap.compare_to(base_snap, group)
                result["top"] = [
                    [s.size_diff / held, s.count_diff / held, _where(s.traceback)]
                    for s in stats[:top]
                ]
            print("RESULT " + json.dumps(result), flush=True)
    stop()
    await asyncio.sleep(0.5)


def _where(traceback: Any) -> str:
    # innermost frame first, then its callers (up to 3), shortened to package-relative paths
    parts = []
    for frame in list(reversed(traceback))[:3]:
        name = frame.filename
        for marker in ("site-packages/", "src/", "lib/python"):
            if marker in name:
                name = name.split(marker, 1)[1]
                break
        parts.append(f"{name}:{frame.lineno}")
    return " <- ".join(parts)


# --- the driver -------------------------------------------------------------------------------


def one_pass(
    python: str, kind: str, conns: int, frames: int, top: int
) -> tuple[int, dict[str, Any]]:
    """Run the server and the idle clients once; return (connections held, the child's result)."""
    child_cmd = [python, __file__, "--child", kind, "--conns", str(conns)]
    child_cmd += ["--frames", str(frames), "--top", str(top)]
    server = subprocess.Popen(child_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdin is not None and server.stdout is not None
        first = server.stdout.readline().split()
        if len(first) != 2 or first[0] != "PORT":
            raise RuntimeError(f"server did not start: {first}")
        port = first[1]
        # one connection made and closed first: lazy imports and caches are not counted
        warm = subprocess.run(
            [sys.executable, str(BENCH / "idleconns.py"), "--port", port, "--conns", "20"],
            input="\n\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "READY opened=20" not in warm.stdout:
            raise RuntimeError(f"warm-up failed: {warm.stdout} {warm.stderr}")
        server.stdin.write("base\n")
        server.stdin.flush()
        server.stdout.readline()
        client = subprocess.Popen(
            [sys.executable, str(BENCH / "idleconns.py"), "--port", port, "--conns", str(conns)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None and client.stdout is not None
        ready = client.stdout.readline()
        opened = int(ready.split("opened=")[1].split()[0])
        time.sleep(1.0)  # as bench/run.py's idle-mem case: buffers freed after the responses
        server.stdin.write(f"measure {opened}\n")
        server.stdin.flush()
        result = json.loads(server.stdout.readline().split(" ", 1)[1])
        client.stdin.write("check\n")
        client.stdin.flush()
        held = int(client.stdout.readline().split()[1])
        client.stdin.close()
        client.wait(timeout=60)
        server.stdin.write("\n")
        server.stdin.flush()
        server.wait(timeout=30)
        return held, result
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=["peregrine", "uvicorn"], default="peregrine")
    p.add_argument("--python", help="interpreter for the server (default: this one)")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--frames", type=int, default=1, help="traceback depth of tracemalloc")
    p.add_argument("--top", type=int, default=10, help="allocation sites listed")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    raise_nofile(a.conns + 200)
    if a.child:
        try:
            import uvloop

            run: Any = uvloop.run
        except ImportError:
            run = asyncio.run
        run(child_main(a.child, a.conns, a.frames, a.top))
        return 0
    python = a.python or sys.executable
    held, plain = one_pass(python, a.server, a.conns, 0, 0)
    held_t, traced = one_pass(python, a.server, a.conns, a.frames, a.top)
    print(f"{a.server}: {held} idle keep-alive connections held")
    print(f"  RSS per connection:         {plain['rss'] / held:8.0f} B")
    print(f"  tracemalloc per connection: {traced['traced'] / held_t:8.0f} B")
    print("  where (bytes and blocks per connection, innermost frame first):")
    for size, count, where in traced.get("top", []):
        print(f"    {size:8.1f} B {count:6.2f}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
