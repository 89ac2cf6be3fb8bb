"""A fast subset of the Autobahn|Testsuite (via kosoku) in CI; `tests/ws/autobahn.py` runs all."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import pytest

from ..helpers import ServerProcess
from .autobahn import ECHO_APPS, SERVER_ARGS, report, run_cases

pytest.importorskip("kosoku")

# Every case of the framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close and
# auto-fragmentation sections (a few seconds), plus a small sample of the large-message (9)
# and compression (12, 13) sections, whose full runs take minutes. Eight cases run at a time:
# many of them mostly wait on their own timers, so two at a time took four times as long.
# The sample's fragmented compression case is 12.1.11 (1000 JSON messages of 8 KiB, each sent
# deflated in 256-byte continuation frames): the same reassembly and inflate-then-deflate work
# as 12.5.11 (a PDF, barely compressible: 32 frames a message) for a third of its CPU (0.6
# against 1.9 s); incompressible messages are tests/ws/test_deflate.py's (random bytes).
EVERY_FRAMING_CASE = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
LARGE_AND_COMPRESSED = [
    "9.1.1",
    "9.2.1",
    "9.7.1",
    "9.8.1",
    "12.1.1",
    "12.2.3",
    "12.1.11",
    "13.1.1",
    "13.2.2",
    "13.3.1",
    "13.4.1",
    "13.5.2",
    "13.6.1",
    "13.7.12",
]
FAST = EVERY_FRAMING_CASE + LARGE_AND_COMPRESSED
# The ASGI app gets the framing cases and one case of each sample section: large messages and
# compression are the WebSocket layer's own work, the same for both interfaces (the native run
# covers them), while what the ASGI adapter adds (receive/send events, its close handling) is
# exercised by every framing case. The compression cases cost ~0.5 s of CPU each.
CASES = {"native": FAST, "asgi": [*EVERY_FRAMING_CASE, "9.1.1", "9.7.1", "12.1.1", "13.1.1"]}


@pytest.mark.long
@pytest.mark.timeout(240)
@pytest.mark.parametrize("interface", sorted(ECHO_APPS))
def test_autobahn_fast_subset(interface: str, start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(ECHO_APPS[interface], *SERVER_ARGS)
    cases = CASES[interface]
    results = asyncio.run(run_cases(f"ws://{server.host}:{server.port}/ws", cases, concurrency=8))
    out = io.StringIO()
    ok = report(results, out)
    # the framing sections hold 247 cases, each sample case is one: every case ran
    assert len(results) == 247 + len(cases) - len(EVERY_FRAMING_CASE), out.getvalue()
    assert ok, out.getvalue()
