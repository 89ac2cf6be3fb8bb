"""Build Peregrine: the request-path modules compiled with mypyc where possible, else pure Python.

The modules compiled are listed once, in ``src/peregrine/_build.py`` (``COMPILED_MODULES``).
- ``PEREGRINE_PURE_BUILD=1`` builds the pure-Python package (the ``py3-none-any`` wheel).
- Otherwise mypyc translates those modules to C and the C compiler builds them; if either step
  fails (no mypyc, no compiler, no Python headers), the build says so in one line and installs the
  pure-Python package, which behaves the same, only slower.
"""

from __future__ import annotations

import ast
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
FALLBACK = "peregrine: building the compiled (mypyc) modules failed ({}); installing pure Python"


def compiled_modules() -> list[str]:
    """COMPILED_MODULES from src/peregrine/_build.py, read without importing the package."""
    with open(os.path.join(HERE, "src", "peregrine", "_build.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "COMPILED_MODULES":
            return list(ast.literal_eval(node.value))
    raise RuntimeError("COMPILED_MODULES not found in src/peregrine/_build.py")


def say_fallback(reason: object) -> None:
    print(
        FALLBACK.format(str(reason).strip().splitlines()[-1] if str(reason).strip() else reason),
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """Compiles the C extensions; on any failure removes them and goes on with pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: the pure modules do the same work
            say_fallback(exc)
            self.extensions = []

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            raise RuntimeError(f"{ext.name}: {exc}") from exc


def extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("PEREGRINE_PURE_BUILD", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        say_fallback("mypyc is not installed")
        return []
    paths = [os.path.join("src", *m.split(".")) + ".py" for m in compiled_modules()]
    old = os.getcwd()
    try:
        os.chdir(os.path.join(HERE))
        # only the listed modules must type-check: the interpreted ones they import are read
        # for their types, not judged
        # httptools is not installed in an isolated build environment: its objects are typed Any
        # (mypyc treats them as plain Python objects either way)
        return mypycify(
            [
                # not pyproject's [tool.mypy]: it says COMPILING is always false
                "--config-file=",
                "--follow-imports=silent",
                "--ignore-missing-imports",
                "--always-true=COMPILING",  # peregrine._build.COMPILING
                *paths,
            ],
            opt_level="3",
            group_name="peregrine",
        )
    except SystemExit:  # mypyc printed the type errors above
        say_fallback("mypyc reported type errors")
        return []
    except Exception as exc:
        say_fallback(exc)
        return []
    finally:
        os.chdir(old)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
