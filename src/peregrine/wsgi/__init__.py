"""WSGI (PEP 3333): Flask, Django, Pyramid, Bottle... on Peregrine's engine.

``peregrine run module:app`` detects a WSGI application (``--interface wsgi`` forces it). The
application runs in a pool of ``--threads`` threads per worker (default 10), or on the event
loop with ``--threads 0``. See ``docs/wsgi.md``.

Modules, one job each: ``environ`` (the environ of a request), ``input`` (``wsgi.input``),
``start`` (``start_response``), ``files`` (``wsgi.file_wrapper``), ``errors`` (``wsgi.errors``),
``output`` (a body from a thread to the loop, bounded), ``pool`` (the thread pool and the
batched hand-back), ``threaded`` and ``inline`` (one request in each mode), ``handler``.
"""

from __future__ import annotations

from .files import FileWrapper
from .handler import WsgiHandler

__all__ = ["FileWrapper", "WsgiHandler"]
