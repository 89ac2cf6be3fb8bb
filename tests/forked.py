"""``python -m peregrine ARGS`` as a fork of the test process, without a new interpreter.

A server started by the tests is a real process: its own pid and process group, real sockets,
signals, forked workers, output on a pipe. Starting it as ``python -m peregrine`` costs an
interpreter start and the import of Peregrine (and of the application's frameworks) every time,
about 0.2 s of CPU, several hundred times per run: most of the suite's CPU. The test process
has imported all of that already, so :func:`spawn` forks it instead (a "zygote", like
multiprocessing's forkserver) and runs ``peregrine.cli.main(argv)`` in the child, after putting
back what a fresh ``python -m peregrine`` would have: the working directory, the environment,
``sys.argv`` and ``sys.path[0]``, stdin from /dev/null, stdout and stderr on the pipe, default
signal handlers, no logging handlers, the default warning filters, no other descriptors open.
The command line's parser is built once here and copied into each child by the fork.
A server started from a script (``python SCRIPT ARGS``, e.g. the examples) is forked the same way,
the script run as ``__main__``.
Before the first server of an application module, the test process imports the installed
libraries that module imports (:func:`_import_the_libraries_of_the_app`), so that the servers
of that module keep them too.

A separate small zygote (a fresh interpreter that imported only Peregrine and the frameworks,
forking the servers on request and reporting their exit status) was built and measured in
2026-12: 0.10-0.12 s of CPU per server started and stopped, against 0.10 s for a fork of a test
process with every test module imported. The copy-on-write cost of the bigger parent is not
where a server's CPU goes, so the test process forks itself.

What a fork cannot give back is a fresh import: the interpreter's command line options, and
variables read when a module is imported. So :func:`needs_exec` keeps the real
``python -m peregrine`` for environments that change those (``PYTHON*``, the build choice), and
``PEREGRINE_TEST_EXEC=1`` turns the forking off for a whole run (e.g. to check that nothing
depends on it). The tests of the command itself (tests/test_cli.py) start one real
``python -m peregrine`` each way.
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib
import importlib.util
import io
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import IO

#: environment variables that act when the interpreter starts or a module is imported: a server
#: whose environment sets one of them is started with a real ``python -m peregrine``
_IMPORT_TIME_PREFIXES = ("PYTHON", "PEREGRINE_PURE", "COV_CORE", "COVERAGE")

#: objects of the test process the child must not free (their descriptors are closed in the
#: child and the numbers reused by the server: freeing one would close the server's socket)
_kept: list[object] = []


def _startup_path() -> list[str]:
    """``sys.path`` of a fresh interpreter here, without its first entry (the script's directory)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print(repr(sys.path[1:]))"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    return list(ast.literal_eval(out))


_STARTUP_PATH: list[str] = []
_LIBRARY_DIRS: tuple[str, ...] = ()
#: src/ of an editable install: Peregrine is imported here already, whatever an app imports of it
_SOURCE_DIR = "//"


#: what every server imports when it starts, whatever its application: imported here once, before
#: the first fork, and kept by every child. The whole suite's collection imports them anyway; a
#: run of a few files may not, and then uvloop, imported afresh in each child, was a third of a
#: forked server's CPU (~12 of ~35 ms per server started and stopped, 2026-12)
_EVERY_SERVERS_LIBRARIES = ("uvloop", "concurrent.futures.thread", "peregrine.server")


def _prepare() -> None:
    """Once per test process: what a fresh interpreter's path is, which modules are libraries."""
    global _LIBRARY_DIRS, _SOURCE_DIR
    if _STARTUP_PATH:
        return
    _STARTUP_PATH.extend(_startup_path())
    import peregrine

    for name in _EVERY_SERVERS_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:  # uvloop is optional: the servers do without it too
            pass

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    source_dir = os.path.dirname(os.path.dirname(peregrine.__file__))
    dirs.add(source_dir)  # src/ (an editable install)
    _LIBRARY_DIRS = tuple(os.path.realpath(d) + os.sep for d in dirs)
    _SOURCE_DIR = os.path.realpath(source_dir) + os.sep


def forking_enabled() -> bool:
    """False when ``PEREGRINE_TEST_EXEC=1`` asks for real ``python -m peregrine`` everywhere.

    Also False while coverage.py measures this process: its fork hook in the child once hung
    before the child ran a line of ours (a lock another thread held, seen in a ``--cov`` run),
    and a measured run is for its numbers, which the real process model gives as well.
    """
    if os.environ.get("PEREGRINE_TEST_EXEC", "") not in ("", "0") or not hasattr(os, "fork"):
        return False
    coverage = sys.modules.get("coverage")
    return coverage is None or coverage.Coverage.current() is None


def needs_exec(env: Mapping[str, str] | None) -> bool:
    """True when ``env`` (the variables a test adds) changes what a fresh interpreter would do."""
    if not forking_enabled():
        return True
    return any(name.startswith(_IMPORT_TIME_PREFIXES) for name in env or ())


class ForkedProcess:
    """The part of :class:`subprocess.Popen` the tests use, for a forked child."""

    def __init__(self, pid: int, stdout: IO[bytes] | None, args: list[str]) -> None:
        self.pid = pid
        self.stdout = stdout
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status if the child has ended (negative: killed by that signal), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has ended, status unknown
                self.returncode = -1
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child (raising :class:`subprocess.TimeoutExpired` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the child has been reaped already (as Popen does)."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def spawn(
    args: list[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    stderr_to_stdout: bool = True,
    script: str | None = None,
) -> tuple[ForkedProcess, int | None]:
    """Fork a child that runs ``python -m peregrine *args``; return it and, if asked, its stderr.

    With ``script`` (a path, relative to ``cwd`` or absolute), the child runs ``python SCRIPT
    *args`` instead: the script as ``__main__``, its directory first in ``sys.path``. A script
    server started as a new interpreter cost 0.25-0.6 s of CPU, a forked one as little as a
    forked ``python -m peregrine`` (tests/test_examples.py, 2026-12).

    The child's stdout (and stderr, when ``stderr_to_stdout``) is the returned process's
    ``stdout``; otherwise stderr is a second pipe whose read end is returned. The child runs in
    its own session, as ``start_new_session=True`` would.
    """
    _prepare()
    if script is None:
        _import_the_libraries_of_the_app(args, cwd)
    else:
        _import_the_libraries_of(os.path.join(cwd, script))
    # decided here, where the answers are remembered from one server to the next: in the child
    # every module's path would be resolved again (~4,500 lstat calls, most of a server's CPU)
    fresh = _modules_to_import_afresh()
    parser = _command_line_parser()
    out_r, out_w = os.pipe()
    err_r, err_w = (None, None) if stderr_to_stdout else os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # 3.12+ warns that a fork of a process with threads may deadlock in a lock another
        # thread held: the child takes none of them (new standard streams, logging re-made
        # by the logging module's own fork hook, the import lock re-made by the interpreter)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            _become_a_fresh_interpreter(
                out_w, err_w if err_w is not None else out_w, cwd, env, fresh
            )
            if script is None:
                code = _run_main(args, parser)
            else:
                code = _run_script(script, args)
        except BaseException:  # a bug here: show it where the test reads the output
            try:
                import traceback

                traceback.print_exc()
            except BaseException:
                pass
        finally:
            os._exit(code)
    os.close(out_w)
    if err_w is not None:
        os.close(err_w)
    stdout = open(out_r, "rb")  # noqa: SIM115 - the caller closes it
    argv = [sys.executable, *(["-m", "peregrine"] if script is None else [script]), *args]
    return ForkedProcess(pid, stdout, argv), err_r


#: the application modules whose libraries this process has imported already
_preloaded_apps: set[str] = set()


def _import_the_libraries_of_the_app(args: list[str], cwd: str) -> None:
    """Import here the libraries the server's application module imports at its top level.

    The child keeps the libraries this process has imported and imports the application module
    itself afresh; a library it lacks it imports again in every server (FastAPI, Django, Flask:
    0.2-0.7 s of CPU each time). Imported once here, before the first fork, every later server
    of this test process gets it for free. Only modules of the installed libraries are imported,
    never the application's module or other modules of the tests: a library module does no more
    at import than a fresh interpreter's import of it would, while the application module may
    configure a library (Django's settings), which must happen in the server only.
    """
    if len(args) < 2 or args[0] != "run":
        return
    module = args[1].partition(":")[0]
    _import_the_libraries_of(os.path.join(cwd, *module.split(".")) + ".py")


def _import_the_libraries_of(source: str) -> None:
    """Import here the installed libraries that the module at ``source`` imports at its top."""
    if source in _preloaded_apps:
        return
    _preloaded_apps.add(source)
    try:
        with open(source, "rb") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name not in sys.modules and _is_library_module(name):
                try:
                    importlib.import_module(name)
                except Exception:  # it fails in the server too, where the test sees it
                    pass


def _is_library_module(name: str) -> bool:
    """True for a module of an installed library (not of Peregrine, not of the tests)."""
    try:
        spec = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.origin:
        return False
    origin = os.path.realpath(spec.origin)
    return origin.startswith(_LIBRARY_DIRS) and not origin.startswith(_SOURCE_DIR)


#: ``peregrine.cli.build_parser()``, built once in this process (see _command_line_parser)
_parser: list[argparse.ArgumentParser] = []


def _command_line_parser() -> argparse.ArgumentParser:
    """The command line's parser, built once per test process and never used here.

    Building it (an argparse action per option, the type hints of Config) was a quarter of a
    forked server's CPU (~10 of ~43 ms per server started and stopped). It depends on nothing of the environment, the directory or
    the arguments (those are read when parsing), and each child gets its own copy of it with
    the fork, untouched by any other child's parsing: the child parses with it as
    ``peregrine.cli.main`` would with a parser of its own.
    """
    if not _parser:
        import peregrine.cli

        _parser.append(peregrine.cli.build_parser())
    return _parser[0]


def run(
    args: list[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    script: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([python, "-m", "peregrine", *args], capture_output=True, text=True)``.

    With ``script``, ``python SCRIPT *args`` instead (as :func:`spawn`)."""
    import threading

    proc, err_fd = spawn(args, cwd=cwd, env=env, stderr_to_stdout=False, script=script)
    assert proc.stdout is not None and err_fd is not None
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: IO[bytes]) -> None:
        with stream:
            chunks[name] = stream.read()

    err = open(err_fd, "rb", buffering=0)  # noqa: SIM115 - drain closes it
    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    for reader in readers:
        reader.join(10)

    def decode(data: bytes) -> str:  # as text=True does: universal newlines
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    assert proc.returncode is not None
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, decode(chunks.get("out", b"")), decode(chunks.get("err", b""))
    )


# --- in the child ---------------------------------------------------------------------------


def _become_a_fresh_interpreter(
    out_w: int, err_w: int, cwd: str, env: Mapping[str, str], fresh: list[str]
) -> None:
    os.setsid()
    # the test process's garbage is not the server's: never walk (or copy) it
    gc.freeze()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    # every other descriptor belongs to the test process (its execnet channel, other servers'
    # pipes and sockets): closed, as Popen's close_fds does. The Python objects that own them
    # stay referenced in _kept, so none of them closes a number the server reuses.
    _kept.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__])
    os.closerange(3, _max_fd())
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    # PYTHONUNBUFFERED=1, as the servers are run: every write reaches the pipe at once
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True, write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    for name in ("stdin", "stdout", "stderr"):  # what the interpreter started with, too
        setattr(sys, f"__{name}__", getattr(sys, name))
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = [os.getcwd(), *_STARTUP_PATH]  # `python -m` puts the current directory first
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.set_wakeup_fd(-1)
    _fresh_logging()
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    import asyncio

    asyncio.set_event_loop_policy(None)
    # the test modules and any other module outside the installed libraries are imported
    # afresh (an application may read the environment when its module is imported, and a test
    # may write a module of a name imported before); the libraries stay, which is the time saved
    for name in fresh:
        _kept.append(sys.modules.pop(name))
    importlib.invalidate_caches()


def _modules_to_import_afresh() -> list[str]:
    """The names in ``sys.modules`` of the modules that are not the installed libraries'."""
    return [name for name, module in list(sys.modules.items()) if not _is_library(module)]


#: whether a module file is a library's, by the path in its ``__file__``: resolving a path costs
#: an lstat per component, and the same few hundred modules are asked about at every fork
_library_by_path: dict[str, bool] = {}


def _is_library(module: object) -> bool:
    path: str | None = getattr(module, "__file__", None)
    if not path:
        return True  # built in, frozen or a namespace package
    known = _library_by_path.get(path)
    if known is None:
        known = _library_by_path[path] = os.path.realpath(path).startswith(_LIBRARY_DIRS)
    return known


def _fresh_logging() -> None:
    logging.disable(logging.NOTSET)
    root = logging.getLogger()
    for logger in [root, *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            _kept.extend(logger.handlers)
            logger.handlers.clear()
            logger.filters.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
    root.setLevel(logging.WARNING)


def _max_fd() -> int:
    try:
        return max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")


def _run_main(args: list[str], parser: argparse.ArgumentParser) -> int:
    import peregrine.cli

    sys.argv = [os.path.join(os.path.dirname(peregrine.cli.__file__), "__main__.py"), *args]
    peregrine.cli.build_parser = lambda: parser  # this child's own copy (see _command_line_parser)
    return _exit_status(lambda: peregrine.cli.main(args))


def _run_script(script: str, args: list[str]) -> int:
    """``python SCRIPT *args`` from here on (the working directory is the child's already)."""
    import runpy

    path = os.path.abspath(script)  # __main__.__file__ is absolute, as since Python 3.9
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(path))  # the script's directory, not cwd
    return _exit_status(lambda: runpy.run_path(path, run_name="__main__"))


def _exit_status(run: Callable[[], object]) -> int:
    """Run ``run`` as the interpreter runs a program; the exit status it would end with."""
    try:
        run()
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # as the interpreter does with an uncaught KeyboardInterrupt: die of SIGINT
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0
