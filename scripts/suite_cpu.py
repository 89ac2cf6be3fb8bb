"""Where the test suite's CPU goes: a pytest plugin, and a summary of what it recorded.

Wall time on this shared 2-core machine swings by ~20 s between runs of the same suite, so the
suite's cost is measured in CPU seconds, split by where they are spent:

- the xdist controller (``main``: receiving and printing the workers' reports);
- each worker's own CPU: start-up and collection, inside tests (setup, call, teardown and the
  report sent to the controller, including the threads that read the servers' output), and
  between tests;
- the CPU of the processes each test started and reaped (the servers, ``run_peregrine``).

Record (any Python, any build; the plugin is loaded in the controller and in every worker)::

    rm -rf /tmp/suite-cpu && PYTHONPATH=scripts .venv/bin/python -m pytest -q -p suite_cpu

Then ``python3 scripts/suite_cpu.py /tmp/suite-cpu`` prints the split and the files that cost
most; ``python3 scripts/suite_cpu.py OLD_DIR NEW_DIR`` compares two runs file by file
(``SUITE_CPU_DIR`` picks where a run is written). CPU seconds inflate on a loaded machine too
(~1.3x at a load of 15 against a quiet run), so compare runs made under similar load.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

_OUT = Path(os.environ.get("SUITE_CPU_DIR", "/tmp/suite-cpu"))
_tests: list[tuple[str, float, float]] = []
_marks: dict[str, float] = {}


def _cpu() -> tuple[float, float]:
    """(this process's CPU, its reaped children's CPU), user + system, in seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def pytest_collection_finish(session: Any) -> None:
    _marks["collection"] = _cpu()[0]


try:
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: Any, nextitem: Any) -> Generator[None, None, None]:
        own, children = _cpu()
        yield
        own_after, children_after = _cpu()
        _tests.append((item.nodeid, own_after - own, children_after - children))

except ImportError:  # the summary runs without pytest
    pass


def pytest_sessionfinish(session: Any) -> None:
    own, children = _cpu()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _OUT.mkdir(parents=True, exist_ok=True)
    record = {
        "python": sys.version.split()[0],
        "own": own,
        "children": children,
        "collection": _marks.get("collection", 0.0),
        "tests": _tests,
        "at": time.time(),
    }
    (_OUT / f"{worker}.json").write_text(json.dumps(record))


def _load(directory: str) -> dict[str, Any]:
    runs = {path.stem: json.loads(path.read_text()) for path in Path(directory).glob("*.json")}
    workers = [run for name, run in runs.items() if name != "main"]
    by_file: collections.Counter[str] = collections.Counter()
    servers: collections.Counter[str] = collections.Counter()
    for run in workers:
        for nodeid, own, children in run["tests"]:
            by_file[nodeid.split("::")[0]] += own
            servers[nodeid.split("::")[0]] += children
    in_tests = sum(by_file.values())
    return {
        "python": next(iter(runs.values()))["python"] if runs else "?",
        "controller": runs["main"]["own"] if "main" in runs else 0.0,
        "workers": sum(run["own"] for run in workers),
        "collection": sum(run["collection"] for run in workers),
        "in_tests": in_tests,
        "children": sum(run["children"] for run in workers),
        "tests": sum(len(run["tests"]) for run in workers),
        "by_file": by_file,
        "servers": servers,
    }


def _summary(run: dict[str, Any]) -> str:
    between = run["workers"] - run["collection"] - run["in_tests"]
    total = run["controller"] + run["workers"] + run["children"]
    return (
        f"Python {run['python']}: {total:.1f} CPU-s = controller {run['controller']:.1f}"
        f" + workers {run['workers']:.1f} (start-up and collection {run['collection']:.1f},"
        f" in tests {run['in_tests']:.1f}, between {between:.1f}) + started processes"
        f" {run['children']:.1f}; {run['tests']} tests"
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__)
        return 2
    runs = [_load(directory) for directory in argv]
    for run in runs:
        print(_summary(run))
    if len(runs) == 1:
        cost = runs[0]["by_file"] + runs[0]["servers"]
        print("\n  worker  started  file")
        for name, _ in cost.most_common(30):
            print(f"  {runs[0]['by_file'][name]:6.2f}  {runs[0]['servers'][name]:7.2f}  {name}")
        return 0
    old, new = runs
    change: collections.Counter[str] = collections.Counter()
    for name in set(old["by_file"]) | set(new["by_file"]):
        change[name] = (new["by_file"][name] + new["servers"][name]) - (
            old["by_file"][name] + old["servers"][name]
        )
    print("\n  change  worker (old -> new)  started (old -> new)  file")
    for name, delta in sorted(change.items(), key=lambda kv: -abs(kv[1]))[:30]:
        print(
            f"  {delta:+6.2f}  {old['by_file'][name]:5.2f} -> {new['by_file'][name]:5.2f}"
            f"  {old['servers'][name]:5.2f} -> {new['servers'][name]:5.2f}  {name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
