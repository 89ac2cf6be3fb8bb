"""Whose code an ASGI request's time goes to: Peregrine's, the framework's, or the loop's.

Runs ``hotpath_asgi.py``'s in-process driver (``APP=raw|starlette|fastapi``, ``N`` requests)
under cProfile and sums the functions' own time by where their code lives. Time in C functions
(``len``, ``dict.get``, uvloop's methods, ...) is charged to the package of the Python function
that called them, so each share is everything done on that package's behalf.

    APP=fastapi N=20000 PYTHONPATH=bench .venv/bin/python bench/profile_asgi.py

cProfile's own overhead inflates functions that are called often and do little, so the shares
are an estimate; ``hotpath.sh`` gives the exact instruction count of the whole request.
"""

from __future__ import annotations

import cProfile
import os
import pstats
from collections import Counter
from typing import Any

from hotpath_asgi import load_app, serve

#: groups, first match wins: a path fragment of the function's file -> the group's name
GROUPS = [
    ("/peregrine/", "peregrine"),
    ("/fastapi/", "fastapi"),
    ("/starlette/", "starlette"),
    ("/pydantic", "pydantic"),
    ("/anyio/", "anyio"),
    ("/asyncio/", "asyncio (stdlib)"),
    ("hotpath", "the driver"),
]


def group_of(filename: str) -> str:
    for fragment, name in GROUPS:
        if fragment in filename:
            return name
    return "other Python (stdlib, typing, ...)"


def shares(stats: pstats.Stats) -> Counter[str]:
    """Own time per group, C functions charged to their Python callers."""
    totals: Counter[str] = Counter()
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in table.items():
        if filename != "~":
            totals[group_of(filename)] += tottime
            continue
        # a C function: split its time by caller (cProfile keeps the time per caller)
        charged = 0.0
        for (caller_file, _l, _n), (_c, _n2, caller_tt, _ct2) in callers.items():
            totals[group_of(caller_file) if caller_file != "~" else "C (uvloop, ...)"] += caller_tt
            charged += caller_tt
        if tottime - charged > 1e-9:
            totals["C (uvloop, ...)"] += tottime - charged  # called from the loop itself
    return totals


def main() -> None:
    app_name = os.environ.get("APP", "raw")
    count = int(os.environ.get("N", "20000"))
    app = load_app(app_name)
    serve(app, 200)  # warm up: imports, caches, first-call specialisation
    profiler = cProfile.Profile()
    profiler.enable()
    serve(app, count)
    profiler.disable()
    totals = shares(pstats.Stats(profiler))
    whole = sum(totals.values())
    print(f"APP={app_name}: {count} requests, {whole / count * 1e6:.1f} us each under cProfile")
    for name, seconds in totals.most_common():
        print(f"  {name:<36} {100 * seconds / whole:5.1f}%")


if __name__ == "__main__":
    main()
