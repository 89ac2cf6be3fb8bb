"""Peregrine: a simple, reliable, high-performance HTTP/1.1 and WebSocket server."""

from . import _build
from ._version import __version__

_build.choose()  # compiled or pure modules: decided before any of them loads

from .config import Config  # noqa: E402
from .http.handler_response import Response  # noqa: E402
from .http.headers import Headers  # noqa: E402
from .http.request import QueryParams, Request  # noqa: E402
from .server import Server, StartupError, run  # noqa: E402

#: ``"compiled with mypyc"`` or ``"pure Python"``: which build of the request path is running
BUILD = _build.name()

__all__ = [
    "Config",
    "Headers",
    "QueryParams",
    "Request",
    "Response",
    "Server",
    "StartupError",
    "run",
    "BUILD",
    "__version__",
]
