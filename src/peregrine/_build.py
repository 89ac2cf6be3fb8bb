"""Which build of Peregrine is running: compiled (mypyc) or pure Python, and the switch between.

``COMPILED_MODULES`` is the one list of modules the compiled build compiles (``setup.py`` reads it
from this file without importing the package). Everything else is always interpreted.

At import, before any of those modules loads, :func:`choose` decides:
- ``PEREGRINE_PURE_PYTHON=1`` in the environment forces the pure modules: a finder put first on
  ``sys.meta_path`` loads each listed module from its ``.py`` file, so the ``.so`` files built next
  to them are never imported;
- in a source checkout (``pip install -e .``) whose ``.py`` is newer than its ``.so``, the compiled
  code would be stale: the pure modules run instead, with one warning saying to rebuild.

:func:`describe` says which build runs and, when it is pure Python, why: forced by the switch,
stale compiled modules, or a compiled build that failed at install (``setup.py`` then writes the
reason into ``FALLBACK_NOTE`` next to this module; a build asked to be pure writes none).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # what mypyc reads: class options for the compiled build (see mypyc_attr below)
    from mypy_extensions import mypyc_attr as mypyc_attr
else:

    def mypyc_attr(*flags: str, **options: Any) -> Any:
        """At run time a no-op: mypyc reads the options when compiling (``mypy_extensions``
        is a build-time dependency only)."""
        return lambda cls: cls


#: False, except to the type checker inside the compiled build: setup.py runs mypyc with
#: ``--always-true=COMPILING``, for the few types that must be wider there (see aio/exchange.py)
COMPILING = False

#: the request-path modules the compiled build compiles with mypyc (one line per module)
COMPILED_MODULES = (
    "peregrine.http.chunklines",
    "peregrine.http.framing",
    "peregrine.http.headers",
    "peregrine.http.parser",
    "peregrine.http.request",
    "peregrine.http.response",
    "peregrine.http.status",
    "peregrine.http.target",
    "peregrine.metrics.recorder",
    "peregrine.aio.body",
    "peregrine.aio.connection",
    "peregrine.aio.exchange",
    "peregrine.aio.files",
    "peregrine.aio.h2timing",
    "peregrine.aio.parking",
    "peregrine.aio.send_watchdog",
    "peregrine.aio.state",
    "peregrine.aio.timers",
    "peregrine.asgi.http",
    "peregrine.asgi.scope",
    "peregrine.ws.frames",
    "peregrine.wsgi.environ",
    "peregrine.wsgi.failure",
    "peregrine.wsgi.handler",
    "peregrine.wsgi.inline",
    "peregrine.wsgi.input",
    "peregrine.wsgi.output",
    "peregrine.wsgi.pool",
    "peregrine.wsgi.start",
    "peregrine.wsgi.threaded",
)

#: the environment variable that forces the pure-Python modules
PURE_ENV = "PEREGRINE_PURE_PYTHON"

#: the file, next to this module, where setup.py records why a build that was meant to compile
#: installed pure Python (one line; pip hides the build's own output unless run with -v)
FALLBACK_NOTE = "_build_fallback.txt"

#: why choose() put the pure modules first (None: it did not)
_why_pure: str | None = None

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _source_path(module: str) -> str:
    return os.path.join(_PACKAGE_DIR, *module.split(".")[1:]) + ".py"


def _extension_path(module: str) -> str | None:
    base = _source_path(module)[:-3]
    for suffix in _EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


class _SourceFirst:
    """A meta-path finder that loads the listed modules from their ``.py`` files."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, _source_path(fullname))


def _stale_in_checkout() -> str | None:
    """The first compiled module older than its source, in an editable source checkout."""
    if not os.path.exists(os.path.join(_PACKAGE_DIR, os.pardir, os.pardir, "pyproject.toml")):
        return None  # an installed wheel: its .py files are not edited in place
    for module in COMPILED_MODULES:
        extension = _extension_path(module)
        if (
            extension is not None
            and os.stat(_source_path(module)).st_mtime > os.stat(extension).st_mtime
        ):
            return module
    return None


def choose() -> None:
    """Install the pure-module finder when asked to, or when the compiled modules are stale."""
    global _why_pure
    switch = os.environ.get(PURE_ENV, "")
    if switch not in ("", "0"):
        sys.meta_path.insert(0, _SourceFirst(COMPILED_MODULES))
        _why_pure = f"forced by {PURE_ENV}={switch}"
        return
    stale = _stale_in_checkout()
    if stale is not None:
        _why_pure = f"the compiled {stale} is older than its source"
        sys.stderr.write(
            f"peregrine: the compiled {stale} is older than its source; running pure Python "
            "(rebuild with: pip install -e .)\n"
        )
        sys.meta_path.insert(0, _SourceFirst(COMPILED_MODULES))


def name() -> str:
    """``"compiled with mypyc"`` when the compiled modules are the ones loaded, else ``"pure Python"``."""
    request = sys.modules.get("peregrine.http.request")
    if request is None:
        import peregrine.http.request as request
    origin = getattr(request, "__file__", "") or ""
    return "compiled with mypyc" if origin.endswith(_EXTENSION_SUFFIXES) else "pure Python"


def runs_compiled(function: object) -> bool:
    """Whether ``function``, a module-level function of the caller's, runs compiled: mypyc makes
    its functions builtins, so a Python function means the module was loaded from its ``.py``
    (the pure build, forced or stale, or a module never compiled). For the few places whose
    cheapest form differs between the two builds; decided once, at the module's import."""
    return not isinstance(function, FunctionType)


def fallback_reason() -> str | None:
    """Why the compiled build failed when this package was installed, or None if it did not."""
    try:
        with open(os.path.join(_PACKAGE_DIR, FALLBACK_NOTE), encoding="utf-8") as f:
            return f.read().strip() or "reason not recorded"
    except FileNotFoundError:
        return None


def describe() -> str:
    """:func:`name`, and for pure Python why it runs, e.g. ``pure Python, forced by
    PEREGRINE_PURE_PYTHON=1`` or ``pure Python, the compiled build failed at install: ...``.

    Plain ``pure Python`` is a build that was asked to be pure (the ``py3-none-any`` wheel).
    """
    build = name()
    if build != "pure Python":
        return build
    if _why_pure is not None:
        return f"{build}, {_why_pure}"
    reason = fallback_reason()
    if reason is not None:
        return f"{build}, the compiled build failed at install: {reason}"
    return build
