"""ASGI under the supervisor: several workers, a rolling reload with new code, a graceful stop."""

from __future__ import annotations

import signal
from pathlib import Path

from ..helpers import ServerProcess
from ..process.support import Hammer, get

APP_SOURCE = """
import os

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": f"{{VERSION}} pid={{os.getpid()}}".encode()}})
"""


def write_app(directory: Path, version: str) -> None:
    (directory / "asgireload.py").write_text(APP_SOURCE.format(version=version))


def test_sighup_reloads_an_asgi_app_in_every_worker_without_refusing(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    # the server may cache bytecode (and so be a fork of the test process: tests/forked.py): the
    # new version is longer, so the bytecode cached for v1 is stale even within the same second
    with ServerProcess("asgireload:app", workers=2, cwd=str(tmp_path)) as server:
        assert get(server.url + "/").text.startswith("v1 ")
        with Hammer(server.host, server.port) as hammer:
            write_app(tmp_path, "version-2")
            mark = len(server.lines)
            server.send_signal(signal.SIGHUP)
            assert server.wait_for_line("reload complete", 15, start=mark), server.output
        assert hammer.failures == [], hammer.failures[:5]
        assert hammer.ok > 10
        assert {get(server.url + "/").text.split()[0] for _ in range(10)} == {"version-2"}
        assert server.stop() == 0
