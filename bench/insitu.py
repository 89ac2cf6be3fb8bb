"""Cost per request of a whole server process in situ: the real server over loopback under wrk.

What bench/hotpath.sh cannot see (the event loop, the kernel, timers, accepting) shows up here.
Measured per request, from counters of the server process only, so that other load on the
machine moves the numbers little:

* ``cpu`` mode (default): user and system CPU time of the server's serving process
  (``/proc/PID/stat``) while wrk runs (hardware counters, ``perf stat -e instructions``, are not
  available on every VM, this one included).
* ``callgrind`` mode: the server runs under callgrind; its counters are zeroed after a warm-up and
  dumped after the measured wrk run (``callgrind_control``), giving a profile of exactly the
  measured requests to read with ``callgrind_annotate --inclusive=yes``.

The server is pinned to one core and wrk to the other, as bench/run.sh does. Servers:
``peregrine`` (compiled build, native seed app), ``peregrine-pure``, ``floor`` (bare uvloop),
``socketify``, ``nginx``.

    .venv/bin/python bench/insitu.py peregrine floor --conns 100 --seconds 5
    .venv/bin/python bench/insitu.py peregrine --mode callgrind --seconds 10 --out /tmp/cg.out

Needs wrk (and valgrind for callgrind mode); socketify from bench/.venv (``--peer-python``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "apps"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(APPS))

from run import WRK_DONE, Ctx, write_nginx_conf  # noqa: E402

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_cmd(name: str, port: int, py: str, peer_py: str, tmp: Path) -> tuple[list[str], dict]:
    env = dict(os.environ)
    env.pop("PEREGRINE_PURE_PYTHON", None)
    if name in ("peregrine", "peregrine-pure"):
        if name == "peregrine-pure":
            env["PEREGRINE_PURE_PYTHON"] = "1"
        cmd = [py, "-m", "peregrine", "run", "peregrine_app:Handler", "--host", HOST]
        cmd += ["--port", str(port), "--workers", "1", "--loop", "uvloop", "--backlog", "4096"]
        return cmd + ["--access-log", "false"], env
    if name == "floor":
        return [py, "floor.py", str(port), "6150"], env
    if name == "socketify":
        return [peer_py, "socketify_app.py", str(port)], env
    if name == "nginx":
        conf = write_nginx_conf(Ctx(tmp, tmp), port)
        return ["/usr/sbin/nginx", "-c", str(conf), "-p", str(tmp)], env
    raise SystemExit(f"unknown server {name}")


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def serving_pid(pid: int) -> int:
    """The process that serves: nginx's worker (the only child), else the process itself."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return int(children[0]) if children else pid


def cpu_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime


def run_wrk(
    port: int,
    conns: int,
    seconds: int,
    cpu: str,
    rt: bool,
    script: Path,
    close: bool = False,
    timeout: int = 5,
) -> dict:
    cmd = ["taskset", "-c", cpu, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    cmd += ["--timeout", f"{timeout}s"]
    if close:  # every request on a new connection: what accepting and closing cost
        cmd += ["-H", "Connection: close"]
    cmd += ["--latency", "-s", str(script), f"http://{HOST}:{port}/"]
    if rt:
        cmd = ["chrt", "-f", "10", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"BENCHJSON (\{.*\})", out.stdout)
    if not m:
        raise SystemExit(f"wrk failed: {out.stdout}{out.stderr}")
    res = json.loads(m.group(1))
    res["text"] = out.stdout
    tail = re.search(r"TAIL (.*)", out.stdout)
    res["tail"] = tail.group(1) if tail else ""
    return res


def measure(args: argparse.Namespace, name: str, tmp: Path) -> dict:
    port = free_port()
    cmd, env = server_cmd(name, port, args.python, args.peer_python, tmp)
    if args.mode == "callgrind":
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={args.out.replace('{name}', name)}",
            *cmd,
        ]
    cmd = ["taskset", "-c", args.server_cpu, *cmd]
    if args.rt:
        cmd = ["chrt", "-f", "10", *cmd]
    script = tmp / "wrk.lua"
    # bench/run.py's summary line, with the tail's shape added (p90, p99.9, max)
    script.write_text(
        WRK_DONE.replace(
            "latency:percentile(99)))",
            'latency:percentile(99)))\n  io.write(string.format("TAIL p90 %.1f p99.9 %.1f max %.1f ms\\n",'
            " latency:percentile(90) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))",
        )
    )
    proc = subprocess.Popen(
        cmd,
        cwd=APPS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=tmp.joinpath(f"{name}.log").open("wb"),
    )
    try:
        wait_port(port, proc, 600 if args.mode == "callgrind" else 60)
        pid = serving_pid(proc.pid)
        run_wrk(
            port, args.conns, args.warmup, args.load_cpu, args.rt, script, args.close, args.timeout
        )
        if args.mode == "callgrind":
            subprocess.run(
                ["callgrind_control", "--zero", str(pid)], check=True, capture_output=True
            )
            res = run_wrk(
                port,
                args.conns,
                args.seconds,
                args.load_cpu,
                args.rt,
                script,
                args.close,
                args.timeout,
            )
            subprocess.run(
                ["callgrind_control", "--dump", str(pid)], check=True, capture_output=True
            )
            dumped = Path(args.out.replace("{name}", name) + ".1").read_text()
            m = re.search(r"^summary: (\d+)", dumped, re.M)
            res["instr_per_req"] = round(int(m.group(1)) / res["requests"]) if m else None
            return res
        u0, s0 = cpu_ticks(pid)
        res = run_wrk(
            port, args.conns, args.seconds, args.load_cpu, args.rt, script, args.close, args.timeout
        )
        u1, s1 = cpu_ticks(pid)
        n = res["requests"]
        res["user_us"] = round((u1 - u0) / TICK / n * 1e6, 2)
        res["sys_us"] = round((s1 - s0) / TICK / n * 1e6, 2)
        return res
    finally:
        proc.send_signal(signal.SIGINT if name != "nginx" else signal.SIGQUIT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("servers", nargs="+")
    ap.add_argument("--mode", choices=("cpu", "callgrind"), default="cpu")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--load-cpu", default="1")
    ap.add_argument(
        "--close",
        action="store_true",
        help="send Connection: close: a new connection per request (not the floor: it ignores it)",
    )
    ap.add_argument(
        "--timeout",
        type=int,
        default=5,
        help="wrk's --timeout in seconds: under callgrind at 1000 connections a request waits"
        " ~connections / (a few hundred req/s), longer than the default 5",
    )
    ap.add_argument("--rt", action="store_true", help="run server and wrk with chrt -f 10")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--peer-python", default=str(BENCH / ".venv" / "bin" / "python"))
    ap.add_argument(
        "--out",
        default="/tmp/insitu.callgrind",
        help="callgrind mode: output file ({name}: the server's)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="insitu-") as d:
        for rnd in range(args.rounds):
            for name in args.servers:
                res = measure(args, name, Path(d))
                rps = res["requests"] / (res["duration_us"] / 1e6)
                line = f"round {rnd + 1} {name:15} {res['requests']:8} req {rps:9.0f} req/s"
                line += f"  p50 {res['p50_us'] / 1000:7.2f} ms  p99 {res['p99_us'] / 1000:7.2f} ms"
                line += f"  ({res['tail']})"
                errors = {k: res[k] for k in ("connect", "read", "write", "timeout") if res[k]}
                if errors:
                    line += f"  errors {errors}"
                if args.mode == "callgrind":
                    line += f"  {res['instr_per_req']} instructions/request"
                if args.mode == "cpu":
                    line += f"  user {res['user_us']} us/req  sys {res['sys_us']} us/req"
                print(line, flush=True)


if __name__ == "__main__":
    main()
