#!/usr/bin/env bash
# Instructions per request of Peregrine's hot path, counted by callgrind (repeatable whatever else
# the machine is doing). Two runs of different length; the difference divided by the extra
# requests cancels start-up. Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
script=${SCRIPT:-bench/hotpath.py}  # bench/hotpath_api.py: the ladder's api rung
# REQUEST=browser: a browser-like request (a dozen header fields) instead of the seed request;
# PEREGRINE_PURE_PYTHON=1: the pure-Python modules instead of the compiled build
count() {
  N=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$python" "$script" \
    2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
short_n=${SHORT:-1000}  # SHORT/LONG: fewer requests for slow paths (a framework app)
long_n=${LONG:-5000}
short=$(count "$short_n")
long=$(count "$long_n")
echo "instructions per request: $(( (long - short) / (long_n - short_n) ))"
