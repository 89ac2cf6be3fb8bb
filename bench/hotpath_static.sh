#!/usr/bin/env bash
# Instructions per request of serving a small static file (GET /static/6k.bin through
# peregrine.util.DirServer, see hotpath_static.py), counted by callgrind as hotpath.sh does:
# two runs of different length, the difference divided by the extra requests. User-space
# instructions only: the system calls' kernel side is not counted (strace -c shows those).
# Set PYTHONHASHSEED=0 when comparing small steps; ENCODING=gzip,br adds an Accept-Encoding.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
count() {
  N=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$python" bench/hotpath_static.py \
    2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
short=$(count 1000)
long=$(count 5000)
echo "instructions per request: $(( (long - short) / 4000 ))"
