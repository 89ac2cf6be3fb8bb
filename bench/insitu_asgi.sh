#!/usr/bin/env bash
# Instructions per request of a whole ASGI server process serving real sockets (in situ), counted
# by callgrind: the server runs under valgrind, wrk loads it over loopback, twice (SHORT and LONG
# seconds); the difference of the two totals over the difference of the requests answered cancels
# start-up and shutdown. What it counts and hotpath.sh does not: uvloop's socket reads and
# writes, accepting, the event loop's turns under load; what neither counts: the kernel.
#
#   SERVER=peregrine|uvicorn APP=raw|starlette|fastapi bash bench/insitu_asgi.sh
#   PYTHON=bench/.venv/bin/python SERVER=uvicorn APP=fastapi bash bench/insitu_asgi.sh
#
# The server is one process on uvloop (Peregrine --workers 1; uvicorn httptools), no access
# log, no lifespan, the apps of bench/apps answering GET / with the seed body. Under valgrind
# the server is ~50x slower than wrk, so every read finds requests on most of the CONNECTIONS:
# the loop's cost is shared by more requests than at full speed on a real core (the same for
# both servers). Needs valgrind and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-.venv/bin/python}
case "$python" in /*) ;; *) python="$repo/$python" ;; esac
server=${SERVER:-peregrine}
app=${APP:-raw}
port=${PORT:-3917}
conns=${CONNECTIONS:-10}
short_s=${SHORT:-4}
long_s=${LONG:-12}
case "$app" in
raw) module=asgi_app:app ;;
starlette | fastapi) module=${app}_app:app ;;
*) echo "APP: raw, starlette or fastapi" >&2 && exit 2 ;;
esac
case "$server" in
peregrine)
  cmd=("$python" -m peregrine run "$module" --interface asgi --lifespan off --host 127.0.0.1
    --port "$port" --workers 1 --loop uvloop --access-log false) ;;
uvicorn)
  cmd=("$python" -m uvicorn "$module" --host 127.0.0.1 --port "$port" --loop uvloop
    --http httptools --no-access-log --log-level warning --lifespan off) ;;
*) echo "SERVER: peregrine or uvicorn" >&2 && exit 2 ;;
esac
out=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$out"
}
trap cleanup EXIT

# one run of $1 seconds: sets ir (instructions) and rq (requests answered)
run() {
  local seconds=$1
  (cd bench/apps && exec valgrind --tool=callgrind --callgrind-out-file="$out/cg.$seconds" \
    "${cmd[@]}" >"$out/log.$seconds" 2>&1) &
  pid=$!
  for _ in $(seq 600); do  # up to 120 s to start under valgrind: one answered request (the
    # same in both runs, so it cancels out)
    if curl -sf -o /dev/null --max-time 30 "http://127.0.0.1:$port/"; then break; fi
    sleep 0.2
  done
  rq=$(wrk -t1 -c"$conns" -d"${seconds}s" "http://127.0.0.1:$port/" |
    sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
  kill -INT "$pid"
  wait "$pid" || true
  pid=
  ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out/cg.$seconds")
}

run "$short_s"
short_i=$ir short_r=$rq
run "$long_s"
long_i=$ir long_r=$rq
echo "$server $app: $short_r and $long_r requests;" \
  "instructions per request: $(((long_i - short_i) / (long_r - short_r)))"
