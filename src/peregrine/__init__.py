"""Peregrine: a simple, reliable, high-performance HTTP/1.1 and WebSocket server."""

from ._version import __version__
from .config import Config
from .http.headers import Headers
from .http.request import QueryParams, Request
from .http.response import Response
from .server import Server, StartupError, run

__all__ = [
    "Config",
    "Headers",
    "QueryParams",
    "Request",
    "Response",
    "Server",
    "StartupError",
    "run",
    "__version__",
]
