"""Run the Autobahn|Testsuite cases (via the `kosoku` package) against a Peregrine echo server.

    python tests/ws/autobahn.py                     # sections 1-7, 9, 10, 12, 13
    python tests/ws/autobahn.py --asgi              # the same through the ASGI path
    python tests/ws/autobahn.py -i '1.*' -i '7.*'   # a selection
    python tests/ws/autobahn.py --url ws://127.0.0.1:9001   # a server already running

Prints the number of cases per verdict (message exchange and closing handshake) and every
case whose verdict is not OK / NON-STRICT / INFORMATIONAL; exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The sections run (kosoku has no 8 and 11, the server-side ones 14+ don't exist).
SECTIONS = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"]
ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL"}
#: Options of the server under test.
SERVER_ARGS = ("--ws-ping-interval", "0")
#: The echo apps, by interface: the native API's handler and an ASGI 3 app.
ECHO_APPS = {"native": "tests.ws.apps:Echo", "asgi": "tests.ws.apps:asgi_echo"}


def _verdicts(results: Sequence[Any]) -> tuple[Counter[str], Counter[str], list[Any]]:
    behavior: Counter[str] = Counter()
    closing: Counter[str] = Counter()
    bad = []
    for case in results:
        behavior[case.behavior.value] += 1
        closing[case.behavior_close.value] += 1
        if case.behavior.value not in ACCEPTABLE or case.behavior_close.value not in ACCEPTABLE:
            bad.append(case)
    return behavior, closing, bad


async def run_cases(
    url: str, include: Sequence[str], exclude: Sequence[str] | None = None, concurrency: int = 1
) -> list[Any]:
    """Run the cases and return kosoku's results (whether or not they passed)."""
    import kosoku

    try:
        return list(
            await kosoku.run_fuzzingclient(
                url, list(include), list(exclude or []), concurrency=concurrency
            )
        )
    except kosoku.FailureError as failure:
        return list(failure.results)


def report(results: Sequence[Any], out: Any = sys.stdout) -> bool:
    """Print counts per verdict and the failing cases; True when all are acceptable."""
    behavior, closing, bad = _verdicts(results)
    print(f"{len(results)} cases", file=out)
    print("behavior:       " + ", ".join(f"{k}={v}" for k, v in sorted(behavior.items())), file=out)
    print("behavior close: " + ", ".join(f"{k}={v}" for k, v in sorted(closing.items())), file=out)
    for verdict in ("NON-STRICT", "INFORMATIONAL"):
        ids = [c.case_id for c in results if verdict in (c.behavior.value, c.behavior_close.value)]
        if ids:
            print(f"{verdict}: {' '.join(ids)}", file=out)
    for case in bad:
        print(
            f"  {case.case_id}: {case.behavior.value} / {case.behavior_close.value}: "
            f"{case.result} / {case.result_close}",
            file=out,
        )
    return not bad


def _exit_on_sigterm(number: int, frame: Any) -> None:
    # SIGTERM (from `timeout`, a CI runner) would end the process without running the `with`
    # below, leaving the echo server running as an orphan; SystemExit unwinds it instead.
    raise SystemExit(128 + number)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-i", "--include", action="append", help="case id or glob (repeatable)")
    parser.add_argument(
        "-x", "--exclude", action="append", help="case id or glob to skip (repeatable)"
    )
    parser.add_argument("-p", "--parallelism", type=int, default=2, help="cases run at once")
    parser.add_argument("--url", help="test this server instead of starting one")
    parser.add_argument(
        "--asgi", action="store_true", help="serve the ASGI echo app instead of the native one"
    )
    args = parser.parse_args(argv)
    include = args.include or SECTIONS

    started = time.monotonic()
    if args.url:
        results = asyncio.run(run_cases(args.url, include, args.exclude, args.parallelism))
    else:
        from tests.helpers import ServerProcess

        # Messages of Autobahn's 9.x cases reach 16 MiB; the defaults allow exactly that.
        # Keepalive pings are off: a case expects exactly the frames it provokes, and an
        # unsolicited ping in the middle of the long 12.x cases makes the runner give up.
        app = ECHO_APPS["asgi" if args.asgi else "native"]
        with ServerProcess(app, *SERVER_ARGS) as server:
            url = f"ws://{server.host}:{server.port}/ws"
            results = asyncio.run(run_cases(url, include, args.exclude, args.parallelism))
    ok = report(results)
    print(f"took {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
