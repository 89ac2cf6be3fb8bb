#!/usr/bin/env bash
# Three Peregrine hosts behind HAProxy, on network namespaces, under load, through three kinds of
# deploy step. Proves that rolling reloads (SIGHUP) and a stop-and-restart (SIGTERM) lose no
# request with balancer retries off (`retries 0`, as with many cloud balancers), and reports what
# a SIGKILL of a whole host costs.
#
#   balancer namespace: bridge br0 10.213.7.1/24, HAProxy on 10.213.7.1:8080, the load generator
#   host namespaces h1-h3: veth eth0 10.213.7.11-13/24, Peregrine on :8000 with 2 workers,
#                          --health-path /healthz --drain-delay $DRAIN_DELAY
#
# The namespaces are joined only to each other (no link to the machine's own network); the
# addresses are a private range used only inside them. Everything (processes, namespaces, the
# temporary directory) is removed on exit, including on Ctrl+C or SIGTERM.
#
# Needs root, iproute2 and haproxy (installed with apt-get when missing and apt-get exists).
# Usage: deploy/cluster-test.sh   (PYTHON=path/to/python with peregrine importable; default
# .venv/bin/python, else python3). Exit status 0 when the reload and SIGTERM phases lost nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-}
if [[ -z $PYTHON ]]; then
  if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
TOOL=$ROOT/deploy/cluster_tool.py
DRAIN_DELAY=${DRAIN_DELAY:-1.5}       # > HAProxy's time to mark a host down (fall 2 x inter 200ms)
GRACEFUL_TIMEOUT=${GRACEFUL_TIMEOUT:-10}
LOAD_CONNECTIONS=${LOAD_CONNECTIONS:-8}
LOAD_RATE=${LOAD_RATE:-400}           # requests per second, all connections together
WORKERS=${WORKERS:-2}
HOSTS=(h1 h2 h3)
SUBNET=10.213.7
LB_ADDR=$SUBNET.1
PORT=8000

if [[ $(id -u) != 0 ]]; then echo "cluster-test: needs root (network namespaces)" >&2; exit 2; fi
if ! command -v ip >/dev/null; then echo "cluster-test: needs iproute2 (ip)" >&2; exit 2; fi
if ! command -v haproxy >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "cluster-test: installing haproxy with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy) >/dev/null
  fi
  command -v haproxy >/dev/null || { echo "cluster-test: needs haproxy" >&2; exit 2; }
fi
"$PYTHON" -c 'import peregrine' || { echo "cluster-test: $PYTHON cannot import peregrine" >&2; exit 2; }

TAG=pgc$$                            # namespaces of this run only: pgc<PID>-lb, pgc<PID>-h1...
WORK=$(mktemp -d /tmp/peregrine-cluster.XXXXXX)
declare -A PIDS=()                   # host -> pid of its server (also its process group)
HAPROXY_PID=""
LOAD_PID=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [[ -n $LOAD_PID ]] && kill -KILL "$LOAD_PID" 2>/dev/null || true
  [[ -n $HAPROXY_PID ]] && kill -KILL "$HAPROXY_PID" 2>/dev/null || true
  for host in "${!PIDS[@]}"; do
    kill -KILL -- "-${PIDS[$host]}" 2>/dev/null || true   # the host's whole process group
  done
  wait 2>/dev/null || true
  for ns in "$TAG-lb" "${HOSTS[@]/#/$TAG-}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  if [[ $status != 0 && -d $WORK ]]; then
    for log in "$WORK"/*.log; do [[ -f $log ]] && { echo "--- $log"; tail -n 30 "$log"; }; done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() { local ns=$1; shift; ip netns exec "$TAG-$ns" "$@"; }

say() { printf '%s cluster-test: %s\n' "$(date +%T.%N | cut -c1-12)" "$*"; }

# --- the network -------------------------------------------------------------------------------
build_network() {
  ip netns add "$TAG-lb"
  in_ns lb ip link set lo up
  in_ns lb ip link add br0 type bridge
  in_ns lb ip addr add "$LB_ADDR/24" dev br0
  in_ns lb ip link set br0 up
  local i=11
  for host in "${HOSTS[@]}"; do
    ip netns add "$TAG-$host"
    in_ns "$host" ip link set lo up
    # the pair is made with one end in each namespace: no interface ever exists on the machine
    ip link add eth0 netns "$TAG-$host" type veth peer name "v$host" netns "$TAG-lb"
    in_ns lb ip link set "v$host" master br0 up
    in_ns "$host" ip addr add "$SUBNET.$i/24" dev eth0
    in_ns "$host" ip link set eth0 up
    i=$((i + 1))
  done
}

host_addr() { case $1 in h1) echo "$SUBNET.11" ;; h2) echo "$SUBNET.12" ;; h3) echo "$SUBNET.13" ;; esac; }

# --- Peregrine on the hosts ----------------------------------------------------------------------
start_host() {
  local host=$1
  # setsid: the server leads its own process group (the SIGKILL phase kills the whole group)
  # (ip netns exec, not in_ns: a function would run in a forked shell, and $! be that shell)
  ip netns exec "$TAG-$host" setsid env CLUSTER_HOST_NAME="$host" PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT/deploy" \
    "$PYTHON" -m peregrine run cluster_app:Handler \
    --host "$(host_addr "$host")" --port $PORT --workers "$WORKERS" \
    --health-path /healthz --drain-delay "$DRAIN_DELAY" --graceful-timeout "$GRACEFUL_TIMEOUT" \
    --keep-alive-timeout 60 >>"$WORK/$host.log" 2>&1 &
  PIDS[$host]=$!
  wait_log "$host" "serving on" $(($(count_log "$host" "serving on") + 1)) 20
}

count_log() { grep -c -- "$2" "$WORK/$1.log" 2>/dev/null || true; }

# wait_log HOST TEXT COUNT SECONDS: until HOST's log holds COUNT lines containing TEXT
wait_log() {
  local host=$1 text=$2 count=$3 limit=$4 waited=0
  while (( $(count_log "$host" "$text") < count )); do
    sleep 0.05
    waited=$((waited + 1))
    if (( waited > limit * 20 )); then
      say "timeout waiting for '$text' x$count in $host.log"
      return 1
    fi
  done
}

wait_exit() {  # the host's server process has exited (it is our child: wait reaps it)
  local host=$1
  wait "${PIDS[$host]}" 2>/dev/null || true
  unset "PIDS[$host]"
}

# --- HAProxy ---------------------------------------------------------------------------------------
start_haproxy() {
  cat >"$WORK/haproxy.cfg" <<EOF
# the configuration docs/production.md describes, with this test's addresses
global
    stats socket $WORK/haproxy.sock mode 600 level admin
    maxconn 4096

defaults
    mode http
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    retries 0

frontend web
    bind $LB_ADDR:8080
    default_backend hosts

backend hosts
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    default-server check inter 200ms fall 2 rise 2
$(for h in "${HOSTS[@]}"; do echo "    server $h $(host_addr "$h"):$PORT"; done)
EOF
  haproxy -c -q -f "$WORK/haproxy.cfg"
  ip netns exec "$TAG-lb" haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
}

wait_servers() {  # wait_servers STATE HOST...
  local state=$1; shift
  "$PYTHON" "$TOOL" wait-servers "$WORK/haproxy.sock" "$state" "$@" --timeout 20
}

# --- load ------------------------------------------------------------------------------------------
start_load() {
  local phase=$1
  rm -f "$WORK/stop"
  ip netns exec "$TAG-lb" "$PYTHON" "$TOOL" load "http://$LB_ADDR:8080/" --phase "$phase" \
    --connections "$LOAD_CONNECTIONS" --rate "$LOAD_RATE" --stop-file "$WORK/stop" \
    --max-seconds 60 --out "$WORK/$phase.json" &
  LOAD_PID=$!
  sleep 1  # steady state before the deploy step
}

stop_load() {
  sleep 1  # and after it
  touch "$WORK/stop"
  wait "$LOAD_PID"
  LOAD_PID=""
}

# --- the run ----------------------------------------------------------------------------------------
started=$SECONDS
say "building namespaces $TAG-{lb,h1,h2,h3} on $SUBNET.0/24"
build_network
for host in "${HOSTS[@]}"; do start_host "$host"; done
start_haproxy
wait_servers UP "${HOSTS[@]}"
say "3 hosts up behind HAProxy $(haproxy -v | head -1 | cut -d' ' -f3); load: $LOAD_CONNECTIONS keep-alive connections, $LOAD_RATE req/s"

say "phase reload: SIGHUP to each host in turn (rolling restart of its workers)"
start_load reload
for host in "${HOSTS[@]}"; do
  done_before=$(count_log "$host" "reload complete")
  kill -HUP "${PIDS[$host]}"
  wait_log "$host" "reload complete" $((done_before + 1)) 30
  wait_servers UP "${HOSTS[@]}"
done
stop_load

say "phase sigterm: SIGTERM h2, wait for its exit, start it again"
start_load sigterm
t0=$EPOCHREALTIME
kill -TERM "${PIDS[h2]}"
wait_servers DOWN h2
wait_exit h2
say "  h2 exited $(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $t0 }")s after SIGTERM (drain delay ${DRAIN_DELAY}s)"
start_host h2
wait_servers UP "${HOSTS[@]}"
stop_load

say "phase sigkill: SIGKILL h3's process group, start it again"
start_load sigkill
kill -KILL -- "-${PIDS[h3]}"
wait_exit h3
start_host h3
wait_servers UP "${HOSTS[@]}"
stop_load

say "done in $((SECONDS - started))s"
"$PYTHON" "$TOOL" report "$WORK/reload.json" "$WORK/sigterm.json" "$WORK/sigkill.json" \
  --must-not-fail reload sigterm
