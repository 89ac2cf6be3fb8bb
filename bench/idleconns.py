#!/usr/bin/env python3
"""Open many keep-alive connections to a server, make one request on each, then hold them idle.

Used by the idle-memory case: the orchestrator reads the server's RSS before and
while these connections are open.

Protocol with the orchestrator (stdin/stdout, one line each):
    -> READY opened=N failed=M     all connections made and their one request answered
    <- check                       (any line) the orchestrator has measured
    -> HELD n                      how many are still open at that moment
    <- EOF                         close everything and exit
Target is always 127.0.0.1.
"""

import argparse
import asyncio
import resource
import sys

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

HOST = "127.0.0.1"


class Idle(asyncio.Protocol):
    """Sends one request, waits for the whole response (Content-Length), then sits idle."""

    def __init__(self, request: bytes, done: asyncio.Future):
        self.request = request
        self.done = done
        self.buf = b""
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        if self.done.done():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in self.buf[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buf) >= end + 4 + length:
            self.buf = b""
            self.done.set_result(True)

    def connection_lost(self, exc):
        self.closed = True
        if not self.done.done():
            self.done.set_result(False)


async def main_async(a) -> None:
    loop = asyncio.get_running_loop()
    request = f"GET {a.path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    protos: list[Idle] = []
    transports = []
    failed = 0

    async def open_one() -> bool:
        done = loop.create_future()
        try:
            transport, proto = await loop.create_connection(
                lambda: Idle(request, done), HOST, a.port
            )
        except OSError:
            return False
        transports.append(transport)
        protos.append(proto)
        try:
            return await asyncio.wait_for(done, a.timeout)
        except asyncio.TimeoutError:
            return False

    # Connect in batches so the server's listen backlog is never the limit. A server
    # that stops answering (a connection cap) makes a whole batch fail: stop there
    # rather than wait out every remaining batch.
    remaining = a.conns
    while remaining > 0:
        batch = min(a.batch, remaining)
        oks = await asyncio.gather(*(open_one() for _ in range(batch)))
        failed += oks.count(False)
        remaining -= batch
        if not any(oks):
            break
    opened = sum(1 for p in protos if not p.closed)
    print(f"READY opened={opened} failed={failed}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    print(f"HELD {sum(1 for p in protos if not p.closed)}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # EOF: done
    for t in transports:
        t.close()
    await asyncio.sleep(0.2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/small")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each response")
    a = p.parse_args()
    # Every connection is a file descriptor: lift the soft limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.conns + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < a.conns + 100:
        print(f"warning: open-files hard limit {hard} < {a.conns}", file=sys.stderr)
    (uvloop.run if uvloop else asyncio.run)(main_async(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
