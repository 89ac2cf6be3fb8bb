"""Which build runs (compiled with mypyc or pure Python), and the switches that choose it.

What handlers may do with ``req`` and ``resp`` on either build: tests/http/test_extensible.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import peregrine
from peregrine import Headers, Request, Response, _build
from peregrine._build import COMPILED_MODULES, PURE_ENV
from peregrine.http import response

PURE_WANTED = os.environ.get(PURE_ENV, "") not in ("", "0")


def run_python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_listed_module_comes_from_the_build_that_runs() -> None:
    if PURE_WANTED:
        assert peregrine.BUILD == "pure Python"
    for name in COMPILED_MODULES:
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        loaded_from_source = (module.__file__ or "").endswith(".py")
        assert loaded_from_source == (peregrine.BUILD == "pure Python"), name


def test_modules_with_a_form_per_build_see_the_build_that_runs() -> None:
    from peregrine.http import headers
    from peregrine.metrics import recorder

    compiled = peregrine.BUILD == "compiled with mypyc"
    assert _build.runs_compiled(recorder.install) is compiled
    assert (recorder._INTERPRETED, headers.PAIRWISE_COMPARE) == (not compiled, compiled)
    assert _build.runs_compiled(len) and not _build.runs_compiled(test_version_says_which_build)


def test_version_says_which_build() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peregrine", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == f"peregrine {peregrine.__version__} ({_build.describe()})"
    assert _build.describe().startswith(peregrine.BUILD)


@pytest.fixture(scope="module")
def forced_pure() -> list[str]:
    """One interpreter started with the switch on: the build, the parser module's file, then
    ``python -m peregrine --version`` as -m runs it (runpy). Shared by the two tests below,
    which read different lines of it (an interpreter start and pure import each saved)."""
    code = (
        "import runpy, sys, peregrine, peregrine.http.parser as p; "
        "print(peregrine.BUILD); print(p.__file__, flush=True); "
        "sys.argv = ['peregrine', '--version']; runpy.run_module('peregrine', run_name='__main__')"
    )
    return run_python(code, **{PURE_ENV: "1"}).splitlines()


def test_the_environment_switch_forces_pure_python(forced_pure: list[str]) -> None:
    build, parser, _ = forced_pure
    assert build == "pure Python" and parser.endswith("parser.py")


def test_version_says_the_environment_switch_forced_pure_python(forced_pure: list[str]) -> None:
    assert (
        forced_pure[2] == f"peregrine {peregrine.__version__} (pure Python, forced by {PURE_ENV}=1)"
    )


@pytest.fixture(scope="module")
def pure_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a pure install would lay it out (no extension modules, no pyproject.toml
    beside it): one copy for this module's tests, each of which writes its own fallback note
    (:func:`installed_copy`), so that Python compiles the copy's modules once, not per test."""
    site = tmp_path_factory.mktemp("site")
    package = Path(_build.__file__).parent
    ignore = shutil.ignore_patterns("__pycache__", "*.so", _build.FALLBACK_NOTE)
    shutil.copytree(package, site / "peregrine", ignore=ignore)
    return site


def installed_copy(site: Path, note: str | None) -> Path:
    """``site`` (:func:`pure_install`) with ``note`` as the fallback note setup.py writes when a
    compile fails (None: no note, as a build asked to be pure leaves)."""
    path = site / "peregrine" / _build.FALLBACK_NOTE
    if note is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(note)
    return site


@pytest.mark.parametrize(
    ("note", "described"),
    [
        # a build asked to be pure (PEREGRINE_PURE_BUILD=1, the py3-none-any wheel) writes none
        (None, "pure Python"),
        (
            "peregrine__mypyc: [Errno 2] No such file or directory: 'gcc'\n",
            "pure Python, the compiled build failed at install: "
            "peregrine__mypyc: [Errno 2] No such file or directory: 'gcc'",
        ),
        (
            "mypyc is not installed\n",
            "pure Python, the compiled build failed at install: mypyc is not installed",
        ),
        ("", "pure Python, the compiled build failed at install: reason not recorded"),
    ],
)
def test_version_and_start_up_line_say_why_an_install_is_pure(
    tmp_path: Path, pure_install: Path, note: str | None, described: str
) -> None:
    site = installed_copy(pure_install, note)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop(PURE_ENV, None)
    # one interpreter: the start-up line, then `python -m peregrine --version` as -m runs it
    # (runpy), instead of a second interpreter start and import of the pure package
    code = (
        "import runpy, sys, peregrine; from peregrine.config import Config; "
        "from peregrine.process.startup import startup_line; "
        "print(peregrine.BUILD); print(startup_line(Config(), [], 'test'), flush=True); "
        "sys.argv = ['peregrine', '--version']; runpy.run_module('peregrine', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    build, line, version = result.stdout.splitlines()
    assert version == f"peregrine {peregrine.__version__} ({described})"
    assert build == "pure Python"  # what code compares stays the short name
    assert line.endswith(f", {described})")


def test_the_switch_is_named_before_a_failed_compile(pure_install: Path) -> None:
    site = installed_copy(pure_install, "mypyc is not installed\n")
    described = run_python(
        "import peregrine._build as b; print(b.describe())", PYTHONPATH=str(site), **{PURE_ENV: "1"}
    )
    assert described == f"pure Python, forced by {PURE_ENV}=1"


@pytest.mark.parametrize("value", ["", "0"])
def test_the_switch_off_runs_the_installed_build(value: str) -> None:
    built = _build._extension_path("peregrine.http.request") is not None
    assert run_python("import peregrine; print(peregrine.BUILD)", **{PURE_ENV: value}) == (
        "compiled with mypyc" if built else "pure Python"
    )


@pytest.mark.only_build(
    "compiled", reason="mypyc's native classes exist only where the C extensions were built"
)
def test_the_compiled_classes_are_what_docs_api_says() -> None:
    # mypyc marks its native classes with __mypyc_attrs__; the Response handlers get is a class
    # written in Python on top of the native one, so that they may set their own attributes
    assert hasattr(Request, "__mypyc_attrs__") and hasattr(Headers, "__mypyc_attrs__")
    assert hasattr(response.Response, "__mypyc_attrs__")
    assert Response.__bases__ == (response.Response,) and "__dict__" in dir(Response)
    assert type(Response.set_header).__name__ != "function"  # compiled, not interpreted


@pytest.mark.only_build(
    "compiled", reason="only a compiled build has extension modules that can be older than .py"
)
def test_an_edited_source_runs_pure_with_a_warning(tmp_path: Path) -> None:
    # a copy of the checkout (pyproject.toml beside src/) whose parser.py is newer than its .so
    package = Path(_build.__file__).parent
    copy = tmp_path / "src" / "peregrine"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for shared in package.parent.glob("peregrine__mypyc*"):  # mypyc's shared library
        shutil.copy2(shared, tmp_path / "src")
    (tmp_path / "pyproject.toml").write_text("")
    later = time.time() + 60
    os.utime(copy / "http" / "parser.py", (later, later))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import peregrine, peregrine._build as b; print(peregrine.BUILD); print(b.describe())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "src")},
        cwd=tmp_path,
    )
    build, described = result.stdout.splitlines()
    assert build == "pure Python"
    assert "compiled peregrine.http.parser is older than its source" in result.stderr
    assert described == "pure Python, the compiled peregrine.http.parser is older than its source"


def test_the_start_up_line_says_which_build() -> None:
    from .helpers import ServerProcess

    with ServerProcess("tests.apps:Echo") as server:
        pass
    assert f", {_build.describe()})" in server.output
