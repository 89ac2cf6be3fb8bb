"""A server forked from the test process starts as a fresh ``python -m peregrine`` would."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from . import forked
from .helpers import ServerProcess, read_response, run_peregrine

# What the application's module sees when it is imported, answered to every request.
APP = """
import json, logging, os, signal, sys

SEEN = {
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "argv0": os.path.basename(sys.argv[0]),
    "variable": os.environ.get("FORKED_TEST_VARIABLE"),
    "version": VERSION,
    "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    "root_handlers": len(logging.getLogger().handlers),
    "stdin": sys.stdin.read(),
}


def app(req, resp):
    resp.set_body(json.dumps(SEEN).encode())
"""


def seen(server: ServerProcess) -> dict[str, object]:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200
    result: dict[str, object] = json.loads(body)
    return result


@pytest.mark.skipif(
    not forked.forking_enabled(),
    reason="forking is off: PEREGRINE_TEST_EXEC=1, or coverage.py measures",
)
def test_forked_server_gets_directory_environment_fresh_modules_and_its_own_session(
    tmp_path: Path,
) -> None:
    (tmp_path / "forked_probe_app.py").write_text("VERSION = 1\n")
    # this process imports (and keeps) the module first: the server must import it again
    sys.path.insert(0, str(tmp_path))  # (monkeypatch.syspath_prepend trips on kosoku's shim)
    try:
        import forked_probe_app  # type: ignore[import-not-found]

        assert forked_probe_app.VERSION == 1
        _start_and_check(tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("forked_probe_app", None)


def _start_and_check(tmp_path: Path) -> None:
    (tmp_path / "forked_probe_app.py").write_text("VERSION = 2\n" + APP)
    server = ServerProcess(
        "forked_probe_app:app", cwd=str(tmp_path), env={"FORKED_TEST_VARIABLE": "set"}
    )
    with server:
        assert isinstance(server.proc, forked.ForkedProcess)
        assert os.getsid(server.proc.pid) == server.proc.pid  # its own session and group
        assert seen(server) == {
            "cwd": str(tmp_path),
            "path0": str(tmp_path),
            "argv0": "__main__.py",
            "variable": "set",
            "version": 2,
            "sigterm_default": True,
            "root_handlers": 0,
            "stdin": "",
        }
        assert "INFO peregrine" in server.output  # its log lines reach the pipe
        assert server.stop(signal.SIGTERM) == 0


def test_interpreter_variables_get_a_real_interpreter() -> None:
    assert forked.needs_exec({"PYTHONPATH": "x"}) and forked.needs_exec(
        {"PEREGRINE_PURE_PYTHON": "1"}
    )
    assert forked.needs_exec({"FORKED_TEST_VARIABLE": "x"}) == (not forked.forking_enabled())


def test_run_reports_the_exit_status_and_both_streams_apart() -> None:
    result = run_peregrine("run", "no_such_module_anywhere:app")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "cannot import module 'no_such_module_anywhere'" in result.stderr


@pytest.mark.skipif(
    not forked.forking_enabled(),
    reason="forking is off: PEREGRINE_TEST_EXEC=1, or coverage.py measures",
)
def test_the_libraries_of_the_app_are_imported_here_and_the_app_module_only_in_the_server(
    tmp_path: Path,
) -> None:
    # colorsys: a library module nothing else here imports (taken out first, to see it return)
    (tmp_path / "forked_preload_app.py").write_text(
        "import colorsys\n\n\ndef app(req, resp):\n    resp.set_body(b'%d' % colorsys.ONE_THIRD)\n"
    )
    saved = sys.modules.pop("colorsys", None)
    try:
        with ServerProcess("forked_preload_app:app", cwd=str(tmp_path)) as server:
            with server.connect() as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(sock)[::2] == (200, b"0")
        assert "colorsys" in sys.modules  # imported here once, kept by every later server
        assert "forked_preload_app" not in sys.modules  # the app's own module: the server's
    finally:
        if saved is not None:
            sys.modules["colorsys"] = saved


@pytest.mark.skipif(
    not forked.forking_enabled(),
    reason="forking is off: PEREGRINE_TEST_EXEC=1, or coverage.py measures",
)
def test_a_forked_server_imports_afresh_only_its_application_module(tmp_path: Path) -> None:
    # what every server imports on its way up (the event loop, the thread pool, the server
    # itself) comes from the test process, imported there once; only the app's module is new
    (tmp_path / "forked_modules_app.py").write_text(
        "import json, sys\n\n\n"
        "def app(req, resp):\n"
        "    resp.set_body(json.dumps(sorted(sys.modules)).encode())\n"
    )
    with ServerProcess("forked_modules_app:app", cwd=str(tmp_path)) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(sock)
    assert status == 200
    assert set(json.loads(body)) - set(sys.modules) == {"forked_modules_app"}
