#!/usr/bin/env bash
# Peregrine benchmark suite: the one command.
#
#   bench/run.sh            full run (~12 minutes), all servers, all cases
#   bench/run.sh --quick    3 s per case, for iteration
#   bench/run.sh --help     options (cases, servers, durations; env vars too)
#
# On a fresh machine it first installs what it needs:
#   - Debian packages: wrk (load generator), nginx and h2o (native references),
#     libuv1 (socketify's native library links to it), util-linux (taskset)
#   - bench/.venv: the Python peers from bench/requirements.txt, plus Peregrine
#     itself from this checkout (pip install -e), kept apart from the project's venv.
# Later runs skip whatever is already there.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH")"
VENV="$BENCH/.venv"
PYTHON="${PYTHON:-python3}"

# --- system packages -------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
command -v h2o >/dev/null || missing+=(h2o)
command -v taskset >/dev/null || missing+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libuv\.so\.1' || missing+=(libuv1)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # Service start-up of the nginx/h2o packages is irrelevant here: the suite runs
    # its own instances with generated configs on free ports.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"  # nginx lives in /usr/sbin

# --- benchmark venv --------------------------------------------------------
# Reinstall only when the requirements or Peregrine's packaging changed.
stamp="$VENV/.bench-stamp"
want="$(cat "$BENCH/requirements.txt" "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bench: preparing $VENV (log: $VENV/install.log)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    # Build back-ends are chatty; keep their output in a log and show it on failure.
    if ! {
        "$VENV/bin/python" -m pip install --upgrade pip &&
        "$VENV/bin/python" -m pip install -r "$BENCH/requirements.txt" &&
        "$VENV/bin/python" -m pip install -e "$REPO"
    } > "$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "bench: installing the benchmark venv failed (full log: $VENV/install.log)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi

# Each idle-memory connection is a file descriptor in the server and in the client.
# peregrine-server (a WSGI peer) in a venv of its own: its package is also named `peregrine`.
# Optional: where it does not install, the benchmark reports it as unavailable.
PSVENV="$BENCH/.venv-peregrine-server"
psstamp="$PSVENV/.bench-stamp"
pswant="$(sha256sum < "$BENCH/requirements-peregrine-server.txt" | cut -d' ' -f1)"
if [ ! -x "$PSVENV/bin/python" ] || [ "$(cat "$psstamp" 2>/dev/null)" != "$pswant" ]; then
    echo "bench: preparing $PSVENV (log: $PSVENV/install.log)"
    [ -x "$PSVENV/bin/python" ] || "$PYTHON" -m venv "$PSVENV"
    if "$PSVENV/bin/python" -m pip install -r "$BENCH/requirements-peregrine-server.txt" \
        > "$PSVENV/install.log" 2>&1; then
        echo "$pswant" > "$psstamp"
    else
        echo "bench: peregrine-server did not install (see $PSVENV/install.log); it is skipped" >&2
    fi
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec "$VENV/bin/python" "$BENCH/run.py" "$@"
