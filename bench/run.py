#!/usr/bin/env python3
"""Peregrine benchmark suite: every server, every case, one machine, one run.

Run it through bench/run.sh (which installs wrk, nginx, h2o and the benchmark
venv first). This file only orchestrates:

  for each case:                      (case-outer, so the numbers that are compared
      for each server:                 with each other are measured minutes apart at most)
          start the server pinned to SERVER_CPU (taskset)
          wait until it answers, check it answers the expected bytes
          warm up, then measure with wrk pinned to LOAD_CPU
          stop it

and then writes bench/results/latest.{md,json} and bench/results/bench.png.

Only 127.0.0.1 is ever used as a target.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import importlib.metadata as md
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
LOGS = RESULTS / "tmp"  # raw logs of the last run (git-ignored)
PY = sys.executable  # run.sh runs us with the bench venv's python; servers use the same one

sys.path.insert(0, str(APPS))
from common import (  # noqa: E402
    POST_SIZE,
    SEED_BODY,
    SMALL_BODY,
    STATIC_NAME,
    STATIC_SIZE,
    STATIC_SMALL_NAME,
    STATIC_SMALL_SIZE,
)

HOST = "127.0.0.1"  # the only target this suite ever talks to


# --------------------------------------------------------------------------------------
# Settings (environment variables, overridable by flags)
# --------------------------------------------------------------------------------------


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


@dataclass
class Settings:
    duration: float  # seconds of measurement per HTTP case and server
    warmup: float  # seconds of load before measuring (discarded)
    ws_duration: float
    mem_conns: int
    server_cpu: str
    load_cpu: str
    cases: list[str] | None
    servers: list[str] | None
    quick: bool
    update_readme: bool
    quiet_max: float  # wait at most this long for the machine to calm down before a measurement
    quiet_budget: float  # ... and at most this long in all, so a busy machine cannot stretch a run
    quiet_cpu: float  # "calm" = other processes use less than this many CPUs
    rounds: int = 1  # each case measured this many times, servers interleaved; median kept


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    title: str
    kind: str  # "http" (wrk), "ws" (bench/wsload.py) or "mem" (bench/idleconns.py)
    path: str = "/"
    method: str = "GET"
    conns: int = 100
    body: bytes | None = None  # expected response body (checked before measuring)
    content_type: str = "text/plain"
    size: int | None = None  # expected body length, when `body` is not known in advance
    app: str = "asgi_app:app"  # what the ASGI servers serve (MODULE:ATTR in bench/apps/)
    ours: str = "peregrine"  # the Peregrine row the peers are compared with in this case


CASES = [
    Case("seed-100", "GET 6150 B, keep-alive, 100 conns", "http", "/", conns=100, body=SEED_BODY),
    Case(
        "seed-1000", "GET 6150 B, keep-alive, 1000 conns", "http", "/", conns=1000, body=SEED_BODY
    ),
    Case(
        "small-100", "GET 6 B, keep-alive, 100 conns", "http", "/small", conns=100, body=SMALL_BODY
    ),
    Case(
        "post4k-100", "POST 4 KiB body, 100 conns", "http", "/upload", "POST", 100, body=SMALL_BODY
    ),
    Case(
        "static1mb-100",
        "GET static 1 MiB file, 100 conns",
        "http",
        f"/static/{STATIC_NAME}",
        conns=100,
        body=None,  # checked by length (the file is made at start-up)
        content_type="application/octet-stream",
        size=STATIC_SIZE,
    ),
    Case(
        "static6k-100",
        "GET static 6 KB file, 100 conns",
        "http",
        f"/static/{STATIC_SMALL_NAME}",
        conns=100,
        content_type="application/octet-stream",
        size=STATIC_SMALL_SIZE,
    ),
    # WSGI: the same seed body from a raw WSGI app, a Flask endpoint and a Django view
    Case("wsgi-100", "WSGI app, GET 6150 B, 100 conns", "http", "/", conns=100, body=SEED_BODY),
    Case("wsgi-1000", "WSGI app, GET 6150 B, 1000 conns", "http", "/", conns=1000, body=SEED_BODY),
    Case("flask-100", "Flask, GET 6150 B, 100 conns", "http", "/", conns=100, body=SEED_BODY),
    Case("django-100", "Django, GET 6150 B, 100 conns", "http", "/", conns=100, body=SEED_BODY),
    Case("ws-echo", "WebSocket echo, 32 B text, 100 conns", "ws", "/ws", conns=100),
    Case("idle-mem", "RSS per idle keep-alive connection", "mem", "/small"),
    # ASGI: Peregrine serving the same ASGI app as the peers (`peregrine-asgi`).
    Case(
        "asgi-seed-100",
        "raw ASGI app, GET 6150 B, 100 conns",
        "http",
        "/",
        conns=100,
        body=SEED_BODY,
        ours="peregrine-asgi",
    ),
    Case(
        "asgi-seed-1000",
        "raw ASGI app, GET 6150 B, 1000 conns",
        "http",
        "/",
        conns=1000,
        body=SEED_BODY,
        ours="peregrine-asgi",
    ),
    Case(
        "starlette-100",
        "Starlette endpoint, GET 6150 B, 100 conns",
        "http",
        "/",
        conns=100,
        body=SEED_BODY,
        app="starlette_app:app",
        ours="peregrine-asgi",
    ),
    Case(
        "fastapi-100",
        "FastAPI endpoint, GET 6150 B, 100 conns",
        "http",
        "/",
        conns=100,
        body=SEED_BODY,
        app="fastapi_app:app",
        ours="peregrine-asgi",
    ),
    Case(
        "asgi-ws-echo",
        "raw ASGI app, WebSocket echo, 32 B text, 100 conns",
        "ws",
        "/ws",
        conns=100,
        ours="peregrine-asgi",
    ),
]
CASE_BY_ID = {c.id: c for c in CASES}


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a server's command line may need: temp dir, the static dir, probes."""

    tmp: Path
    static_dir: Path
    peregrine_opts: set[str] = field(default_factory=set)  # options `peregrine run --help` lists


@dataclass
class Server:
    name: str
    label: str
    cases: set[str]  # case ids it takes part in
    command: Callable[[Ctx, Case, int], list[str]]
    available: Callable[[], str | None] = lambda: None  # None = usable, else the reason not
    native: bool = False  # nginx/h2o: not Python


def _py_has(module: str, attr: str | None = None) -> str | None:
    """None if `module` (and `attr` in it) imports in the bench venv, else the reason."""
    code = f"import {module}" + (f"; {module}.{attr}" if attr else "")
    try:
        out = subprocess.run([PY, "-c", code], cwd=APPS, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return f"importing {module} timed out"
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"`{code}` failed: {last}"
    return None


def peregrine_available() -> str | None:
    why = _py_has("peregrine", "Server")
    if why:
        return why
    if not (REPO / "src" / "peregrine" / "cli.py").exists():
        return "src/peregrine/cli.py does not exist yet"
    return None


def peregrine_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    cmd = [PY, "-m", "peregrine", "run", "peregrine_app:Handler"]
    cmd += ["--host", HOST, "--port", str(port), "--workers", "1"]
    for opt, value in (("--loop", "uvloop"), ("--backlog", "4096"), ("--access-log", "false")):
        if opt in ctx.peregrine_opts:
            cmd += [opt, value]
    if case.kind == "mem":
        # Idle connections must outlive the measurement (default idle timeout is 5 s),
        # and the per-worker connection cap must let 10,000 in.
        if "--keep-alive-timeout" in ctx.peregrine_opts:
            cmd += ["--keep-alive-timeout", "300"]
        for opt in ("--max-connections", "--connection-limit", "--max-conns"):
            if opt in ctx.peregrine_opts:
                cmd += [opt, "100000"]
                break
    return cmd


def peregrine_asgi_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    cmd = [PY, "-m", "peregrine", "run", case.app, "--interface", "asgi", "--lifespan", "off"]
    cmd += ["--host", HOST, "--port", str(port), "--workers", "1"]
    cmd += ["--loop", "uvloop", "--backlog", "4096", "--access-log", "false"]
    return cmd


def uvicorn_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    cmd = [PY, "-m", "uvicorn", case.app, "--host", HOST, "--port", str(port)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--ws", "websockets"]
    cmd += ["--no-access-log", "--log-level", "warning", "--lifespan", "off", "--backlog", "4096"]
    if case.kind == "mem":
        cmd += ["--timeout-keep-alive", "300"]
    return cmd


def granian_cmd(interface: str, app: str | None) -> Callable[[Ctx, Case, int], list[str]]:
    def build(ctx: Ctx, case: Case, port: int) -> list[str]:
        # One worker process with one runtime thread: one core's worth of granian.
        # (granian forks its worker; taskset's mask is inherited.) For the idle-memory
        # case its concurrency cap (--backpressure, default backlog/workers) is lifted.
        extra = ["--backpressure", "100000"] if case.kind == "mem" else []
        return [
            PY, "-m", "granian", app or case.app, "--interface", interface,
            "--host", HOST, "--port", str(port), "--workers", "1",
            "--runtime-threads", "1", "--runtime-mode", "st", "--loop", "uvloop",
            "--http", "1", "--no-access-log", "--log-level", "warning", "--backlog", "4096",
            *extra,
        ]  # fmt: skip

    return build


# --- WSGI servers: the app depends on the case ---------------------------------------------

WSGI_APPS = {
    "wsgi-100": "wsgi_app:app",
    "wsgi-1000": "wsgi_app:app",
    "flask-100": "flask_app:app",
    "django-100": "django_app:application",
}
WSGI = set(WSGI_APPS)
WSGI_THREADS = "10"  # threads per worker for every threaded WSGI server (Peregrine's default)


def peregrine_wsgi_cmd(threads: str) -> Callable[[Ctx, Case, int], list[str]]:
    def build(ctx: Ctx, case: Case, port: int) -> list[str]:
        return [
            PY, "-m", "peregrine", "run", WSGI_APPS[case.id], "--host", HOST, "--port", str(port),
            "--workers", "1", "--threads", threads, "--loop", "uvloop", "--backlog", "4096",
        ]  # fmt: skip

    return build


def gunicorn_cmd(worker_class: str) -> Callable[[Ctx, Case, int], list[str]]:
    def build(ctx: Ctx, case: Case, port: int) -> list[str]:
        cmd = [
            PY, "-m", "gunicorn", WSGI_APPS[case.id], "--bind", f"{HOST}:{port}",
            "--workers", "1", "--worker-class", worker_class, "--backlog", "4096",
            "--log-level", "warning",
        ]  # fmt: skip
        if worker_class == "gthread":
            cmd += ["--threads", WSGI_THREADS, "--worker-connections", "2000"]
        return cmd

    return build


def granian_wsgi_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    # the same number of application threads as the others (its default allows 2048, and a
    # quick run of the Flask case then answered nothing in 3 s)
    cmd = granian_cmd("wsgi", WSGI_APPS[case.id])(ctx, case, port)
    return cmd + ["--blocking-threads", WSGI_THREADS]


def uvicorn_wsgi_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    return [
        PY, "-m", "uvicorn", WSGI_APPS[case.id], "--interface", "wsgi", "--host", HOST,
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip


# The Swift-based `peregrine-server` package (no relation to this project) ships a top-level
# package named `peregrine`, so run.sh installs it in a venv of its own.
PSERVER_PY = BENCH / ".venv-peregrine-server" / "bin" / "python"


def peregrine_server_available() -> str | None:
    if not PSERVER_PY.exists():
        return f"{PSERVER_PY.parent.parent} does not exist (run.sh makes it)"
    out = subprocess.run(
        [str(PSERVER_PY), "-c", "import peregrine._native"], capture_output=True, timeout=60
    )
    return None if out.returncode == 0 else "peregrine-server's native module does not import"


def peregrine_server_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    # its default: one application thread per worker (--wsgi-threads 1)
    return [
        str(PSERVER_PY), "-m", "peregrine", WSGI_APPS[case.id], "--protocol", "wsgi",
        "--host", HOST, "--port", str(port), "--workers", "1", "--backlog", "4096",
    ]  # fmt: skip


def socketify_wsgi_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    return [
        PY, "-m", "socketify", WSGI_APPS[case.id], "--interface", "wsgi",
        "--host", HOST, "--port", str(port), "--disable-listen-log", "true",
    ]  # fmt: skip


def hypercorn_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    # One asyncio worker on uvloop, h11 for HTTP/1.1; no access log unless asked for.
    return [
        PY, "-m", "hypercorn", case.app, "--bind", f"{HOST}:{port}", "--workers", "1",
        "--worker-class", "uvloop", "--backlog", "4096", "--log-level", "warning",
    ]  # fmt: skip


def peregrine_server_asgi_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    # One worker process; HTTP/1.1 only as for the other servers (h2c off); no keepalive
    # pings; no access log (its default).
    return [
        str(PSERVER_PY), "-m", "peregrine", case.app, "--protocol", "asgi",
        "--host", HOST, "--port", str(port), "--workers", "1", "--backlog", "4096",
        "--no-lifespan", "--no-http2", "--ws-ping-interval", "0", "--log-level", "warning",
    ]  # fmt: skip


def floor_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    # The floor does not route: it is started with the body of the case at hand.
    size = len(SMALL_BODY) if case.path in ("/small", "/upload") else len(SEED_BODY)
    return [PY, "floor.py", str(port), str(size)]


def ladder_cmd(rung: str) -> Callable[[Ctx, Case, int], list[str]]:
    def build(ctx: Ctx, case: Case, port: int) -> list[str]:
        size = len(SMALL_BODY) if case.path == "/small" else len(SEED_BODY)
        return [PY, "ladder.py", str(port), rung, str(size)]

    return build


def nginx_available() -> str | None:
    return (
        None if shutil.which("nginx") or Path("/usr/sbin/nginx").exists() else "nginx not installed"
    )


def h2o_available() -> str | None:
    return None if shutil.which("h2o") else "h2o not installed"


def nginx_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    conf = write_nginx_conf(ctx, port)
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(ctx.tmp)]


def h2o_cmd(ctx: Ctx, case: Case, port: int) -> list[str]:
    conf = write_h2o_conf(ctx, port)
    return [shutil.which("h2o") or "h2o", "-c", str(conf)]


HTTP_BASIC = {"seed-100", "seed-1000", "small-100", "post4k-100"}
#: the ASGI cases: every ASGI server serves the same app (Case.app) in each
ASGI = {"asgi-seed-100", "asgi-seed-1000", "starlette-100", "fastapi-100", "asgi-ws-echo"}
STATIC = {"static1mb-100", "static6k-100"}
LADDER = {"seed-100", "small-100"}  # GET only: the rungs answer one canned route each
SERVERS = [
    Server(
        "peregrine", "Peregrine (native)", HTTP_BASIC | STATIC | {"ws-echo", "idle-mem"},
        peregrine_cmd, peregrine_available,
    ),
    Server(
        "peregrine-asgi", "Peregrine (ASGI)", ASGI, peregrine_asgi_cmd,
        lambda: peregrine_available() or _py_has("peregrine.asgi", "AsgiHandler"),
    ),
    # the same servers from the pure-Python modules (the compiled build's fallback)
    Server(
        "peregrine-pure", "Peregrine (native, pure Python)", HTTP_BASIC | STATIC | {"idle-mem"},
        lambda ctx, case, port: ["env", "PEREGRINE_PURE_PYTHON=1", *peregrine_cmd(ctx, case, port)],
        peregrine_available,
    ),
    Server(
        "peregrine-asgi-pure", "Peregrine (ASGI, pure Python)", ASGI,
        lambda ctx, case, port: ["env", "PEREGRINE_PURE_PYTHON=1", *peregrine_asgi_cmd(ctx, case, port)],
        lambda: peregrine_available() or _py_has("peregrine.asgi", "AsgiHandler"),
    ),
    Server("uvicorn", "uvicorn (httptools, uvloop)", HTTP_BASIC | ASGI | {"ws-echo", "idle-mem"}, uvicorn_cmd),
    Server("granian-rsgi", "granian RSGI", HTTP_BASIC | {"ws-echo", "idle-mem"}, granian_cmd("rsgi", "rsgi_app:app")),
    Server("granian-asgi", "granian ASGI", HTTP_BASIC | ASGI, granian_cmd("asgi", None)),
    Server("hypercorn", "hypercorn (uvloop)", ASGI, hypercorn_cmd, lambda: _py_has("hypercorn")),
    Server(
        "peregrine-server-asgi", "peregrine-server ASGI (Swift)", ASGI, peregrine_server_asgi_cmd,
        peregrine_server_available,
    ),
    Server(
        "socketify-asgi", "socketify ASGI", ASGI,
        lambda ctx, case, port: [PY, "socketify_asgi.py", str(port), case.app],
        lambda: _py_has("socketify"),
    ),
    Server(
        "socketify", "socketify", HTTP_BASIC | {"ws-echo"},
        lambda ctx, case, port: [PY, "socketify_app.py", str(port)],
        lambda: _py_has("socketify"),
    ),
    Server(
        "aiohttp", "aiohttp (web.Server, uvloop)", HTTP_BASIC | {"ws-echo", "idle-mem"},
        lambda ctx, case, port: [PY, "aiohttp_app.py", str(port)],
    ),
    Server(
        "nginx", "nginx", HTTP_BASIC | STATIC | {"idle-mem"}, nginx_cmd, nginx_available,
        native=True,
    ),
    # h2o serves files only without mruby scripting, so it sits out the POST case.
    Server(
        "h2o", "h2o", {"seed-100", "seed-1000", "small-100", "idle-mem"} | STATIC,
        h2o_cmd, h2o_available, native=True,
    ),
    Server("peregrine-wsgi", "Peregrine WSGI (--threads 10)", WSGI, peregrine_wsgi_cmd(WSGI_THREADS), peregrine_available),
    Server("peregrine-wsgi-t0", "Peregrine WSGI (--threads 0)", WSGI, peregrine_wsgi_cmd("0"), peregrine_available),
    Server("gunicorn-sync", "gunicorn sync", WSGI, gunicorn_cmd("sync"), lambda: _py_has("gunicorn")),
    Server("gunicorn-gthread", "gunicorn gthread (10 threads)", WSGI, gunicorn_cmd("gthread"), lambda: _py_has("gunicorn")),
    Server("granian-wsgi", "granian WSGI", WSGI, granian_wsgi_cmd),
    Server("uvicorn-wsgi", "uvicorn --interface wsgi", WSGI, uvicorn_wsgi_cmd),
    Server("peregrine-server-wsgi", "peregrine-server WSGI (Swift)", WSGI, peregrine_server_cmd, peregrine_server_available),
    Server("socketify-wsgi", "socketify WSGI", WSGI, socketify_wsgi_cmd, lambda: _py_has("socketify")),
    Server("floor", "floor (bare uvloop)", HTTP_BASIC | {"idle-mem"}, floor_cmd),
    # The ladder from the floor up to Peregrine (apps/ladder.py): measurements, not peers.
    Server("ladder-llhttp", "ladder: floor + llhttp", LADDER, ladder_cmd("llhttp"), peregrine_available),
    Server("ladder-api", "ladder: + Peregrine API", LADDER, ladder_cmd("api"), peregrine_available),
]  # fmt: skip
SERVER_BY_NAME = {s.name: s for s in SERVERS}


# --------------------------------------------------------------------------------------
# Native servers' configs (generated into the run's temp dir)
# --------------------------------------------------------------------------------------


def nginx_quote(data: bytes) -> str:
    """An nginx double-quoted string holding `data` (printable text + newlines)."""
    text = data.decode()
    assert re.fullmatch(r"[a-z0-9 \n]*", text, re.I), "body must stay config-safe"
    return '"' + text.replace("\n", "\\n") + '"'


def write_nginx_conf(ctx: Ctx, port: int) -> Path:
    d = ctx.tmp / "nginx"
    d.mkdir(exist_ok=True)
    # nginx's config reader caps one token at ~4 KB, so the 6150-byte body is
    # split into map constants (evaluated once per request, no copying) and joined
    # by `return`.
    pieces = [SEED_BODY[i : i + 2000] for i in range(0, len(SEED_BODY), 2000)]
    maps = "\n".join(
        f"    map $uri $seed{i} {{ default {nginx_quote(p)}; }}" for i, p in enumerate(pieces)
    )
    seed_ref = "".join(f"${{seed{i}}}" for i in range(len(pieces)))
    conf = f"""# generated by bench/run.py: one worker, no logs, same bodies as the Python apps
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 30000;
events {{
    worker_connections 20000;
}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # Keep connections open as long as the Python servers do (no per-connection request cap).
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    sendfile on;
    tcp_nopush on;
    default_type text/plain;
    server_tokens off;
{maps}
    server {{
        listen {HOST}:{port} backlog=4096;
        location = / {{ return 200 "{seed_ref}"; }}
        location = /small {{ return 200 {nginx_quote(SMALL_BODY)}; }}
        # `return` reads and discards the request body before answering.
        location = /upload {{ return 200 {nginx_quote(SMALL_BODY)}; }}
        location /static/ {{
            alias {ctx.static_dir}/;
            default_type application/octet-stream;
            etag off;
        }}
    }}
}}
"""
    path = d / "nginx.conf"
    path.write_text(conf)
    return path


def write_h2o_conf(ctx: Ctx, port: int) -> Path:
    d = ctx.tmp / "h2o"
    www = d / "www"
    www.mkdir(parents=True, exist_ok=True)
    # h2o (without mruby) answers from files; bodies are written as files with no
    # extension so the default type (text/plain) applies.
    (www / "seed").write_bytes(SEED_BODY)
    (www / "small").write_bytes(SMALL_BODY)
    conf = f"""# generated by bench/run.py: one thread, no access log
num-threads: 1
pid-file: {d}/h2o.pid
error-log: {d}/error.log
user: root
http1-request-timeout: 300
max-connections: 30000      # default 1024 would stall the idle-memory case
file.etag: OFF
file.mime.setdefaulttype: text/plain
file.mime.addtypes:
  application/octet-stream: .bin
listen:
  host: {HOST}
  port: {port}
hosts:
  default:
    paths:
      /:
        file.file: {www}/seed
      /small:
        file.file: {www}/small
      /static:
        file.dir: {ctx.static_dir}
"""
    path = d / "h2o.conf"
    path.write_text(conf)
    return path


# --------------------------------------------------------------------------------------
# Process handling
# --------------------------------------------------------------------------------------


def raise_nofile() -> None:
    """preexec for every child: lift the open-files limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Running:
    """A server process group started pinned to one CPU."""

    def __init__(self, server: Server, cmd: list[str], cpu: str, log: Path, env: dict):
        self.server = server
        self.log = log
        self._logf = open(log, "wb")
        # taskset's CPU mask is inherited by everything the server forks (granian's
        # worker, nginx's worker), so the whole server lives on one core.
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *cmd],
            cwd=APPS,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches its children
            preexec_fn=raise_nofile,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server's process and its descendants (nginx/granian fork workers)."""
        import psutil

        try:
            p = psutil.Process(self.proc.pid)
            return [p.pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        import psutil

        total = 0
        for pid in self.pids():
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        return total

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for pid in self.pids():
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        # Only our own process group, by its id.
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._logf.close()

    def log_tail(self, n: int = 6) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])


def http_get(port: int, case: Case, timeout: float = 2.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        body = b"a" * POST_SIZE if case.method == "POST" else None
        headers = {"Content-Type": "application/octet-stream"} if body else {}
        conn.request(
            case.method, case.path if case.kind == "http" else "/", body=body, headers=headers
        )
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_ready(run: Running, port: int, timeout: float = 30.0) -> str | None:
    """None once the server answers GET /small (any status), else why not."""
    deadline = time.monotonic() + timeout
    probe = Case("probe", "", "http", "/small")
    last = ""
    while time.monotonic() < deadline:
        if not run.alive():
            return f"exited with {run.proc.returncode}: {run.log_tail()}"
        try:
            http_get(port, probe, timeout=1.0)
            return None
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
            time.sleep(0.1)
    return f"not answering after {timeout:.0f} s ({last}): {run.log_tail()}"


def check_answer(port: int, case: Case) -> str | None:
    """None if the server answers the case's request with the expected bytes."""
    try:
        status, headers, body = http_get(port, case, timeout=5.0)
    except (OSError, http.client.HTTPException) as e:
        return f"probe failed: {e!r}"
    if status != 200:
        return f"status {status} for {case.method} {case.path}"
    ctype = headers.get("content-type", "")
    if ctype.split(";")[0].strip() != case.content_type:
        return f"Content-Type {ctype!r}, expected {case.content_type!r}"
    if case.body is not None and body != case.body:
        return f"body differs ({len(body)} bytes, expected {len(case.body)})"
    if case.size is not None and len(body) != case.size:
        return f"body is {len(body)} bytes, expected {case.size}"
    return None


# --------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------

# wrk calls done() once at the end; it prints exact counters as one JSON line that
# complements the text summary (bytes per response in particular).
WRK_DONE = r"""
done = function(summary, latency, requests)
  io.write(string.format(
    "BENCHJSON {\"requests\":%d,\"bytes\":%d,\"duration_us\":%d,\"connect\":%d,\"read\":%d," ..
    "\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d}\n",
    summary.requests, summary.bytes, summary.duration, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(case: Case, tmp: Path) -> Path:
    lua = ""
    if case.method == "POST":
        lua += (
            f'wrk.method = "POST"\n'
            f'wrk.body = string.rep("a", {POST_SIZE})\n'
            f'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        )
    path = tmp / f"wrk-{case.id}.lua"
    path.write_text(lua + WRK_DONE)
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"bad latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    """Parse wrk's --latency text output into req/s, p50/p90/p99 (ms) and error counts."""
    res: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct, key in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[key] = _ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else 0
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors.update(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=False)
        )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors["non2xx"] = int(m.group(1))
    res["errors"] = errors
    res["errors_total"] = sum(errors.values())
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if m:
        exact = json.loads(m.group(1))
        if exact["requests"]:
            res["bytes_per_response"] = round(exact["bytes"] / exact["requests"], 1)
    return res


def run_wrk(
    case: Case, port: int, seconds: float, settings: Settings, script: Path
) -> tuple[dict, str]:
    cmd = [
        "taskset", "-c", settings.load_cpu, "wrk", "-t1", f"-c{case.conns}",
        f"-d{max(1, round(seconds))}s", "--timeout", "5s", "--latency", "-s", str(script),
        f"http://{HOST}:{port}{case.path}",
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, preexec_fn=raise_nofile, timeout=seconds + 60
    )
    text = out.stdout + out.stderr
    return parse_wrk(text), text


def _proc_stat() -> tuple[float, float]:
    """(process + steal CPU-seconds, interrupt CPU-seconds) of all CPUs since boot."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + steal) / tick, (irq + softirq) / tick


def machine_busy_cpu() -> float:
    """CPU-seconds all CPUs spent busy since boot, interrupts included."""
    return sum(_proc_stat())


class CpuWindow:
    """CPU use during a measurement: the server's, the load generator's, interrupts, and others'.

    Loopback traffic is processed by the kernel largely in softirq context, which is
    charged to no process: it is reported apart ("irq") so that "other" means other
    processes (and hypervisor steal) only.
    """

    def __init__(self, run: Running):
        self.run = run
        self.server0, self.load0 = run.cpu_seconds(), children_cpu()
        self.proc0, self.irq0 = _proc_stat()
        self.t0 = time.monotonic()

    def finish(self, res: dict) -> float:
        wall = time.monotonic() - self.t0
        server = self.run.cpu_seconds() - self.server0
        load = children_cpu() - self.load0
        proc, irq = _proc_stat()
        res["server_cpu"] = round(100 * server / wall)
        res["load_cpu"] = round(100 * load / wall)
        res["irq_cpu"] = round(100 * (irq - self.irq0) / wall)
        res["other_cpu"] = max(0, round(100 * (proc - self.proc0 - server - load) / wall))
        return server


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------------------


def server_env(ctx: Ctx) -> dict:
    env = dict(os.environ)
    env["BENCH_STATIC_DIR"] = str(ctx.static_dir)
    env["PYTHONPATH"] = str(APPS)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONDEVMODE", None)  # dev mode would slow every Python server down
    return env


def measure_http(run: Running, port: int, case: Case, s: Settings, ctx: Ctx, log: Path) -> dict:
    script = wrk_script(case, ctx.tmp)
    if s.warmup > 0:
        run_wrk(case, port, s.warmup, s, script)
    window = CpuWindow(run)
    res, text = run_wrk(case, port, s.duration, s, script)
    # CPU use over the measurement: ~100% for the server means it was the bottleneck;
    # wrk near 100% means the number is bounded by the load generator instead; a large
    # "other" means other jobs shared the machine and the row is noisy.
    server_cpu = window.finish(res)
    # Requests per CPU-second of the server: less sensitive to other jobs stealing the
    # server's core than req/s (kernel network work is only partly charged to it).
    if server_cpu > 0:
        res["req_per_cpu_s"] = round(res["requests"] / server_cpu)
    log.write_text(text)
    if not res["requests"] or res["p50_ms"] is None:
        first = (text.strip().splitlines() or ["no output"])[0]
        return {"error": f"wrk got no responses: {first}"}
    if not run.alive():
        res["note"] = f"server died during the run: {run.log_tail()}"
    return res


def measure_ws(run: Running, port: int, case: Case, s: Settings, log: Path) -> dict:
    window = CpuWindow(run)
    cmd = [
        "taskset", "-c", s.load_cpu, PY, str(BENCH / "wsload.py"), "--port", str(port),
        "--path", case.path, "--conns", str(case.conns), "--duration", str(s.ws_duration),
        "--warmup", str(s.warmup),
    ]  # fmt: skip
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        preexec_fn=raise_nofile,
        timeout=s.ws_duration + s.warmup + 60,
    )
    log.write_text(out.stdout + out.stderr)
    m = re.search(r"^WSJSON (\{.*\})$", out.stdout, re.M)
    if not m:
        return {
            "error": f"ws client failed (exit {out.returncode}): {(out.stderr.strip().splitlines() or ['?'])[-1]}"
        }
    res = json.loads(m.group(1))
    if not res["messages"]:
        return {"error": "no message was echoed back (handshake succeeded)"}
    window.finish(res)  # over the client's whole life, warm-up included
    return res


def measure_mem(run: Running, port: int, case: Case, s: Settings, log: Path) -> dict:
    """RSS of the server (all its processes) before and with N idle keep-alive connections."""
    time.sleep(0.5)
    base = run.rss()
    cmd = [
        PY, str(BENCH / "idleconns.py"), "--port", str(port), "--path", case.path,
        "--conns", str(s.mem_conns),
    ]  # fmt: skip
    client = subprocess.Popen(
        ["taskset", "-c", s.load_cpu, *cmd],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=raise_nofile,
    )
    res: dict = {"base_rss_mb": round(base / 2**20, 1)}

    def readline(timeout: float) -> str:
        # Never hang on a server that stops answering: give up after `timeout`.
        ready, _, _ = select.select([client.stdout], [], [], timeout)
        return client.stdout.readline() if ready else ""

    try:
        line = readline(180)  # "READY opened=N failed=M" once all requests answered
        m = re.match(r"READY opened=(\d+) failed=(\d+)", line or "")
        if not m:
            client.kill()
            err = client.stderr.read().strip().splitlines()
            return {
                "error": f"idle client gave no READY line in time ({line.strip()!r} {err[-1:]})"
            }
        time.sleep(1.0)  # let the server settle (buffers freed after the response)
        loaded = run.rss()
        client.stdin.write("check\n")
        client.stdin.flush()
        held_line = readline(30)  # "HELD n": still open now, after measuring
        m2 = re.match(r"HELD (\d+)", held_line or "")
        held = int(m2.group(1)) if m2 else 0
        res.update(
            requested=s.mem_conns,
            opened=int(m.group(1)),
            failed=int(m.group(2)),
            held=held,
            loaded_rss_mb=round(loaded / 2**20, 1),
            kb_per_conn=round((loaded - base) / 1024 / held, 2) if held else None,
        )
        client.stdin.close()
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    log.write_text(json.dumps(res, indent=2))
    return res


def wait_quiet(s: Settings) -> float:
    """Wait (up to s.quiet_max seconds) until the rest of the machine is nearly idle.

    The machine may be shared (tests, other jobs); starting a measurement while
    something else burns CPU on the server's or wrk's core would skew that row.
    Returns the seconds waited. The server under test is idle meanwhile, so
    whatever is busy is someone else.
    """
    t0 = time.monotonic()
    limit = min(s.quiet_max, s.quiet_budget)
    while True:
        b0 = machine_busy_cpu()
        time.sleep(0.5)
        waited = time.monotonic() - t0
        if (machine_busy_cpu() - b0) / 0.5 < s.quiet_cpu or waited >= limit:
            s.quiet_budget = max(0.0, s.quiet_budget - waited)
            return round(waited, 1)


def run_one(server: Server, case: Case, s: Settings, ctx: Ctx) -> dict:
    port = free_port()
    cmd = server.command(ctx, case, port)
    tag = f"{case.id}.{server.name}"
    run = Running(server, cmd, s.server_cpu, LOGS / f"{tag}.server.log", server_env(ctx))
    try:
        why = wait_ready(run, port)
        if why:
            return {"error": f"did not start: {why}"}
        if case.kind in ("http", "mem"):
            probe = (
                case if case.kind == "http" else Case("p", "", "http", "/small", body=SMALL_BODY)
            )
            why = check_answer(port, probe)
            if why:
                return {"error": f"wrong answer: {why}"}
        waited = wait_quiet(s) if case.kind in ("http", "ws") else 0.0
        if case.kind == "http":
            res = measure_http(run, port, case, s, ctx, LOGS / f"{tag}.wrk.txt")
        elif case.kind == "ws":
            res = measure_ws(run, port, case, s, LOGS / f"{tag}.ws.txt")
        else:
            res = measure_mem(run, port, case, s, LOGS / f"{tag}.mem.json")
        if waited >= 1:
            res["waited_for_quiet_s"] = waited
        return res
    finally:
        run.stop()


def summarize(case: Case, res: dict) -> str:
    if "error" in res:
        return f"ERROR {res['error'][:160]}"
    if "skipped" in res:
        return f"skipped ({res['skipped']})"
    if case.kind == "http":
        return (
            f"{res['rps']:>10,.0f} req/s  p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
            f"errors {res['errors_total']}  cpu srv {res['server_cpu']}% wrk {res['load_cpu']}% "
            f"irq {res['irq_cpu']}% other {res['other_cpu']}%"
        )
    if case.kind == "ws":
        return (
            f"{res['msgs_per_s']:>10,.0f} msg/s  errors {res.get('errors', 0)}  cpu srv {res['server_cpu']}% "
            f"client {res['load_cpu']}% irq {res['irq_cpu']}% other {res['other_cpu']}%"
        )
    return (
        f"{res.get('kb_per_conn')} KB/conn  ({res['base_rss_mb']} -> {res['loaded_rss_mb']} MB, "
        f"held {res['held']}/{res.get('requested', res['opened'])})"
    )


# --------------------------------------------------------------------------------------
# Environment description
# --------------------------------------------------------------------------------------


def _cmd_version(cmd: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "?"


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for dist in (
        "peregrine",
        "uvloop",
        "httptools",
        "uvicorn",
        "granian",
        "socketify",
        "aiohttp",
        "websockets",
        "hypercorn",
        "starlette",
        "fastapi",
    ):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    versions["peregrine-server"] = _cmd_version(
        [str(PSERVER_PY), "-m", "peregrine", "--version"], r"(\d+\.\d+\.\d+)"
    )
    versions["nginx"] = _cmd_version(["nginx", "-v"], r"nginx/(\S+)")
    versions["h2o"] = _cmd_version(["h2o", "--version"], r"h2o version (\S+)")
    versions["wrk"] = _cmd_version(["wrk", "-v"], r"wrk (\S+)")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "os": _os_name(),
        "peregrine_commit": (commit or "no commit yet")
        + (" + uncommitted changes in src/" if dirty else ""),
        "versions": versions,
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def median_round(case: Case, rounds: list[dict]) -> dict:
    """The round with the median headline number (the lower middle one for an even count).

    Interleaving servers over several rounds spreads the machine's slow spells over all of
    them; the median round drops the spells. The headline numbers of every round are kept in
    ``rounds`` for the record.
    """
    from report import headline  # noqa: E402 (bench/report.py, as in main)

    measured = sorted(
        (r for r in rounds if headline(case, r) is not None), key=lambda r: headline(case, r)
    )
    if not measured:
        return rounds[0]
    chosen = dict(measured[(len(measured) - 1) // 2])
    if len(rounds) > 1:
        chosen["rounds"] = [headline(case, r) for r in rounds]
    return chosen


def parse_args() -> Settings:
    p = argparse.ArgumentParser(
        description="Run the Peregrine benchmark suite (see bench/README.md).",
        epilog="Environment: BENCH_DURATION, BENCH_WARMUP, BENCH_WS_DURATION, BENCH_MEM_CONNS, "
        "BENCH_SERVER_CPU, BENCH_LOAD_CPU, BENCH_CASES, BENCH_SERVERS (comma lists), "
        "BENCH_QUIET_MAX, BENCH_QUIET_BUDGET, BENCH_QUIET_CPU, BENCH_ROUNDS.",
    )
    p.add_argument(
        "--quick", action="store_true", help="short runs (3 s per case, 1 s warm-up) for iteration"
    )
    p.add_argument("--duration", type=float, help="seconds measured per HTTP case and server")
    p.add_argument("--warmup", type=float, help="seconds of load before measuring")
    p.add_argument("--cases", help=f"comma list of case ids: {', '.join(CASE_BY_ID)}")
    p.add_argument("--servers", help=f"comma list of servers: {', '.join(SERVER_BY_NAME)}")
    p.add_argument(
        "--no-readme",
        action="store_true",
        help="do not update the results section of bench/README.md",
    )
    p.add_argument(
        "--rounds",
        type=int,
        help="measure every case this many times, servers interleaved; "
        "report each server's median round (default 1)",
    )
    a = p.parse_args()
    quick = a.quick or os.environ.get("BENCH_QUICK") == "1"
    duration = a.duration or env_float("BENCH_DURATION", 3.0 if quick else 10.0)
    warmup = a.warmup if a.warmup is not None else env_float("BENCH_WARMUP", 1.0 if quick else 2.0)
    s = Settings(
        duration=duration,
        warmup=warmup,
        ws_duration=env_float("BENCH_WS_DURATION", duration),
        mem_conns=int(env_float("BENCH_MEM_CONNS", 10000)),
        server_cpu=os.environ.get("BENCH_SERVER_CPU", "0"),
        load_cpu=os.environ.get("BENCH_LOAD_CPU", "1"),
        cases=a.cases.split(",") if a.cases else env_list("BENCH_CASES"),
        servers=a.servers.split(",") if a.servers else env_list("BENCH_SERVERS"),
        quick=quick,
        rounds=max(1, a.rounds or int(env_float("BENCH_ROUNDS", 1))),
        quiet_max=env_float("BENCH_QUIET_MAX", 10.0 if quick else 30.0),
        quiet_budget=env_float("BENCH_QUIET_BUDGET", 60.0 if quick else 180.0),
        quiet_cpu=env_float("BENCH_QUIET_CPU", 0.3),
        # Only a full run of everything replaces the table in the README.
        update_readme=not (
            a.no_readme
            or quick
            or a.cases
            or a.servers
            or env_list("BENCH_CASES")
            or env_list("BENCH_SERVERS")
        ),
    )
    for c in s.cases or []:
        if c not in CASE_BY_ID:
            p.error(f"unknown case {c!r}; known: {', '.join(CASE_BY_ID)}")
    for n in s.servers or []:
        if n not in SERVER_BY_NAME:
            p.error(f"unknown server {n!r}; known: {', '.join(SERVER_BY_NAME)}")
    return s


def main() -> int:
    s = parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the `finally` blocks stop
    # the server under test and remove the temp dir.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RESULTS.mkdir(exist_ok=True)
    if LOGS.exists():
        shutil.rmtree(LOGS)
    LOGS.mkdir()
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and wrk will share a core", file=sys.stderr)

    cases = [CASE_BY_ID[c] for c in s.cases] if s.cases else CASES
    servers = [SERVER_BY_NAME[n] for n in s.servers] if s.servers else SERVERS

    # Which servers can run at all, and which optional Peregrine features exist yet.
    unavailable = {srv.name: why for srv in servers if (why := srv.available())}
    feature_missing: dict[str, str] = {}
    if "peregrine" not in unavailable:
        if why := _py_has("peregrine.util", "DirServer"):
            for cid in STATIC:
                feature_missing[cid] = "peregrine.util.DirServer does not exist yet"
        if why := _py_has("peregrine.ws"):
            feature_missing["ws-echo"] = "peregrine.ws is not importable yet"

    tmp = Path(tempfile.mkdtemp(prefix="peregrine-bench-"))
    static_dir = tmp / "static"
    static_dir.mkdir()
    # Incompressible-looking but deterministic files: 1 MiB, and its first 6150 bytes.
    data = bytes((i * 131 + (i >> 8)) & 0xFF for i in range(STATIC_SIZE))
    (static_dir / STATIC_NAME).write_bytes(data)
    (static_dir / STATIC_SMALL_NAME).write_bytes(data[:STATIC_SMALL_SIZE])
    os.chmod(tmp, 0o755)
    ctx = Ctx(tmp=tmp, static_dir=static_dir)
    if "peregrine" not in unavailable:
        help_text = subprocess.run(
            [PY, "-m", "peregrine", "run", "--help"], cwd=APPS, capture_output=True, text=True
        ).stdout
        ctx.peregrine_opts = set(re.findall(r"--[a-z][a-z0-9-]+", help_text))

    info = machine_info()
    print(f"# Peregrine benchmark  {info['date']}  nproc={info['nproc']}  cpu={info['cpu_model']}")
    print(
        f"# server on CPU {s.server_cpu}, load on CPU {s.load_cpu}; {s.duration:g} s per case (+{s.warmup:g} s warm-up)"
    )
    for name, why in unavailable.items():
        print(f"# {name}: unavailable: {why}")
    for cid, why in feature_missing.items():
        print(f"# {cid}: peregrine skipped: {why}")

    results: dict[str, dict[str, dict]] = {}
    started = time.monotonic()
    try:
        for case in cases:
            print(f"\n== {case.id}: {case.title}", flush=True)
            rounds: dict[str, list[dict]] = {}
            for number in range(1, s.rounds + 1):
                if s.rounds > 1:
                    print(f"  -- round {number}/{s.rounds}", flush=True)
                for srv in servers:
                    if case.id not in srv.cases:
                        continue
                    if srv.name in unavailable:
                        res = {"skipped": unavailable[srv.name]}
                    elif srv.name == "peregrine" and case.id in feature_missing:
                        res = {"skipped": feature_missing[case.id]}
                    else:
                        res = run_one(srv, case, s, ctx)
                    rounds.setdefault(srv.name, []).append(res)
                    print(f"  {srv.name:<13} {summarize(case, res)}", flush=True)
            results[case.id] = {name: median_round(case, each) for name, each in rounds.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    import report  # noqa: E402 (bench/report.py: tables, ratios, chart)

    report.write_all(
        RESULTS,
        info=info,
        settings=vars(s) | {"elapsed_s": round(elapsed)},
        cases=cases,
        servers=servers,
        results=results,
        readme=BENCH / "README.md" if s.update_readme else None,
    )
    print(f"\nwrote {RESULTS / 'latest.md'}, latest.json and bench.png in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())
