"""The multi-host test: ``deploy/cluster-test.sh`` run from the suite.

Three Peregrine hosts on network namespaces behind HAProxy (``retries 0``) under load, through a
rolling SIGHUP reload of every host, a SIGTERM stop-and-restart and a SIGKILL of one host: the
first two must lose no request. About 20-45 s of wall time (plus an ``apt-get install haproxy``
the first time, on a machine without it). Needs root (network namespaces) and iproute2; skipped,
with the reason, where either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "cluster-test.sh"


def _missing() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (the ip command)"
    if shutil.which("haproxy") is None and shutil.which("apt-get") is None:
        return "needs haproxy (or apt-get to install it)"
    return None


@pytest.mark.cluster
@pytest.mark.timeout(600)
@pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
def test_rolling_reload_and_sigterm_restart_lose_no_request_behind_haproxy(capsys) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = result.stdout + result.stderr
    with capsys.disabled():  # the numbers belong in the CI log
        print(
            "\n"
            + "\n".join(
                line
                for line in output.splitlines()
                if "cluster-test" in line or re.match(r"(phase|reload|sigterm|sigkill) ", line)
            )
        )
    assert result.returncode == 0, output
    rows = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^(reload|sigterm|sigkill)\s+(\d+)\s+(\d+)", output, re.M)
    }
    assert set(rows) == {"reload", "sigterm", "sigkill"}, output
    for phase in ("reload", "sigterm"):
        requests, failed = rows[phase]
        assert requests > 500 and failed == 0, (phase, rows[phase], output)
    assert rows["sigkill"][0] > 500  # its losses are reported, not judged
