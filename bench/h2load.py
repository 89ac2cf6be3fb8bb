"""HTTP/2 against HTTP/1.1 on Peregrine and against other servers' HTTP/2, measured with h2load.

h2load is Debian's nghttp2-client. Cases, all on the seed body (``GET /``, 6150 bytes,
``text/plain``), one worker or process per server:

- ``h2c``: cleartext HTTP/2 (prior knowledge), ``h2load -c 10 -m 10``;
- ``h2``: HTTP/2 over TLS (ALPN h2), ``h2load -c 10 -m 10``;
- ``h1``: Peregrine's own HTTP/1.1, ``h2load --h1 -c 10 -m 1`` (no pipelining, as browsers): the
  denominator of "HTTP/2 keeps at least 0.5x of HTTP/1.1's throughput on the same work".

Servers (``--servers``, all by default; those not installed are reported and skipped):

- ``peregrine``: ``bench/apps/peregrine_app.py`` (native API) with this checkout;
- ``hypercorn``: the raw ASGI app (``asgi_app.py``) on the ``h2`` package, uvloop worker;
- ``granian``: the RSGI app, ``--http 2``, one worker, one runtime thread;
- ``nginx``: one worker, ``return 200`` of the body, ``listen ... http2`` (h2c) and
  ``listen ... ssl http2`` (h2);
- ``h2o``: one thread, the body served as a file (h2o without mruby only serves files);
- ``peregrine-server``: the Swift-based ``peregrine-server`` package (its own venv, see
  bench/README.md) serving the raw ASGI app; h2c by prior knowledge on its cleartext port,
  h2 with ``--tls-cert``/``--tls-key``.

Before measuring, each server's answer is checked with curl (status, protocol and exact body):
a server answering wrongly is reported, not measured. Each server runs on CPU 0 and h2load on
CPU 1 when ``taskset`` exists; ``--rounds N`` measures every row N times, servers interleaved,
and reports the median. On a shared machine only ratios taken in one run mean anything; the
table's ratio columns are to hypercorn in the same case and to Peregrine's HTTP/1.1.

    .venv/bin/python bench/h2load.py [--duration 10] [--rounds 3] [--cases h2c,h2,h1]
        [--servers peregrine,hypercorn,granian,nginx,h2o,peregrine-server]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"
PY = sys.executable
sys.path.insert(0, str(APPS))
from common import SEED_BODY  # type: ignore[import-not-found]  # noqa: E402  (bench/apps is not a package)

CONNS, STREAMS = 10, 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as two PEM files (trustme, a test dependency)."""
    import trustme

    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


Tls = tuple[Path, Path] | None


class Env:
    """What the command builders need: the Pythons with the peers, a scratch directory."""

    def __init__(self, peer_python: str, pserver_python: str, tmp: Path) -> None:
        self.peer_python = peer_python
        self.pserver_python = pserver_python
        self.tmp = tmp


def peregrine_cmd(env: Env, port: int, tls: Tls) -> list[str]:
    cmd = [PY, "-m", "peregrine", "run", "peregrine_app:Handler", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--loop", "uvloop"]
    if tls is not None:
        cmd += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    return cmd


def hypercorn_cmd(env: Env, port: int, tls: Tls) -> list[str]:
    cmd = [env.peer_python, "-m", "hypercorn", "asgi_app:app", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", "1", "--worker-class", "uvloop", "--log-level", "warning"]
    if tls is not None:
        cmd += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    return cmd


def granian_cmd(env: Env, port: int, tls: Tls) -> list[str]:
    cmd = [env.peer_python, "-m", "granian", "rsgi_app:app", "--interface", "rsgi"]
    cmd += ["--http", "2", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--runtime-threads", "1", "--runtime-mode", "st", "--no-access-log"]
    cmd += ["--log-level", "warning"]
    if tls is not None:
        cmd += ["--ssl-certificate", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    return cmd


def pserver_cmd(env: Env, port: int, tls: Tls) -> list[str]:
    # One worker process, the raw ASGI app; its cleartext port takes HTTP/1.1 and h2c by prior
    # knowledge, --tls-cert adds TLS with ALPN h2. No keepalive pings, no access log (default).
    cmd = [env.pserver_python, "-m", "peregrine", "asgi_app:app", "--protocol", "asgi"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-lifespan"]
    cmd += ["--ws-ping-interval", "0", "--log-level", "warning"]
    if tls is not None:
        cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    return cmd


def _nginx_quote(data: bytes) -> str:
    text = data.decode()
    assert re.fullmatch(r"[a-z0-9 \n]*", text, re.I), "body must stay config-safe"
    return '"' + text.replace("\n", "\\n") + '"'


def nginx_cmd(env: Env, port: int, tls: Tls) -> list[str]:
    d = env.tmp / f"nginx-{port}"
    d.mkdir()
    # nginx's config reader caps a token at ~4 KB: the body is joined from map constants, as
    # bench/run.py does for HTTP/1.1.
    pieces = [SEED_BODY[i : i + 2000] for i in range(0, len(SEED_BODY), 2000)]
    maps = "\n".join(
        f"    map $uri $seed{i} {{ default {_nginx_quote(p)}; }}" for i, p in enumerate(pieces)
    )
    seed = "".join(f"${{seed{i}}}" for i in range(len(pieces)))
    if tls is None:
        listen = f"listen 127.0.0.1:{port} http2;"  # h2c: prior knowledge only, on this port
    else:
        listen = (
            f"listen 127.0.0.1:{port} ssl http2;\n"
            f"        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};"
        )
    temps = "\n".join(f"    {k}_temp_path {d}/{k};" for k in ("client_body", "proxy", "fastcgi"))
    temps += f"\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"
    conf = f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temps}
    keepalive_requests 100000000;  # also the cap on requests per HTTP/2 connection
    default_type text/plain;
    server_tokens off;
{maps}
    server {{
        {listen}
        location = / {{ return 200 "{seed}"; }}
    }}
}}
"""
    (d / "nginx.conf").write_text(conf)
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(d / "nginx.conf"), "-p", str(d)]


def h2o_cmd(env: Env, port: int, tls: Tls) -> list[str]:
    d = env.tmp / f"h2o-{port}"
    d.mkdir()
    (d / "seed").write_bytes(SEED_BODY)
    ssl = ""
    if tls is not None:
        ssl = f"\n  ssl:\n    certificate-file: {tls[0]}\n    key-file: {tls[1]}"
    conf = f"""num-threads: 1
pid-file: {d}/h2o.pid
error-log: {d}/error.log
{"user: root" if os.getuid() == 0 else ""}
file.etag: OFF
file.mime.setdefaulttype: text/plain
listen:
  host: 127.0.0.1
  port: {port}{ssl}
hosts:
  default:
    paths:
      /:
        file.file: {d}/seed
"""
    (d / "h2o.conf").write_text(conf)
    return [shutil.which("h2o") or "h2o", "-c", str(d / "h2o.conf")]


Build = Callable[[Env, int, Tls], list[str]]


def _have(program: str) -> Callable[[Env], str | None]:
    def check(env: Env) -> str | None:
        found = shutil.which(program) or Path(f"/usr/sbin/{program}").exists()
        return None if found else f"{program} not installed"

    return check


def _python_has(attr: str, module: str) -> Callable[[Env], str | None]:
    def check(env: Env) -> str | None:
        python = getattr(env, attr)
        if not Path(python).exists():
            return f"{python} does not exist"
        out = subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=60)
        return None if out.returncode == 0 else f"{module} does not import in {python}"

    return check


#: name -> (command builder, why it cannot run or None)
SERVERS: dict[str, tuple[Build, Callable[[Env], str | None]]] = {
    "peregrine": (peregrine_cmd, lambda env: None),
    "hypercorn": (hypercorn_cmd, _python_has("peer_python", "hypercorn")),
    "granian": (granian_cmd, _python_has("peer_python", "granian")),
    "nginx": (nginx_cmd, _have("nginx")),
    "h2o": (h2o_cmd, _have("h2o")),
    "peregrine-server": (pserver_cmd, _python_has("pserver_python", "peregrine._native")),
}


def start_server(cmd: list[str], log: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    proc = subprocess.Popen(
        pinned("0", cmd),
        cwd=APPS,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers go with it in stop_server
    )
    time.sleep(0.3)  # granian binds before its worker is ready
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(20)


def check_answer(url: str, case: str) -> str | None:
    """None if ``GET url`` answers 200 with the seed body over the case's protocol, else why not."""
    flags = {"h2c": ["--http2-prior-knowledge"], "h2": ["--http2", "-k"], "h1": ["--http1.1"]}
    out = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code} %{http_version}", *flags[case], url],
        capture_output=True,
        timeout=30,
    )
    body, _, tail = out.stdout.rpartition(b"\n")
    want = "1.1" if case == "h1" else "2"
    if tail.decode(errors="replace") != f"200 {want}":
        return f"curl got {tail!r} (want '200 {want}'); {out.stderr.decode(errors='replace')}"
    if body != SEED_BODY:
        return f"wrong body: {len(body)} bytes"
    return None


def h2load(url: str, duration: int, h1: bool) -> dict[str, float | str]:
    streams = 1 if h1 else STREAMS
    cmd = ["h2load", "-c", str(CONNS), "-m", str(streams), "-D", str(duration)]
    cmd += ["--warm-up-time", "1"]
    if h1:
        cmd.append("--h1")
    out = subprocess.run(
        pinned("1", [*cmd, url]), capture_output=True, text=True, timeout=duration + 60
    )
    text = out.stdout
    rate = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", text)
    if rate is None or done is None:
        raise RuntimeError(f"h2load failed:\n{text}\n{out.stderr}")
    protocol = re.search(r"Application protocol: (\S+)", text)
    return {
        "req_s": float(rate.group(1)),
        "done": int(done.group(1)),
        "succeeded": int(done.group(2)),
        "protocol": protocol.group(1) if protocol else "?",
    }


def flags_of(case: str) -> str:
    return f"--h1 -c {CONNS} -m 1" if case == "h1" else f"-c {CONNS} -m {STREAMS}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="measurements per row (median)")
    parser.add_argument("--cases", default="h2c,h2,h1")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma list")
    bench = ROOT / "bench"
    peer_python = bench / ".venv" / "bin" / "python"
    parser.add_argument(
        "--peer-python",
        default=str(peer_python) if peer_python.exists() else PY,
        help="the Python that has hypercorn and granian (default: bench/.venv's)",
    )
    parser.add_argument(
        "--peregrine-server-python",
        default=str(bench / ".venv-peregrine-server" / "bin" / "python"),
        help="the Python that has the peregrine-server package (default: its bench venv's)",
    )
    args = parser.parse_args()
    if shutil.which("h2load") is None or shutil.which("curl") is None:
        raise SystemExit("h2load and curl are needed: apt-get install nghttp2-client curl")
    cases = args.cases.split(",")
    names = [n for n in args.servers.split(",") if n]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(unknown)} (known: {', '.join(SERVERS)})")
    results: dict[tuple[str, str], list[dict[str, float | str]]] = {}
    problems: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = Env(args.peer_python, args.peregrine_server_python, directory)
        for name in names:
            missing = SERVERS[name][1](env)
            if missing:
                for case in cases:
                    problems[(name, case)] = f"unavailable: {missing}"
        cert = make_certificate(directory)
        for round_ in range(args.rounds):
            for case in cases:
                for name in names:
                    if case == "h1" and name != "peregrine":
                        continue  # the ratio's denominator: Peregrine's own HTTP/1.1
                    if (name, case) in problems:
                        continue
                    port = free_port()
                    tls = cert if case == "h2" else None
                    log = directory / f"{name}-{case}-{round_}.log"
                    try:
                        server = start_server(SERVERS[name][0](env, port, tls), log, port)
                    except RuntimeError as exc:
                        problems[(name, case)] = str(exc).splitlines()[0]
                        continue
                    try:
                        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
                        wrong = check_answer(url, case)
                        if wrong:
                            problems[(name, case)] = wrong
                            continue
                        result = h2load(url, args.duration, case == "h1")
                        results.setdefault((name, case), []).append(result)
                        print(
                            f"round {round_ + 1}: {name} {case}: {result['req_s']:,.0f} req/s",
                            file=sys.stderr,
                        )
                    except RuntimeError as exc:
                        problems[(name, case)] = str(exc).splitlines()[0]
                    finally:
                        stop_server(server)
    report(results, problems, cases, names, args)


def report(
    results: dict[tuple[str, str], list[dict[str, float | str]]],
    problems: dict[tuple[str, str], str],
    cases: list[str],
    names: list[str],
    args: argparse.Namespace,
) -> None:
    median: dict[tuple[str, str], float] = {
        key: statistics.median(float(r["req_s"]) for r in runs) for key, runs in results.items()
    }
    load = os.getloadavg()
    print(
        f"h2load, seed body (6150 B), server on CPU 0, h2load on CPU 1, {args.duration} s per "
        f"measurement, median of {args.rounds} round(s); load average at the end "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n"
    )
    print(
        "| server | case | h2load | protocol | req/s | / hypercorn | / Peregrine h1 | succeeded |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|")
    h1 = median.get(("peregrine", "h1"))
    for case in cases:
        for name in names:
            key = (name, case)
            if case == "h1" and name != "peregrine":
                continue
            if key in problems and key not in median:
                print(f"| {name} | {case} | {flags_of(case)} | | {problems[key]} | | | |")
                continue
            if key not in median:
                continue
            runs = results[key]
            rate = median[key]
            hyper = median.get(("hypercorn", case))
            to_hyper = f"{rate / hyper:.2f}x" if hyper and case != "h1" else ""
            to_h1 = f"{rate / h1:.2f}x" if h1 else ""
            ok = sum(int(r["succeeded"]) for r in runs)
            done = sum(int(r["done"]) for r in runs)
            print(
                f"| {name} | {case} | {flags_of(case)} | {runs[0]['protocol']} | {rate:,.0f} | "
                f"{to_hyper} | {to_h1} | {ok:,}/{done:,} |"
            )
    print()
    for case in ("h2c", "h2"):
        ours = median.get(("peregrine", case))
        if not ours:
            continue
        targets = []
        hyper = median.get(("hypercorn", case))
        if hyper:
            met = "met" if ours / hyper >= 5 else "not met"
            targets.append(f">= 5x hypercorn: {ours / hyper:.2f}x ({met})")
        if h1:
            met = "met" if ours / h1 >= 0.5 else "not met"
            targets.append(f">= 0.5x Peregrine h1: {ours / h1:.2f}x ({met})")
        if targets:
            print(f"- Peregrine {case}: " + "; ".join(targets))


if __name__ == "__main__":
    main()
