"""A small static site with one dynamic endpoint next to it.

    python examples/dirserver/app.py [--port N]
    peregrine run examples.dirserver.app:Handler

then open http://127.0.0.1:3000/. Everything under ``public/`` is served by a
``DirServer``; ``/api/hello`` is answered by code, to show how the two mix in
one handler. (``peregrine static examples/dirserver/public`` serves the same
files with no code at all.)
"""

from __future__ import annotations

import json
import os
import time

import peregrine
from peregrine.util import DirServer

PUBLIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "public")


class Handler:
    def __init__(self) -> None:
        # One DirServer per worker; it keeps no cache, so edits to public/ show at once.
        self.static = DirServer(PUBLIC, index="index.html", cache_control="no-cache")

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        if req.path == "/api/hello":
            resp.set_header("Content-Type", "application/json")
            resp.set_body(json.dumps({"hello": "world", "time": time.time()}))
            return
        self.static.serve(req, resp)


if __name__ == "__main__":
    from peregrine.cli import run_example

    run_example(Handler)
