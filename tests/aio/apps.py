"""Handlers the connection tests serve (run as ``tests.aio.apps:NAME``).

Kept out of the test modules: a server that imports a test module imports pytest and the test
clients with it, about a quarter of a second of CPU per server start.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import peregrine

from ..apps import Engine


class TargetApp:
    """Answers ``seen <method> <raw target>``; takes CONNECT to ``proxy.example:443`` (403)."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        if req.method == "CONNECT" and req.raw_path == b"proxy.example:443":
            resp.status = 403
        resp.set_body(b"seen %s %s" % (req.method.encode(), req.raw_path))


_FILE_SIZE = 100_000


class FileApp(Engine):
    """``Engine`` plus file responses (``send_file``), which ``tests/apps.py`` has none of."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        if req.path == "/file":
            resp.send_file(_file_to_send())
            return None
        if req.path == "/slow-file":
            return self.slow_file(req, resp)
        if req.path == "/backend-down":
            return self.backend_down()
        return super().handle_request(req, resp)

    async def backend_down(self) -> None:
        await asyncio.sleep(0)
        raise ConnectionRefusedError("the handler's own backend refused it")

    async def slow_file(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        await asyncio.sleep(float(req.query.get("s", "0.5")))
        resp.send_file(_file_to_send())


def _file_to_send() -> str:
    path = os.path.join(tempfile.gettempdir(), f"peregrine-test-file-{os.getuid()}.bin")
    if not os.path.exists(path) or os.path.getsize(path) != _FILE_SIZE:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(b"f" * _FILE_SIZE)
        os.replace(tmp, path)
    return path


#: above the size where bytes bodies go out without a copy (1 KB)
REUSED_BODY_SIZE = 60000

_BUFFER = bytearray(REUSED_BODY_SIZE)


class ReusedBufferApp(Engine):
    """``Engine`` plus a handler that builds every answer in one reused buffer."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        if req.path == "/reused":
            # "%06d" % i, 10,000 times: the body of response i, written into the same buffer
            _BUFFER[:] = b"%06d" % int(req.query.get("i", "0")) * (REUSED_BODY_SIZE // 6)
            resp.body = _BUFFER  # type: ignore[assignment]  # the attribute: set_body would copy
            return None
        return super().handle_request(req, resp)
