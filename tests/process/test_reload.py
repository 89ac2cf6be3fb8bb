"""Rolling restarts (SIGHUP) and max_requests recycling: no request lost, new code loaded."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .support import Hammer, children, get, wait_until

APP_SOURCE = """
import os

VERSION = {version!r}


class Handler:
    def handle_request(self, req, resp):
        resp.set_body(f"{{VERSION}} pid={{os.getpid()}}")
"""


def write_app(directory: Path, version: str) -> None:
    """Each version of a test's app is a different length: a bytecode cache written for the old
    one is then stale whatever its timestamp (same second), and the servers may cache bytecode
    (and so be forks of the test process: tests/forked.py)."""
    (directory / "reloadapp.py").write_text(APP_SOURCE.format(version=version))


@pytest.mark.parametrize("reuse_port", ["true", "false"])
def test_sighup_restarts_every_worker_with_new_code_and_refuses_nothing(
    start_server,
    tmp_path,
    reuse_port: str,
) -> None:
    write_app(tmp_path, "v1")
    server = start_server(
        "reloadapp:Handler",
        "--reuse-port",
        reuse_port,
        workers=2,
        cwd=str(tmp_path),
    )
    old_workers = set(children(server.proc.pid))
    assert get(server.url + "/").text.startswith("v1 ")
    with Hammer(server.host, server.port) as hammer:
        time.sleep(0.3)
        write_app(tmp_path, "version-2")
        mark = len(server.lines)
        server.send_signal(signal.SIGHUP)
        assert server.wait_for_line("reload complete", 10, start=mark), server.output
        time.sleep(0.3)
    assert hammer.failures == [], hammer.failures[:5]
    assert hammer.ok > 10
    # the old workers were told to stop; the last may still be on its way out
    assert wait_until(lambda: len(children(server.proc.pid)) == 2, timeout=10), server.output
    new_workers = set(children(server.proc.pid))
    assert len(new_workers) == 2 and not new_workers & old_workers
    bodies = {get(server.url + "/").text.split()[0] for _ in range(10)}
    assert bodies == {"version-2"}
    assert server.stop() == 0


def test_sighup_with_broken_code_keeps_the_old_workers(start_server, tmp_path) -> None:
    write_app(tmp_path, "v1")
    server = start_server("reloadapp:Handler", workers=2, cwd=str(tmp_path))
    old_workers = set(children(server.proc.pid))
    (tmp_path / "reloadapp.py").write_text("def broken(:\n")  # a SyntaxError
    mark = len(server.lines)
    server.send_signal(signal.SIGHUP)
    assert server.wait_for_line("reload failed", 10, start=mark), server.output
    time.sleep(1.5)  # longer than the back-off a retry would wait
    after = "\n".join(server.lines[mark:])
    assert after.count("reload failed") == 1, after
    assert after.count("could not start") == 1, after  # one new worker tried, once
    assert "SyntaxError" in after
    assert "trying again" not in after, after
    assert set(children(server.proc.pid)) >= old_workers
    assert get(server.url + "/").text.startswith("v1 ")
    assert server.stop() == 0


@pytest.mark.parametrize("reuse_port", ["true", "false"])
def test_max_requests_recycles_without_losing_a_request(start_server, reuse_port: str) -> None:
    server = start_server(
        "tests.process.apps:Pid",
        "--max-requests",
        "15",
        "--max-requests-jitter",
        "5",
        "--reuse-port",
        reuse_port,
        workers=2,
    )
    first = set(children(server.proc.pid))

    def pids() -> set[bytes]:
        return {body.split(b"=")[1] for body in list(hammer.bodies)}

    with Hammer(server.host, server.port) as hammer:
        # four recycles at least: both first workers replaced, and their replacements too
        assert wait_until(lambda: len(pids()) >= 6 or hammer.failures, timeout=30), server.output
    assert hammer.failures == [], hammer.failures[:5]
    assert "reached max_requests" in server.output
    assert wait_until(lambda: len(children(server.proc.pid)) == 2, timeout=5)
    assert not set(children(server.proc.pid)) & first
    assert server.stop() == 0


def test_max_requests_with_one_worker_uses_a_supervisor(start_server) -> None:
    server = start_server("tests.process.apps:Pid", "--max-requests", "10", workers=1)
    with Hammer(server.host, server.port) as hammer:
        assert wait_until(lambda: len(set(hammer.bodies)) >= 3 or hammer.failures, timeout=30)
    assert hammer.failures == [], hammer.failures[:5]
    assert server.stop() == 0


INSTANCE_APP = """
VERSION = {version!r}


class Handler:
    def handle_request(self, req, resp):
        resp.set_body(VERSION)


handler = Handler()
"""


def test_sighup_loads_new_code_for_an_instance_handler(start_server, tmp_path) -> None:
    (tmp_path / "instapp.py").write_text(INSTANCE_APP.format(version="v1"))
    server = start_server("instapp:handler", workers=2, cwd=str(tmp_path))
    assert get(server.url + "/").text == "v1"
    # a longer version: the bytecode cached for v1 is stale even if written this same second
    (tmp_path / "instapp.py").write_text(INSTANCE_APP.format(version="version-2"))
    mark = len(server.lines)
    server.send_signal(signal.SIGHUP)
    assert server.wait_for_line("reload complete", 10, start=mark), server.output
    assert {get(server.url + "/").text for _ in range(6)} == {"version-2"}
