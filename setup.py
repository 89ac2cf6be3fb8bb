"""Build Peregrine: the request-path modules compiled with mypyc where possible, else pure Python.

The modules compiled are listed once, in ``src/peregrine/_build.py`` (``COMPILED_MODULES``).
- ``PEREGRINE_PURE_BUILD=1`` builds the pure-Python package (the ``py3-none-any`` wheel).
- Otherwise mypyc translates those modules to C and the C compiler builds them; if either step
  fails (no mypyc, no compiler, no Python headers), the build says so in one line and installs the
  pure-Python package, which behaves the same, only slower. pip shows that line only with ``-v``,
  so the build also writes the reason into the package (``FALLBACK_NOTE`` in ``_build.py``), and
  ``peregrine --version`` and the start-up line report it.
"""

from __future__ import annotations

import ast
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_SOURCE = os.path.join(HERE, "src", "peregrine")
FALLBACK = "peregrine: building the compiled (mypyc) modules failed ({}); installing pure Python"

#: why this build is pure although it was meant to compile (None: it compiles, or was asked not to)
fallback_reason: str | None = None


def build_constant(name: str) -> object:
    """A constant of src/peregrine/_build.py, read without importing the package."""
    with open(os.path.join(PACKAGE_SOURCE, "_build.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{name} not found in src/peregrine/_build.py")


def compiled_modules() -> list[str]:
    """COMPILED_MODULES: the modules mypyc compiles."""
    return list(build_constant("COMPILED_MODULES"))  # type: ignore[call-overload]


def say_fallback(reason: object) -> None:
    """One line on stderr saying the build is pure Python and why; remembered for the note."""
    global fallback_reason
    text = str(reason).strip()
    fallback_reason = " ".join(text.splitlines()[-1].split()) if text else repr(reason)
    print(FALLBACK.format(fallback_reason), file=sys.stderr)


def write_note(package_dir: str) -> None:
    """Record the fallback (or its absence) in ``package_dir``: the file the package reads.

    Always rewritten or removed, so that a note left by an earlier build in the same directory
    (``build/lib``, or the sources of an editable install) never outlives a build that compiled.
    """
    path = os.path.join(package_dir, str(build_constant("FALLBACK_NOTE")))
    if fallback_reason is None:
        if os.path.exists(path):
            os.remove(path)
        return
    os.makedirs(package_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(fallback_reason + "\n")


class NotingBuildPy(build_py):
    """Copies the package as usual, plus the fallback note when the build is already known pure."""

    def run(self) -> None:
        super().run()
        # editable installs import the sources in place: the note goes next to them
        write_note(
            PACKAGE_SOURCE if self.editable_mode else os.path.join(self.build_lib, "peregrine")
        )


class OptionalBuildExt(build_ext):
    """Compiles the C extensions; on any failure removes them and goes on with pure Python."""

    def run(self) -> None:
        inplace = self.inplace  # editable install (build_ext.run resets it, not on an exception)
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: the pure modules do the same work
            say_fallback(exc)
            self.remove_built(inplace)
            # the wheel holds no compiled code now: tag it py3-none-any, not for this interpreter
            self.distribution.ext_modules = []
            wheel = self.distribution.command_obj.get("bdist_wheel")
            if wheel is not None:
                wheel.root_is_pure = True  # type: ignore[attr-defined]
            write_note(PACKAGE_SOURCE if inplace else os.path.join(self.build_lib, "peregrine"))
            self.extensions = []

    def remove_built(self, inplace: bool) -> None:
        """Delete the extension modules built before the failure: half a compiled build (or an
        earlier one, left in the sources of an editable install) must not be imported."""
        for ext in self.extensions:
            relative = self.get_ext_filename(ext.name)
            places = [os.path.join(self.build_lib, relative)]
            if inplace:
                places.append(os.path.join(HERE, "src", relative))
            for path in places:
                if os.path.exists(path):
                    os.remove(path)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            raise RuntimeError(f"{ext.name}: {exc}") from exc


#: setup.py commands that write only metadata or the sdist (PEP 517's get_requires_* hooks run
#: egg_info): mypyc's type check and C generation would be wasted on them, and the sdist never
#: holds the generated C
METADATA_ONLY = frozenset({"egg_info", "dist_info", "sdist"})


def only_metadata() -> bool:
    """True when every command on the command line is in METADATA_ONLY (an option's value makes
    it False: the extensions are then generated, as for any other command)."""
    commands = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    return bool(commands) and all(command in METADATA_ONLY for command in commands)


def extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("PEREGRINE_PURE_BUILD", "") not in ("", "0") or only_metadata():
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


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "build_py": NotingBuildPy},
)
