#!/usr/bin/env python3
"""WebSocket echo load client: messages per second through a server's echo endpoint.

Written for low client overhead, so that the server (on its own core) is what
limits the number: uvloop, raw asyncio.Protocol, client frames prebuilt once
(the masking key is fixed, which RFC 6455 permits the server to never check),
no permessage-deflate offered, and each connection keeps WINDOW messages in
flight, sending the next batch as one write() when echoes come back.

Prints one line: WSJSON {"msgs_per_s": ..., "messages": ..., "errors": ...}
Target is always 127.0.0.1.
"""

import argparse
import asyncio
import base64
import json
import os
import sys
import time

try:
    import uvloop
except ImportError:  # pragma: no cover - the bench venv has it
    uvloop = None

HOST = "127.0.0.1"


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A single masked client frame (payload < 126 bytes)."""
    assert len(payload) < 126
    key = b"\x37\xfa\x21\x3d"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + masked


class EchoClient(asyncio.Protocol):
    def __init__(self, stats, frame: bytes, window: int, path: str, ready: asyncio.Future):
        self.stats = stats
        self.frame = frame
        self.window = window
        self.path = path
        self.ready = ready
        self.buf = b""
        self.open = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data):
        if not self.open:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            if not head.startswith(b"HTTP/1.1 101"):
                self.stats["errors"] += 1
                if not self.ready.done():
                    self.ready.set_exception(RuntimeError(head.split(b"\r\n")[0].decode()))
                self.transport.close()
                return
            self.open = True
            if not self.ready.done():
                self.ready.set_result(None)
            self.transport.write(self.frame * self.window)
            if not self.buf:
                return
            data, self.buf = self.buf, b""
        # Walk the server's (unmasked) frames; count data frames, answer pings.
        buf = self.buf + data if self.buf else data
        i, n, got = 0, len(buf), 0
        while n - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                head = 10
            if n - i < head + length:
                break
            opcode = b0 & 0x0F
            if opcode in (0x1, 0x2):
                got += 1
            elif opcode == 0x9:  # ping: answer with a pong carrying the same data
                self.transport.write(client_frame(buf[i + head : i + head + length], 0xA))
            elif opcode == 0x8:
                self.stats["errors"] += 1
            i += head + length
        self.buf = buf[i:] if i < n else b""
        if got:
            self.stats["messages"] += got
            if self.stats["running"]:
                self.transport.write(self.frame * got)

    def connection_lost(self, exc):
        if self.stats["running"]:
            self.stats["errors"] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the handshake"))


async def main_async(a) -> dict:
    loop = asyncio.get_running_loop()
    stats = {"messages": 0, "errors": 0, "running": True}
    frame = client_frame(b"x" * a.size)
    clients = []
    for _ in range(a.conns):
        ready = loop.create_future()
        transport, proto = await loop.create_connection(
            lambda r=ready: EchoClient(stats, frame, a.window, a.path, r), HOST, a.port
        )
        clients.append((transport, ready))
    await asyncio.wait_for(asyncio.gather(*(r for _, r in clients)), 30)
    await asyncio.sleep(a.warmup)
    start_count, t0 = stats["messages"], time.monotonic()
    await asyncio.sleep(a.duration)
    count, elapsed = stats["messages"] - start_count, time.monotonic() - t0
    stats["running"] = False
    for transport, _ in clients:
        transport.close()
    await asyncio.sleep(0.1)
    return {
        "msgs_per_s": round(count / elapsed, 1),
        "messages": count,
        "errors": stats["errors"],
        "conns": a.conns,
        "window": a.window,
        "size": a.size,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/ws")
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--size", type=int, default=32, help="text message size in bytes (< 126)")
    p.add_argument("--window", type=int, default=4, help="messages in flight per connection")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    a = p.parse_args()
    runner = uvloop.run if uvloop else asyncio.run
    try:
        res = runner(main_async(a))
    except Exception as e:  # report why, for the results table
        print(f"wsload failed: {e!r}", file=sys.stderr)
        return 1
    print("WSJSON " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
