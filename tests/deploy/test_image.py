"""The Dockerfile: build the image, run it, check the counter answers and that a stop is graceful.

Needs a container engine (podman, or docker with a running daemon) that can fetch the
``python:3.11-slim`` base image. Where there is none the test is skipped and says why: this is
the case on the project's CI machine, which has no engine (a ``docker`` client without a daemon
does not count).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _engine() -> tuple[str | None, str]:
    """The first usable engine, or None and why there is none."""
    reasons = []
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if path is None:
            reasons.append(f"no {name}")
            continue
        probe = subprocess.run([path, "info"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return path, ""
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        reasons.append(f"{name} info failed ({last[:120]})")
    return None, "no container engine: " + "; ".join(reasons)


ENGINE, WHY_NOT = _engine()


def run(*args: str, timeout: float = 600) -> str:
    assert ENGINE is not None
    result = subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{ENGINE} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


@pytest.mark.container
@pytest.mark.timeout(900)
@pytest.mark.skipif(ENGINE is None, reason=WHY_NOT)
def test_image_serves_the_counter_and_stops_gracefully_with_exit_0() -> None:
    tag = f"peregrine-test:{os.getpid()}"
    run("build", "-t", tag, str(ROOT))
    container = ""
    try:
        container = run("run", "-d", "-p", "127.0.0.1::8000", tag)
        port = run("port", container, "8000").splitlines()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                first = httpx.get(url + "/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, run("logs", container)
                time.sleep(0.2)
        second = httpx.get(url + "/", timeout=2)
        assert first.text.startswith("counter=") and second.text.startswith("counter=")
        assert int(second.text.split("=")[1]) > int(first.text.split("=")[1])
        assert httpx.get(url + "/healthz", timeout=2).status_code == 200
        assert run("inspect", "-f", "{{.Config.User}}", container) not in ("", "root", "0")
        run("stop", "-t", "20", container, timeout=60)
        assert run("inspect", "-f", "{{.State.ExitCode}}", container) == "0"
        logs = subprocess.run([ENGINE, "logs", container], capture_output=True, text=True)
        assert "stopped" in logs.stdout + logs.stderr  # the server's own last line
    finally:
        if container:
            subprocess.run([ENGINE, "rm", "-f", container], capture_output=True)
        subprocess.run([ENGINE, "rmi", "-f", tag], capture_output=True)
