"""--reload: a changed source file restarts the server; a broken save waits for the next one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peregrine.reloader import (
    FileFilter,
    PollingWatcher,
    Reloader,
    WatchfilesWatcher,
    make_watcher,
)

from .helpers import ROOT

APP = """
class Handler:
    def handle_request(self, req, resp):
        resp.set_body({body!r})
"""


def write_atomically(path: Path, text: str) -> None:
    """As editors save: a new file renamed over the old one (never a half-written module)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


class TestFilter:
    @pytest.mark.parametrize(
        "relative, watched",
        [
            ("app.py", True),
            ("pkg/models.py", True),
            ("notes.txt", False),
            ("app.pyc", False),
            ("__pycache__/app.cpython-311.pyc", False),
            (".venv/lib/site.py", False),
            (".git/hooks/x.py", False),
            ("node_modules/x.py", False),
            ("app.py~", False),
        ],
    )
    def test_defaults(self, relative: str, watched: bool) -> None:
        root = "/project"
        assert FileFilter().matches(os.path.join(root, relative), root) is watched

    def test_include_and_exclude_globs(self) -> None:
        file_filter = FileFilter(include=["*.py", "*.html"], exclude=["tests", "*_test.py"])
        root = "/project"
        assert file_filter.matches("/project/templates/index.html", root)
        assert not file_filter.matches("/project/tests/app.py", root)
        assert not file_filter.matches("/project/app_test.py", root)
        assert file_filter.excluded_dir("tests")


def wait_in_thread(
    watcher: PollingWatcher | WatchfilesWatcher,
) -> tuple[list[str], threading.Event, threading.Thread]:
    """Run ``watcher.wait`` in a thread: the paths it returns, its stop event, the thread."""
    found: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: found.extend(watcher.wait(stop)), daemon=True)
    thread.start()
    return found, stop, thread


@pytest.mark.parametrize("kind", ["polling", "watchfiles"])
def test_watcher_sees_a_real_change(tmp_path: Path, kind: str) -> None:
    if kind == "watchfiles":
        pytest.importorskip("watchfiles")
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("ignored\n")
    watcher = make_watcher([str(tmp_path)], FileFilter(), use_watchfiles=kind == "watchfiles")
    if isinstance(watcher, PollingWatcher):
        watcher.interval = 0.05
    found, stop, thread = wait_in_thread(watcher)
    time.sleep(0.3)  # watchfiles needs a moment to set its watches up
    (tmp_path / "notes.txt").write_text("still ignored\n")
    write_atomically(tmp_path / "app.py", "x = 2\n")
    thread.join(8)
    stop.set()
    assert not thread.is_alive(), "no change seen"
    assert found == [str(tmp_path / "app.py")]


def test_polling_watcher_returns_on_stop(tmp_path: Path) -> None:
    watcher = PollingWatcher([str(tmp_path)], FileFilter(), interval=0.05)
    stop = threading.Event()
    stop.set()
    assert watcher.wait(stop) == []


class ExitedChild:
    """A server child that has exited by itself (a broken save: it printed why and left)."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return 1

    def send_signal(self, number: int) -> None:
        self.signals.append(number)


def test_a_child_that_exited_by_itself_is_not_signalled(tmp_path: Path) -> None:
    # the end-to-end run below gets here only when the broken child is gone before the next
    # save, which depends on timing
    reloader = Reloader(["run", "app:Handler"], [str(tmp_path)])
    child = ExitedChild()
    reloader.child = child  # type: ignore[assignment]
    reloader._stop_child()
    assert reloader.child is None and child.signals == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def reloading(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str, Path]]:
    """A project directory with app.py, a ``peregrine run --reload`` on it, and its log file."""
    kind = request.param
    if kind == "watchfiles":
        pytest.importorskip("watchfiles")
    (tmp_path / "app.py").write_text(APP.format(body="v1"))
    port = free_port()
    log_path = tmp_path.parent / f"{tmp_path.name}-server.log"
    # the polling fallback is what runs where watchfiles cannot be imported
    prelude = "import sys; sys.modules['watchfiles'] = None; " if kind == "polling" else ""
    code = prelude + "from peregrine.cli import main; main()"
    argv = [sys.executable, "-c", code, "run", "app:Handler", "--reload", "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=str(tmp_path),
            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield tmp_path, f"http://127.0.0.1:{port}/", log_path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a server child left behind, if any
        except ProcessLookupError:
            pass


def body_becomes(url: str, expected: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).text == expected:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def log_shows(log_path: Path, text: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log_path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.long
@pytest.mark.parametrize("reloading", ["watchfiles"], indirect=True)
def test_reload_restarts_on_change_and_survives_a_syntax_error(
    reloading: tuple[Path, str, Path],
) -> None:
    project, url, log_path = reloading
    assert body_becomes(url, "v1"), log_path.read_text()
    write_atomically(project / "app.py", APP.format(body="v2"))
    assert body_becomes(url, "v2"), log_path.read_text()
    write_atomically(project / "app.py", "class Handler(:\n")  # a save with a syntax error
    assert log_shows(log_path, "SyntaxError"), log_path.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)  # nothing serves the broken code
    write_atomically(project / "app.py", APP.format(body="v3"))
    assert body_becomes(url, "v3"), log_path.read_text()
    text = log_path.read_text()
    assert text.count("restarting the server") == 3
    assert ", watchfiles) watching" in text


# What follows a change (stop the server, start one, wait through a broken save) is the
# reloader's own loop whichever watcher tells it: the fallback's run needs only one change (two
# fewer server interpreters, ~0.5 s of CPU, than the whole story above).
@pytest.mark.parametrize("reloading", ["polling"], indirect=True)
def test_reload_with_the_polling_watcher_restarts_on_change(
    reloading: tuple[Path, str, Path],
) -> None:
    project, url, log_path = reloading
    assert body_becomes(url, "v1"), log_path.read_text()
    write_atomically(project / "app.py", APP.format(body="v2"))
    assert body_becomes(url, "v2"), log_path.read_text()
    text = log_path.read_text()
    assert text.count("restarting the server") == 1
    assert ", polling) watching" in text
