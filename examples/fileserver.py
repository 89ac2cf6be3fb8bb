"""Serve one file, whatever path is asked for.

    python examples/fileserver.py [PATH] [--port N]
    FILESERVER_PATH=PATH peregrine run examples.fileserver:Handler

``PATH`` defaults to this script itself. The file is opened afresh on every
request, so replacing it takes effect at once; ranges, conditional requests
(304), HEAD and precompressed ``PATH.br``/``PATH.gz`` siblings all work.
"""

from __future__ import annotations

import os
import sys

from peregrine.cli import run_example
from peregrine.util import FileServer


class Handler(FileServer):
    """The file named by ``FILESERVER_PATH`` (this script when unset), for ``peregrine run``."""

    def __init__(self) -> None:
        super().__init__(os.environ.get("FILESERVER_PATH", os.path.abspath(__file__)))


def main() -> None:
    # The file is the first argument, if any; every other flag is a server option.
    argv = sys.argv[1:]
    path = argv.pop(0) if argv and not argv[0].startswith("-") else os.path.abspath(__file__)
    if not os.path.isfile(path):
        raise SystemExit(f"error: not a file: {path}")
    # A FileServer is itself a handler (its handle_request is serve): it keeps no
    # per-request state, so the one instance serves every request.
    run_example(FileServer(path), argv)


if __name__ == "__main__":
    main()
