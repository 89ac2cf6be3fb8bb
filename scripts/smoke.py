"""Serve one request with the installed Peregrine over loopback; print which build answered.

    VENV/bin/python scripts/smoke.py

Run with an installed package (a wheel in a fresh venv), not the checkout: scripts/check uses it
on the pure wheels that a failed compile leaves. It starts a one-worker server on 127.0.0.1 with
a free port in a thread, sends a GET with urllib (a real socket and a client that is not ours),
checks status, header and body, stops the server, and prints ``peregrine --version``'s build
text. Exit status 0 only when all of that worked; bounded by a 30-second timeout.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request

import peregrine
from peregrine import _build

BODY = b"smoke\n"


class Handler:
    """Answers every request with a fixed body."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(BODY)


def main() -> int:
    server = peregrine.Server(Handler, host="127.0.0.1", port=0, workers=1, log_level="warning")
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.sockets:
            if time.monotonic() > deadline or not thread.is_alive():
                print("smoke: the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
        url = server.addresses[0] + "/smoke"
        with urllib.request.urlopen(url, timeout=10) as answer:
            status, kind, body = answer.status, answer.headers["Content-Type"], answer.read()
        if (status, kind, body) != (200, "text/plain", BODY):
            print(f"smoke: GET {url} answered {status} {kind!r} {body!r}", file=sys.stderr)
            return 1
    finally:
        server.shutdown()
        thread.join(30)
    print(
        f"smoke: GET {url} answered 200 by peregrine {peregrine.__version__} ({_build.describe()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
