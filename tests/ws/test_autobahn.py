"""A fast subset of the Autobahn|Testsuite (via kosoku) in CI; `tests/ws/autobahn.py` runs all."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest

from ..helpers import ServerProcess
from .autobahn import ACCEPTABLE, ECHO_APPS, SERVER_ARGS, report, run_cases

pytest.importorskip("kosoku")

# Every case of the framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close and
# auto-fragmentation sections (a few seconds), plus a small sample of the large-message (9)
# and compression (12, 13) sections, whose full runs take minutes. Eight cases run at a time:
# many of them mostly wait on their own timers, so two at a time took four times as long.
# The sample's fragmented compression case is 12.1.11 (1000 JSON messages of 8 KiB, each sent
# deflated in 256-byte continuation frames): the same reassembly and inflate-then-deflate work
# as 12.5.11 (a PDF, barely compressible: 32 frames a message) for a third of its CPU (0.6
# against 1.9 s); incompressible messages are tests/ws/test_deflate.py's (random bytes).
# Each sample case sends 1000 messages (~0.4 s of CPU), so none repeats another's work: 9.8.1
# (1000 empty binary messages) is 9.7.1 with the other opcode, which carries nothing empty;
# 12.1.1 is 13.1.1 exactly (the same offer, data and size); 13.4.1 and 13.6.1 offer
# server_max_window_bits=15, which the server answers with its window of 12 (test_deflate.py's
# negotiation table), so their messages travel as 13.1.1's and 13.2.2's do.
EVERY_FRAMING_CASE = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
LARGE_AND_COMPRESSED = [
    "9.1.1",
    "9.2.1",
    "9.7.1",
    "12.2.3",
    "12.1.11",
    "13.1.1",
    "13.2.2",
    "13.3.1",
    "13.5.2",
    "13.7.12",
]
FAST = EVERY_FRAMING_CASE + LARGE_AND_COMPRESSED
# The ASGI app gets the framing cases and one case of each sample section: large messages and
# compression are the WebSocket layer's own work, the same for both interfaces (the native run
# covers them), while what the ASGI adapter adds (receive/send events, its close handling) is
# exercised by every framing case. The compression cases cost ~0.5 s of CPU each, so the ASGI run
# has one (13.1.1; 12.1.1 is the same case).
CASES = {"native": FAST, "asgi": [*EVERY_FRAMING_CASE, "9.1.1", "9.7.1", "13.1.1"]}
# The close verdict of a case whose client dropped the TCP connection itself: the server did not
# close it before one of the client's timers ran out. Those timers are short: every 6.x UTF-8
# case kills its connection 0.5 s after opening it (Autobahn's killAfter(0.5)), and the server
# must have failed the connection (close 1007, then its FIN) by then. Peregrine does that in the
# read that brings the bad frame, but on a loaded machine (a CI run with the rest of the suite
# beside it) the server or the client process can be kept off the CPU for half a second, and
# 6.14.6 once got this verdict so. Such cases are run again, alone: a server that really leaves
# the TCP close to the client gets the verdict again and fails the test.
CLIENT_TIMER_VERDICT = "FAILED BY CLIENT"


def rerun_timer_failures(url: str, results: list[Any]) -> list[Any]:
    """``results`` with each case that failed only by the client's timer run again alone."""
    again = [
        case.case_id
        for case in results
        if case.behavior_close.value == CLIENT_TIMER_VERDICT and case.behavior.value in ACCEPTABLE
    ]
    if not again:
        return results
    rerun = {case.case_id: case for case in asyncio.run(run_cases(url, again, concurrency=1))}
    return [rerun.get(case.case_id, case) for case in results]


@pytest.mark.long
@pytest.mark.timeout(240)
@pytest.mark.parametrize("interface", sorted(ECHO_APPS))
def test_autobahn_fast_subset(interface: str, start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(ECHO_APPS[interface], *SERVER_ARGS)
    cases = CASES[interface]
    url = f"ws://{server.host}:{server.port}/ws"
    results = rerun_timer_failures(url, asyncio.run(run_cases(url, cases, concurrency=8)))
    out = io.StringIO()
    ok = report(results, out)
    # the framing sections hold 247 cases, each sample case is one: every case ran
    assert len(results) == 247 + len(cases) - len(EVERY_FRAMING_CASE), out.getvalue()
    assert ok, out.getvalue()
