"""Peregrine: a simple, reliable, high-performance HTTP/1.1 and WebSocket server."""

__version__ = "0.1.0"

from .config import Config  # noqa: E402
from .http.headers import Headers  # noqa: E402
from .http.request import QueryParams, Request  # noqa: E402
from .http.response import Response  # noqa: E402
from .server import Server, StartupError, run  # noqa: E402

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
