"""The application each host of ``cluster-test.sh`` serves: ``host=NAME pid=N``.

Small on purpose: the test is about what happens around requests (reloads, stops, kills), and a
body that names the host and the worker lets a failure be traced to where it happened.
"""

from __future__ import annotations

import os
import socket

import peregrine

_HOST = os.environ.get("CLUSTER_HOST_NAME", socket.gethostname())


class Handler:
    """Answers every request with the host's name and the worker's pid."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(f"host={_HOST} pid={os.getpid()}\n")
