"""Loading the application afresh for a rolling restart (SIGHUP).

The supervisor never imports new code itself: it notes, once, *where* the handler lives (a
:class:`ReloadTarget`: a module and a path of attributes in it), and each worker it starts after
a SIGHUP forgets the application's modules and imports that place again. What was given to
:class:`peregrine.Server` decides how the place is found:

* a class or a function: its ``__module__`` and ``__qualname__``;
* an instance (``peregrine run app:handler``): the module-level name it is bound to, looked up
  in its class's module first, then in the other application modules and the script.

A handler found nowhere (made inside a function, a lambda) keeps its old code, with a warning.
"""

from __future__ import annotations

import importlib
import logging
import os
import runpy
import site
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("peregrine")

# run name of a script executed again for its new code: its `if __name__ == "__main__"` block
# (which starts the server) stays quiet
_RERUN_NAME = "__peregrine_reload__"


@dataclass(frozen=True)
class ReloadTarget:
    """Where the handler lives: ``module`` (``"__main__"`` for a script) and attribute ``path``."""

    module: str
    path: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.module}:{'.'.join(self.path)}"


def find_reload_target(handler: Any) -> ReloadTarget | None:
    """Where ``handler`` can be imported from again, or None (see the module docstring)."""
    module_name = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None) if callable(handler) else None
    if module_name and qualname and "<" not in qualname:
        target = ReloadTarget(module_name, tuple(qualname.split(".")))
        if _resolve_loaded(target) is handler:
            return target
    for name, module in _candidate_modules(module_name):
        for attr, value in list(vars(module).items()):
            if value is handler:
                return ReloadTarget(name, (attr,))
    return None


def _resolve_loaded(target: ReloadTarget) -> Any:
    value: Any = sys.modules.get(target.module)
    for part in target.path:
        value = getattr(value, part, None)
    return value


def _candidate_modules(first: str | None) -> Iterator[tuple[str, Any]]:
    """The handler's own module, then every application module, then the script."""
    roots = _library_roots()
    names = [first] if first else []
    names += sorted(
        name
        for name, module in list(sys.modules.items())
        if name != first and _is_application_module(name, module, roots)
    )
    names.append("__main__")
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            yield name, module


def load_fresh(target: ReloadTarget) -> Any:
    """Import ``target`` again from the files on disk (after forgetting the application's modules)."""
    purge_application_modules()
    importlib.invalidate_caches()
    if target.module == "__main__":
        path = getattr(sys.modules["__main__"], "__file__", None)
        if path is None:
            raise RuntimeError(
                "the handler lives in an interactive __main__: it cannot be reloaded"
            )
        value: Any = runpy.run_path(path, run_name=_RERUN_NAME)[target.path[0]]
        parts = target.path[1:]
    else:
        value = importlib.import_module(target.module)
        parts = target.path
    for part in parts:
        value = getattr(value, part)
    return value


def purge_application_modules() -> list[str]:
    """Forget the application's modules so that importing them again reads the files anew.

    The application is every module loaded from outside the standard library, the
    site-packages directories and Peregrine itself; extension modules stay (they cannot be
    loaded twice). Returns the names removed.
    """
    roots = _library_roots()
    removed = []
    for name, module in list(sys.modules.items()):
        if _is_application_module(name, module, roots):
            del sys.modules[name]
            removed.append(name)
    return removed


def _library_roots() -> tuple[str, ...]:
    """Directories whose modules are not the application's (ending with a separator)."""
    import peregrine

    keep = {os.path.dirname(os.path.realpath(peregrine.__file__))}
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            keep.add(os.path.realpath(paths[key]))
    try:
        keep.update(os.path.realpath(p) for p in site.getsitepackages())
        keep.add(os.path.realpath(site.getusersitepackages()))
    except AttributeError:
        pass  # old virtualenv's site module
    return tuple(root.rstrip(os.sep) + os.sep for root in keep)


def _is_application_module(name: str, module: Any, roots: tuple[str, ...]) -> bool:
    path = getattr(module, "__file__", None)
    if not path or name == "__main__" or not path.endswith((".py", ".pyc")):
        return False
    return not os.path.realpath(path).startswith(roots)
