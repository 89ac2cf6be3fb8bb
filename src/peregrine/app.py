"""What the user serves, and which interface it speaks: one decision, made once at start-up.

``peregrine run MODULE:ATTR`` and ``Server(app)`` accept three kinds of application:

- **native**: a class with ``handle_request(req, resp)`` (one instance per worker), such an
  instance, or a plain function ``handle_request(req, resp)``;
- **ASGI 3**: ``async def app(scope, receive, send)``, or an object whose ``__call__`` is async
  (FastAPI, Starlette, Django's ``ASGIHandler``, Litestar, Quart);
- **WSGI**: ``app(environ, start_response)`` (Flask, Django's ``WSGIHandler``, Pyramid, Bottle).

:func:`app_factory` turns any of them into what a worker calls once to get its handler: the
native handler itself, or an adapter object whose ``serve_exchange`` the connection calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .config import Config

#: the interfaces ``--interface`` accepts
INTERFACES = ("auto", "native", "asgi", "wsgi")


class AppError(ValueError):
    """The application cannot be served: what was found and what was expected, in one line."""


def handler_factory(handler: Any) -> Callable[[], Any]:
    """Normalise a native handler: a class (instantiated per worker), an instance or a function."""
    if isinstance(handler, type):
        if not hasattr(handler, "handle_request"):
            raise AppError(
                f"{_describe(handler)} has no handle_request(req, resp) method, "
                "and is no ASGI or WSGI application either"
            )
        return handler
    if hasattr(handler, "handle_request"):
        return lambda: handler
    if callable(handler):
        # a plain function handle_request(req, resp)
        return lambda: _FunctionHandler(handler)
    raise AppError(
        f"{_describe(handler)} is not an application: expected a class or object with "
        "handle_request(req, resp), a function handle_request(req, resp), an ASGI 3 app "
        "(async def app(scope, receive, send)) or a WSGI app (app(environ, start_response))"
    )


class _FunctionHandler:
    def __init__(self, function: Callable[..., Any]) -> None:
        self.handle_request = function


def detect_interface(app: Any) -> str:
    """``"native"``, ``"asgi"`` or ``"wsgi"``: what ``app`` looks like (see the module docstring).

    A plain function of two parameters is a native handler unless its parameters are named as
    PEP 3333 names them (``environ``, ``start_response``); ``--interface wsgi`` settles any doubt.
    """
    if hasattr(app, "handle_request"):
        return "native"
    if isinstance(app, type):
        return "native"  # handler_factory says what is missing
    if not callable(app):
        return "native"
    if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
        getattr(app, "__call__", None)  # noqa: B004 - the method itself, not callable()
    ):
        return "asgi"
    params = _positional_parameters(app)
    if params is None:
        return "native"
    if len(params) == 3:
        return "asgi"  # e.g. a wrapper that returns a coroutine
    if len(params) == 2:
        if "start_response" in params or "environ" in params:
            return "wsgi"
        if not inspect.isfunction(app) and not inspect.ismethod(app):
            return "wsgi"  # a callable object (Flask, Django) taking (environ, start_response)
    return "native"


def _positional_parameters(app: Any) -> list[str] | None:
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def resolve_app(app: Any, config: Config) -> tuple[Any, str]:
    """The application to serve (``--factory`` calls ``app`` first) and its interface."""
    if config.factory:
        if not callable(app):
            raise AppError(f"--factory: {_describe(app)} is not callable")
        app = app()
    interface = config.interface
    found = detect_interface(app)
    if interface == "auto":
        interface = found
    elif interface in ("asgi", "wsgi") and not callable(app):
        raise AppError(f"--interface {interface}: {_describe(app)} is not callable")
    elif interface == "native" and found != "native":
        raise AppError(
            f"--interface native: {_describe(app)} looks like an {found.upper()} application, "
            "not a handler with handle_request(req, resp)"
        )
    return app, interface


def app_factory(app: Any, config: Config) -> Callable[[], Any]:
    """What a worker calls once to get its handler (see the module docstring).

    Raises :class:`AppError` with one line when ``app`` is not something Peregrine can serve.
    """
    app, interface = resolve_app(app, config)
    if interface == "asgi":
        from .asgi import AsgiHandler

        return lambda: AsgiHandler(app, config)
    if interface == "wsgi":
        from .wsgi import WsgiHandler

        return lambda: WsgiHandler(app, config)
    return handler_factory(app)


def _describe(app: Any) -> str:
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    module = getattr(app, "__module__", None) or type(app).__module__
    kind = "class" if isinstance(app, type) else "function" if inspect.isfunction(app) else "object"
    return f"{kind} {module}.{name}" if module else f"{kind} {name}"
