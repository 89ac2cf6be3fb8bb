"""The handler the static-file end-to-end tests serve: ``tests.util.static_app:Handler``.

The directory comes from ``PEREGRINE_TEST_STATIC_ROOT``. Routes:

- ``/one/...``: a FileServer for ``hello.txt`` (any path under it);
- ``/async/...``: the tree served from an ``async def`` handler;
- ``/async-one/...``: a FileServer for ``big.bin``, from an ``async def`` handler;
- ``/hidden-ok/...``: the tree with dotfiles shown;
- ``/nogz/...``: the tree without precompressed variants;
- anything else: the tree at ``/``.
"""

from __future__ import annotations

import asyncio
import os

import peregrine
from peregrine.util import DirServer, FileServer


class Handler:
    def __init__(self) -> None:
        root = os.environ["PEREGRINE_TEST_STATIC_ROOT"]
        self.files = DirServer(root)
        self.one = FileServer(os.path.join(root, "hello.txt"))
        self.async_files = DirServer(root, prefix="/async/")
        self.async_one = FileServer(os.path.join(root, "big.bin"))
        self.hidden = DirServer(root, prefix="/hidden-ok/", show_hidden=True)
        self.nogz = DirServer(root, prefix="/nogz/", precompressed=False)

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response):  # type: ignore[no-untyped-def]
        path = req.raw_path
        if path.startswith(b"/one/"):
            return self.one.serve(req, resp)
        if path.startswith(b"/async/"):
            return self._serve_async(self.async_files, req, resp)
        if path.startswith(b"/async-one/"):
            return self._serve_async(self.async_one, req, resp)
        if path.startswith(b"/hidden-ok/"):
            return self.hidden.serve(req, resp)
        if path.startswith(b"/nogz/"):
            return self.nogz.serve(req, resp)
        return self.files.serve(req, resp)

    async def _serve_async(self, server, req: peregrine.Request, resp: peregrine.Response) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)  # really suspend, as a real async handler would
        server.serve(req, resp)
