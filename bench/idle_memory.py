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
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
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


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def glibc_heap() -> dict[str, int]:
    """glibc malloc's own counts (``mallinfo2``, glibc >= 2.33); empty elsewhere.

    ``malloc_heap``: bytes the main heap took with brk (in use and free together);
    ``malloc_used`` / ``malloc_free``: of those, in use (chunk headers included) and free but
    kept; ``malloc_mmap``: chunks big enough for mmap of their own (dicts and arrays of
    thousands of entries)."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    return {
        "malloc_heap": info.arena,
        "malloc_used": info.uordblks,
        "malloc_free": info.fordblks,
        "malloc_mmap": info.hblkhd,
    }


_PYMALLOC_LINES = {
    "# bytes in allocated blocks": "pymalloc_used",
    "# bytes in available blocks": "pymalloc_free_blocks",
}


def pymalloc_heap() -> dict[str, int]:
    """pymalloc's counts (objects of up to 512 bytes) from ``sys._debugmallocstats()``.

    ``pymalloc_arena_bytes``: 1 MiB arenas held (each an mmap of its own, only touched pages in RSS);
    ``pymalloc_used``: bytes in live blocks (rounded up to the 16-byte size class);
    ``pymalloc_free_blocks``: free blocks in pools that still hold a live one (the holes);
    ``pymalloc_free_pools``: bytes of pools with no live block in arenas still held."""
    out: dict[str, int] = {}
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        for line in tmp:
            label, _, value = line.partition("=")
            label = label.strip()
            if label in _PYMALLOC_LINES:
                out[_PYMALLOC_LINES[label]] = int(value.strip().replace(",", ""))
            elif label.endswith("arenas * 1048576 bytes/arena"):
                out["pymalloc_arena_bytes"] = int(value.strip().replace(",", ""))
            elif label.endswith("unused pools * 16384 bytes"):
                out["pymalloc_free_pools"] = int(value.strip().replace(",", ""))
    return out


def anonymous_rss() -> int:
    """Resident anonymous memory (the heaps, not the mapped libraries), from smaps_rollup."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(snapshot: bool) -> tuple[dict[str, int], Any]:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    snap = tracemalloc.take_snapshot() if snapshot and tracemalloc.is_tracing() else None
    counts = {"rss": rss_bytes(), "anon": anonymous_rss(), "traced": traced}
    counts.update(glibc_heap())
    counts.update(pymalloc_heap())
    return counts, snap


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
    python: str, kind: str, conns: int, frames: int, top: int, warmup: int = 20
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
        # a few connections made and closed first: lazy imports and caches are not counted
        # (--warmup 0 counts them, as bench/run.py's idle-mem case does)
        if warmup:
            warm = subprocess.run(
                [sys.executable, str(BENCH / "idleconns.py"), "--port", port]
                + ["--conns", str(warmup)],
                input="\n\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            if f"READY opened={warmup}" not in warm.stdout:
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


_HEAP_LINES = (
    ("anon", "anonymous RSS (smaps_rollup; RSS less the mapped files' pages)"),
    ("pymalloc_arena_bytes", "pymalloc arenas held (1 MiB mmaps; untouched pages not in RSS)"),
    ("pymalloc_used", "  pymalloc live blocks"),
    ("pymalloc_free_blocks", "  pymalloc free blocks in pools in use"),
    ("pymalloc_free_pools", "  pymalloc empty pools in held arenas"),
    ("malloc_heap", "glibc main heap (brk)"),
    ("malloc_used", "  glibc in use (PyMem_Raw*, objects > 512 B, libuv, chunk headers)"),
    ("malloc_free", "  glibc free but kept"),
    ("malloc_mmap", "glibc mmapped chunks"),
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=["peregrine", "uvicorn"], default="peregrine")
    p.add_argument("--python", help="interpreter for the server (default: this one)")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--frames", type=int, default=1, help="traceback depth of tracemalloc")
    p.add_argument("--top", type=int, default=10, help="allocation sites listed")
    p.add_argument(
        "--warmup", type=int, default=20, help="connections made and closed before the baseline"
    )
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
    held, plain = one_pass(python, a.server, a.conns, 0, 0, a.warmup)
    held_t, traced = one_pass(python, a.server, a.conns, a.frames, a.top, a.warmup)
    print(f"{a.server}: {held} idle keep-alive connections held")
    print(f"  RSS per connection:         {plain['rss'] / held:8.0f} B")
    print(f"  tracemalloc per connection: {traced['traced'] / held_t:8.0f} B")
    print("  where the RSS went (plain pass, bytes per connection):")
    for key, what in _HEAP_LINES:
        if key in plain:
            print(f"    {plain[key] / held:8.0f} B  {what}")
    print("  where (bytes and blocks per connection, innermost frame first):")
    for size, count, where in traced.get("top", []):
        print(f"    {size:8.1f} B {count:6.2f}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
