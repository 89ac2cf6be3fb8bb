"""Handlers the end-to-end tests serve (run as ``tests.apps:NAME``)."""

from __future__ import annotations

import asyncio
import json
import os
import weakref

import peregrine


class Hello:
    """Every request: ``Kawww``."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(b"Kawww\n")


class Echo:
    """Answers a JSON description of the request it got."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_header("Content-Type", "application/json")
        resp.set_body(
            json.dumps(
                {
                    "method": req.method,
                    "path": req.path,
                    "raw_path": req.raw_path.decode("latin-1"),
                    "query_string": req.query_string,
                    "query": req.query.items(),
                    "version": req.version,
                    "headers": list(req.headers),
                    "body": req.body.decode("latin-1"),
                    "body_length": len(req.body),
                    "client": list(req.client) if req.client else None,
                    "keep_alive": req.keep_alive,
                    "scheme": req.scheme,
                    "pid": os.getpid(),
                }
            )
        )


class Behaviours:
    """One behaviour per path, for tests of the engine's edges."""

    def __init__(self) -> None:
        self.count = 0

    async def slow(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        await asyncio.sleep(float(req.query.get("s", "1")))
        resp.set_body(f"slept {req.query.get('s', '1')}\n")

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        path = req.path
        if path == "/slow":
            return self.slow(req, resp)
        if path == "/raise":
            raise RuntimeError("boom from the handler")
        if path == "/stream":
            return self.stream(req, resp)
        if path == "/iter":
            resp.stream(self.chunks(int(req.query.get("n", "3"))))
            return None
        if path == "/big":
            resp.set_body(b"x" * int(req.query.get("n", "1000000")))
            return None
        if path == "/status":
            resp.status = int(req.query.get("code", "200"))
            resp.set_body(b"body")
            return None
        if path == "/header":
            try:
                resp.set_header("X-Test", req.query.get("v", ""))
            except ValueError as exc:
                resp.status = 400
                resp.set_body(f"refused: {exc}")
            return None
        if path == "/close":
            resp.set_header("Connection", "close")
            resp.set_body(b"closing")
            return None
        if path == "/count":
            self.count += 1
            resp.set_body(str(self.count))
            return None
        resp.set_body(b"ok")
        return None

    async def stream(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        for i in range(int(req.query.get("n", "3"))):
            await resp.write(f"part {i}\n")
            await asyncio.sleep(0)

    async def chunks(self, n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0)


class Engine(Behaviours):
    """``Behaviours`` plus the paths the HTTP engine's end-to-end tests need (tests/aio)."""

    def __init__(self) -> None:
        super().__init__()
        self.echo = Echo()
        #: chunks ``/produce`` managed to hand to the connection, and whether it finished
        self.produced = 0
        self.produce_done = False

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        path = req.path
        if path == "/echo":
            self.echo.handle_request(req, resp)
            return None
        if path == "/empty":
            resp.set_body(b"")
            return None
        if path == "/produce":
            return self.produce(req, resp)
        if path == "/produced":
            resp.set_body(f"{self.produced} {int(self.produce_done)}")
            return None
        if path == "/async-raise":
            return self.async_raise()
        if path == "/stream-raise":
            return self.stream_raise(resp)
        if path == "/headers":
            resp.set_header("Content-Type", "text/x-test")
            resp.add_header("X-Multi", "1")
            resp.add_header("X-Multi", "2")
            resp.set_body(b"0123456789")
            return None
        return super().handle_request(req, resp)

    async def produce(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        """Stream ``n`` chunks of ``size`` bytes, counting each write that returned."""
        self.produced = 0
        self.produce_done = False
        chunk = b"p" * int(req.query.get("size", "65536"))
        for _ in range(int(req.query.get("n", "100"))):
            await resp.write(chunk)
            self.produced += 1
        self.produce_done = True

    async def async_raise(self) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom from an async handler")

    async def stream_raise(self, resp: peregrine.Response) -> None:
        await resp.write(b"first part\n")
        raise RuntimeError("boom in the middle of a stream")


class StashingHandler:
    """A handler that uses the response as a middleware would: its own attributes on it."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.seen_by = "middleware"  # type: ignore[attr-defined]
        ref = weakref.ref(resp)
        resp.body = f"{resp.seen_by} {ref() is resp}".encode()  # type: ignore[attr-defined]
