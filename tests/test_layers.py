"""The package's layers: the protocol packages do no I/O, and no two modules import each other."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import peregrine

PACKAGE_DIR = Path(peregrine.__file__).parent

# Runs in a fresh interpreter. The top-level package imports the server (and so asyncio), so
# it is replaced by an empty package with the same path: what is checked is what the sans-IO
# package itself imports, down to every module in it.
_IMPORT_BLOCKED = textwrap.dedent(
    """
    import importlib, pkgutil, sys, types

    BLOCKED = {"asyncio", "socket", "ssl", "selectors"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"sans-IO code imported {name}")
            return None

    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.meta_path.insert(0, Refuse())
    stub = types.ModuleType("peregrine")
    stub.__path__ = [sys.argv[1]]
    sys.modules["peregrine"] = stub
    package = importlib.import_module(sys.argv[2])
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        print(info.name)
    """
)


def test_blocking_finder_refuses_asyncio() -> None:
    """The check below can fail: the aio package does import asyncio."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_BLOCKED, str(PACKAGE_DIR), "peregrine.aio"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "sans-IO code imported asyncio" in result.stderr


@pytest.mark.parametrize("package", ["peregrine.http", "peregrine.ws"])
def test_protocol_packages_import_without_asyncio_or_sockets(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_BLOCKED, str(PACKAGE_DIR), package],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    imported = result.stdout.split()
    expected = sorted(
        f"{package}.{path.stem}"
        for path in (PACKAGE_DIR / package.split(".")[1]).glob("*.py")
        if path.stem != "__init__"
    )
    assert sorted(imported) == expected


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: module level, including inside
    ``if``/``try`` blocks, but not under ``if TYPE_CHECKING`` and not inside functions."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body)
            pending.extend(node.orelse)
            pending.extend(node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """``module -> modules of the same package it imports at import time``."""
    top = root.name
    modules = {_module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets.add(module)
            # `from . import x` and `from .pkg import mod` may name modules, not attributes
            targets.update(f"{module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name and t.split(".")[0] == top}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return path[path.index(target) :] + [target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _package_importing_a_package() -> dict[str, set[str]]:
    # a package's __init__ importing its own submodule is not a cycle by itself
    return {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": set()}


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
        (_package_importing_a_package(), None),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_import_graph_reads_relative_and_guarded_imports(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from .a import x\n")
    (root / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .sub import b\n"
        "if TYPE_CHECKING:\n    from . import c\n"
        "def f():\n    from . import c\n"
    )
    (root / "c.py").write_text("try:\n    import pkg.a\nexcept ImportError:\n    pass\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "b.py").write_text("from .. import c\n")
    assert import_graph(root) == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub", "pkg.sub.b"},
        "pkg.c": {"pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg", "pkg.c"},
    }


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert "peregrine.server" in graph  # the walk found the package's modules
    assert find_cycle(graph) is None
