"""uvicorn's hot path for a raw ASGI request, driven exactly like ``hotpath_asgi.py``.

uvicorn's own HTTP protocol (httptools, the one ``--http httptools`` runs) gets the same
keep-alive seed request N times over the same counting transport, on uvloop, and the loop runs
until each response is written. Needs uvicorn, so it runs in the benchmark's venv:

    PYTHON=bench/.venv/bin/python SCRIPT=bench/hotpath_uvicorn.py bash bench/hotpath.sh
    APP=fastapi PYTHON=bench/.venv/bin/python SCRIPT=bench/hotpath_uvicorn.py bash bench/hotpath.sh
"""

from __future__ import annotations

import os
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from hotpath import new_loop
from hotpath_asgi import ResponseCountingTransport, drive, load_app


class UvicornTransport(ResponseCountingTransport):
    """The counting transport, plus the addresses uvicorn asks for when a connection opens."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "sockname":
            return ("127.0.0.1", 3000)
        return default


def serve(app: Any, count: int) -> float:
    loop = new_loop()
    config = Config(app, http="httptools", loop="none", lifespan="off", access_log=False)
    config.load()
    protocol = HttpToolsProtocol(config, ServerState(), app_state={}, _loop=loop)
    transport = UvicornTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    start = time.process_time()
    loop.run_until_complete(drive(loop, protocol.data_received, transport, count))
    elapsed = time.process_time() - start
    assert transport.responses == count, transport.responses
    loop.close()
    return elapsed


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    elapsed = serve(load_app(os.environ.get("APP", "raw")), count)
    print(f"{count} requests, {elapsed / count * 1e6:.2f} us CPU each (noisy; see hotpath.sh)")


if __name__ == "__main__":
    main()
