"""The WSGI adapter's hot path with ``--threads 0``, in-process, without sockets.

Like ``hotpath.py`` (same counting transport, same request), but the connection serves the
raw WSGI app of ``apps/wsgi_app.py`` through :class:`peregrine.wsgi.WsgiHandler` on the loop
thread, so what is measured is the engine plus the adapter (environ, start_response, response).
``SCRIPT=bench/hotpath_wsgi.py bench/hotpath.sh`` counts its instructions per request.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hotpath import count_metrics_if_asked, feed_requests, new_loop
from peregrine.aio.state import ServerState
from peregrine.config import Config
from peregrine.wsgi import WsgiHandler

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
from wsgi_app import app  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"


def main() -> None:
    count = int(os.environ.get("N", "100000"))
    loop = new_loop()
    config = Config(threads=0, workers=1)
    state = count_metrics_if_asked(ServerState(config, WsgiHandler(app, config), loop))
    feed_requests(state, REQUEST, count)


if __name__ == "__main__":
    main()
