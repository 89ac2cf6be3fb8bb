"""Shared fixtures: a factory for real server processes, stopped after each test.

Also, when the environment forbids writing bytecode (``PYTHONDONTWRITEBYTECODE``), the suite
keeps it in a cache outside the tree instead (``PYTHONPYCACHEPREFIX``): without it every server
subprocess the tests start compiles all of Peregrine again (about 0.1 s of CPU each, several
hundred times), and every xdist worker redoes pytest's assertion rewriting of every test module.
Python then reads bytecode only from that cache, also for the standard library and the installed
packages: the first run on a machine fills it once, before the workers start.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import ServerProcess, share_httpx_default_tls_context


def _bytecode_cache_outside_the_tree() -> str | None:
    """A private directory for compiled bytecode, or None when one cannot be had safely."""
    prefix = Path(tempfile.gettempdir()) / f"peregrine-tests-pycache-{os.getuid()}"
    try:
        prefix.mkdir(mode=0o700, exist_ok=True)
        info = prefix.lstat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or not prefix.is_dir() or prefix.is_symlink():
        return None  # someone else's directory: compile as asked, every time
    return str(prefix)


# What the servers and the test processes import: compiled once into a new cache, by one process,
# instead of by the four xdist workers and the first servers at the same time (under load, a
# server compiling the standard library and a framework cold may miss its start timeout).
_WARM_UP = """
import importlib
for name in ("peregrine.cli", "peregrine.server", "peregrine.asgi", "peregrine.wsgi", "pytest",
             "xdist", "httpx", "websockets", "h2.connection", "trustme", "starlette.applications",
             "fastapi", "flask", "django.core.handlers.wsgi", "kosoku", "yaml", "watchfiles"):
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def pytest_configure(config: pytest.Config) -> None:
    """Keep bytecode outside the tree when it may not be written into it (see the docstring).

    Runs in the main process before the xdist workers start: they and every subprocess of the
    tests inherit the environment. Tests that must not cache bytecode (code rewritten within
    the same second) still set ``PYTHONDONTWRITEBYTECODE`` for their own server.

    Also (in every test process) httpx's clients share one default TLS context
    (helpers.share_httpx_default_tls_context says why).
    """
    share_httpx_default_tls_context()
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = _bytecode_cache_outside_the_tree()
    if prefix is None:
        return
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False
    if not os.listdir(prefix):
        subprocess.run([sys.executable, "-c", _WARM_UP], check=False, timeout=300)


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """``start_server("tests.apps:Echo", "--max-body-size", "10")`` -> a running ServerProcess."""
    started: list[ServerProcess] = []

    def start(*args: object, **kwargs: object) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            try:
                server.stop(timeout=15)
            except Exception:
                server.kill()


# --- the garbage collector walks only what the tests create -------------------------------------


def pytest_collection_finish(session: pytest.Session) -> None:
    """Exempt what collection built (every test item, every test module) from the collector.

    Those objects live until the end of the run, and each full collection walked them all again:
    the cyclic garbage collector was about a seventh of an xdist worker's CPU (perf, 2026-12),
    and this freeze takes a third of that off (gc callbacks: 4.0 -> 2.7 CPU-s in the four
    workers). Frozen, they are still freed by reference counting; only a cycle among them would
    outlive the run, as it would anyway. Forked servers freeze all they inherit too (forked.py).
    """
    gc.collect()
    gc.freeze()


# --- which build runs: the compiled (mypyc) modules or the pure-Python ones --------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import peregrine

    _long_tests_first(config, items)
    _cluster_test_only_when_asked(config, items)
    running = "pure" if peregrine.BUILD == "pure Python" else "compiled"
    if running == "compiled":
        _ignore_mypyc_throw_warning(config)
    for item in items:
        marker = item.get_closest_marker("only_build")
        if marker is None:
            continue
        build, reason = marker.args[0], marker.kwargs.get("reason", "")
        assert build in ("compiled", "pure") and reason, "only_build(build, reason=...) both given"
        if build != running:
            item.add_marker(pytest.mark.skip(reason=f"{build} build only: {reason}"))


def _ignore_mypyc_throw_warning(config: pytest.Config) -> None:
    """Python 3.12+ deprecates ``throw(type, exc, tb)``, and mypyc's runtime still calls it: when
    a task is cancelled inside a compiled coroutine (``HttpCycle.run``, ``_send``...), its
    ``CPy_YieldFromErrorHandle`` (mypyc/lib-rt/misc_ops.c, mypy 2.4.1, the newest release on
    2026-12-08) throws into the awaited object with the three arguments, and each level warns
    (upstream: github.com/mypyc/mypyc/issues/1214, open). Our code makes no such call: the pure
    build on 3.13 runs the same tests without one under ``-W error::DeprecationWarning``, which
    is how to check again (this filter is left out there, and ``-W`` outranks it)."""
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:the \(type, exc, tb\) signature of throw\(\) is deprecated:DeprecationWarning",
    )


# --- the multi-host test runs on its own ---------------------------------------------------------


def _cluster_test_only_when_asked(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``cluster`` unless the run selects them (``pytest -m cluster``).

    The multi-host test (deploy/cluster-test.sh) is an end-to-end run of three hosts under load
    for 20-45 s of wall time and ~9 s of CPU, more than a tenth of the suite's: scripts/check runs
    it once, as its own step, instead of inside the suite on every Python it tests.
    """
    if "cluster" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="the multi-host test runs on its own: pytest -m cluster")
    for item in items:
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(skip)


# --- the longest tests start first -------------------------------------------------------------


def _long_tests_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests marked ``long`` (or ``cluster``) to the front of the xdist workers' shares.

    They take many seconds of wall time, mostly waiting: started last, one of them would be the
    whole run's tail while the other workers sit idle. xdist (``--dist load``) hands each worker
    first a block of consecutive tests (a quarter of its share), so the long tests are dealt out
    to the starts of those blocks, round robin. If xdist hands out tests another way, they are
    still near the front. The order depends only on the collection and the worker count, the same
    in every worker (xdist requires that).
    """
    long_tests = [
        item
        for item in items
        if item.get_closest_marker("long") is not None
        or item.get_closest_marker("cluster") is not None
    ]
    if not long_tests:
        return
    chosen = set(map(id, long_tests))
    ordered = [item for item in items if id(item) not in chosen]
    workerinput = getattr(config, "workerinput", None)
    workers = int(workerinput["workercount"]) if workerinput else 1
    block = max(len(items) // workers // 4, 2)
    for k in reversed(range(workers)):  # the last block first: inserting does not move the others
        at = min(k * block, len(ordered))
        ordered[at:at] = long_tests[k::workers]
    items[:] = ordered
