#!/usr/bin/env bash
# Instructions per request of Peregrine's hot path, counted by callgrind (repeatable whatever else
# the machine is doing). Two runs of different length; the difference divided by the extra
# requests cancels start-up. Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
script=${SCRIPT:-bench/hotpath.py}  # bench/hotpath_api.py: the ladder's api rung
count() {
  N=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$python" "$script" \
    2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
short=$(count 1000)
long=$(count 5000)
echo "instructions per request: $(( (long - short) / 4000 ))"
