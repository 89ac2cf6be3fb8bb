"""HTTP/2 against HTTP/1.1 on Peregrine, measured with h2load (Debian: nghttp2-client).

Cases, all on the seed body (``GET /``, 6150 bytes, bench/apps/peregrine_app.py), one worker:

- ``h2c``: cleartext HTTP/2 (prior knowledge), ``h2load -c 10 -m 10``;
- ``h2``: HTTP/2 over TLS (ALPN h2), ``h2load -c 10 -m 10``;
- ``h1``: HTTP/1.1 on the same server, ``h2load --h1 -c 10 -m 1`` (no pipelining, as browsers).

The headline is the ratio h2c / h1: how much of HTTP/1.1's throughput HTTP/2 keeps on the same
work. With ``--peers`` (and a Python that has them: ``--peer-python``, by default bench/.venv's),
hypercorn (ASGI, on the ``h2`` package) and granian (RSGI, ``--http 2``) serve the same body for
the h2c and h2 cases. Each server runs on CPU 0 and h2load on CPU 1 when ``taskset`` exists; on
a shared machine only ratios taken in one run mean anything.

    .venv/bin/python bench/h2load.py [--duration 5] [--cases h2c,h2,h1] [--peers hypercorn,granian]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"
PY = sys.executable


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


def peregrine_cmd(python: str, port: int, tls: Tls) -> list[str]:
    cmd = [python, "-m", "peregrine", "run", "peregrine_app:Handler", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--loop", "uvloop"]
    if tls is not None:
        cmd += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    return cmd


def hypercorn_cmd(python: str, port: int, tls: Tls) -> list[str]:
    cmd = [python, "-m", "hypercorn", "asgi_app:app", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", "1", "--worker-class", "uvloop", "--log-level", "warning"]
    if tls is not None:
        cmd += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    return cmd


def granian_cmd(python: str, port: int, tls: Tls) -> list[str]:
    cmd = [python, "-m", "granian", "rsgi_app:app", "--interface", "rsgi", "--http", "2"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--runtime-threads", "1", "--runtime-mode", "st", "--no-access-log"]
    cmd += ["--log-level", "warning"]
    if tls is not None:
        cmd += ["--ssl-certificate", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    return cmd


PEERS = {"hypercorn": hypercorn_cmd, "granian": granian_cmd}


def start_server(cmd: list[str], log: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    proc = subprocess.Popen(
        pinned("0", cmd), cwd=APPS, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    time.sleep(0.3)  # granian binds before its worker is ready
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def h2load(url: str, duration: int, streams: int, h1: bool) -> dict[str, float]:
    cmd = ["h2load", "-c", "10", "-m", str(streams), "-D", str(duration), "--warm-up-time", "1"]
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
        "protocol": protocol.group(1) if protocol else "?",  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--cases", default="h2c,h2,h1")
    parser.add_argument("--peers", default="", help="comma list of: hypercorn, granian")
    default_peer_python = ROOT / "bench" / ".venv" / "bin" / "python"
    parser.add_argument(
        "--peer-python",
        default=str(default_peer_python) if default_peer_python.exists() else PY,
        help="the Python that has the peers installed",
    )
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    cases = args.cases.split(",")
    servers = [("peregrine", PY, peregrine_cmd)]
    servers += [(name, args.peer_python, PEERS[name]) for name in args.peers.split(",") if name]
    rows: list[tuple[str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        cert = make_certificate(directory)
        for case in cases:
            for name, python, build in servers:
                if case == "h1" and name != "peregrine":
                    continue  # the ratio's denominator: Peregrine's own HTTP/1.1
                port = free_port()
                tls = cert if case == "h2" else None
                log = directory / f"{name}-{case}.log"
                server = start_server(build(python, port, tls), log, port)
                try:
                    scheme = "https" if tls else "http"
                    rows.append(
                        (
                            name,
                            case,
                            h2load(
                                f"{scheme}://127.0.0.1:{port}/",
                                args.duration,
                                1 if case == "h1" else 10,
                                case == "h1",
                            ),
                        )
                    )
                finally:
                    server.terminate()
                    server.wait(20)
    print("| server | case | h2load | protocol | req/s | succeeded |")
    print("|---|---|---|---|---:|---:|")
    for name, case, result in rows:
        flags = "--h1 -c 10 -m 1" if case == "h1" else "-c 10 -m 10"
        print(
            f"| {name} | {case} | {flags} | {result['protocol']} | {result['req_s']:,.0f} | "
            f"{result['succeeded']:,.0f}/{result['done']:,.0f} |"
        )
    rate = {(name, case): result["req_s"] for name, case, result in rows}
    h1 = rate.get(("peregrine", "h1"))
    for case in ("h2c", "h2"):
        ours = rate.get(("peregrine", case))
        if ours and h1:
            print(f"peregrine {case} / peregrine h1: {ours / h1:.2f}")
        for name in PEERS:
            theirs = rate.get((name, case))
            if ours and theirs:
                print(f"peregrine {case} / {name} {case}: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
