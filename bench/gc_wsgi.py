"""Cyclic-GC collections in the WSGI hot path (``bench/hotpath_wsgi.py``), and what is alive at each.

    WSGI_THREADS=10 CONNECTIONS=100 N=20000 PYTHONPATH=bench python bench/gc_wsgi.py

Runs ``hotpath_wsgi.main()`` (same environment variables: ``WSGI_THREADS``, ``CONNECTIONS``,
``N``) with a ``gc.callbacks`` hook, and prints the collections of each generation, then the
types of the young (generation-0) objects alive at the first collections. Those are the ones
that keep collections coming although no request leaves a cycle: CPython counts a container's
allocation up and its free down, but a collection resets the count to zero, and the objects
alive at that moment, freed after it, cannot lower it below zero. Set-up (connections, threads,
imports) makes a few collections: run two different ``N`` and compare; the same count means none
per request.
"""

from __future__ import annotations

import collections
import gc
import os
from typing import Any

import hotpath_wsgi

SAMPLED = 50  # collections whose young objects are listed


def main() -> None:
    collections_by_generation: collections.Counter[int] = collections.Counter()
    alive: collections.Counter[str] = collections.Counter()
    sampled = 0

    def hook(phase: str, info: dict[str, Any]) -> None:
        nonlocal sampled
        if phase != "start":
            return
        collections_by_generation[info["generation"]] += 1
        if info["generation"] == 0 and sampled < SAMPLED:
            sampled += 1
            alive.update(type(obj).__qualname__ for obj in gc.get_objects(0))

    gc.callbacks.append(hook)
    try:
        hotpath_wsgi.main()
    finally:
        gc.callbacks.remove(hook)
    print(f"requests {os.environ.get('N', '100000')}, collections by generation:")
    print("  " + ", ".join(f"{g}: {n}" for g, n in sorted(collections_by_generation.items())))
    if sampled:
        print(f"young objects alive at a generation-0 collection (mean of the first {sampled}):")
        for name, count in alive.most_common(25):
            print(f"  {count / sampled:8.1f} {name}")


if __name__ == "__main__":
    main()
