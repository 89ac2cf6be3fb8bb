"""Worker processes under the supervisor: real processes, real signals, real sockets."""

from __future__ import annotations

import os
import select
import signal
import socket
import time

import pytest

from peregrine.process.supervisor import _MIN_UPTIME, restart_delay

from ..helpers import ServerProcess, run_peregrine
from .support import alive, children, get, refuses, wait_until

APP = "tests.process.apps:Pid"


def pids_seen(server: ServerProcess, want: int, timeout: float = 10.0) -> set[int]:
    """Distinct worker pids answering new connections, until ``want`` are seen or ``timeout``
    seconds pass (bounded by time, not by a number of requests: a worker just forked on a
    loaded machine may take a while to listen, and until then every request goes to the
    others)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        seen.add(int(get(server.url + "/").text.split("=")[1]))
    return seen


@pytest.mark.parametrize("reuse_port", ["true", "false"])
def test_every_worker_serves(start_server, reuse_port: str) -> None:
    server = start_server(APP, "--reuse-port", reuse_port, workers=3)
    assert "3 workers" in server.output
    workers = set(children(server.proc.pid))
    assert len(workers) == 3
    assert pids_seen(server, 3) == workers


def test_workers_zero_means_one_per_core(start_server) -> None:
    server = start_server(APP, workers=0)
    cores = len(os.sched_getaffinity(0))
    if cores == 1:
        assert "1 worker" in server.output
    else:
        assert f"{cores} workers" in server.output
        assert len(children(server.proc.pid)) == cores


def test_killed_worker_is_replaced_quickly(start_server) -> None:
    server = start_server(APP, workers=2)
    before = children(server.proc.pid)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(
        lambda: len(children(server.proc.pid)) == 2 and victim not in children(server.proc.pid),
        timeout=3,
    ), server.output
    assert server.wait_for_line(rf"pid {victim}\) was killed by SIGKILL", 2), server.output
    assert set(children(server.proc.pid)) - set(before), "no new worker"
    assert pids_seen(server, 2) == set(children(server.proc.pid))


def test_counter_never_repeats_across_workers(start_server) -> None:
    server = start_server("examples.counter:Handler", workers=3)
    values = [get(server.url + "/").text for _ in range(120)]
    assert all(v.startswith("counter=") and v.endswith("\n") for v in values)
    numbers = [int(v.strip().split("=")[1]) for v in values]
    assert numbers == list(range(120))  # sequential requests: strictly counting up from 0


def test_counter_script_runs_standalone(start_server) -> None:
    server = start_server(script=["examples/counter.py"], workers=2)
    assert get(server.url + "/").text == "counter=0\n"
    assert get(server.url + "/").text == "counter=1\n"


def test_every_worker_failing_at_start_exits_non_zero() -> None:
    proc = run_peregrine(
        "run", "tests.process.apps:Broken", "--port", "0", "--workers", "3", timeout=30
    )
    assert proc.returncode != 0
    assert "no worker could start" in proc.stderr
    assert "this handler cannot be built" in proc.stderr
    assert proc.stderr.count("could not start") <= 4, "workers were restarted"


def test_bind_failure_exits_non_zero(start_server) -> None:
    server = start_server(APP, workers=1)
    proc = run_peregrine(
        "run",
        APP,
        "--port",
        str(server.port),
        "--workers",
        "2",
        "--reuse-port",
        "false",
        timeout=30,
    )
    assert proc.returncode == 1
    assert f"cannot bind 127.0.0.1:{server.port}: address already in use" in proc.stderr


def test_ttin_adds_and_ttou_removes_a_worker(start_server) -> None:
    server = start_server(APP, workers=2)
    server.send_signal(signal.SIGTTIN)
    assert wait_until(lambda: len(children(server.proc.pid)) == 3, timeout=5), server.output
    assert pids_seen(server, 3) == set(children(server.proc.pid))
    server.send_signal(signal.SIGTTOU)
    assert wait_until(lambda: len(children(server.proc.pid)) == 2, timeout=5), server.output
    assert len(pids_seen(server, 2)) == 2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_cpu_affinity_pins_worker_i_to_core_i(start_server) -> None:
    server = start_server(APP, "--cpu-affinity", workers=2)
    cores = sorted(os.sched_getaffinity(0))
    assert wait_until(lambda: len(children(server.proc.pid)) == 2)
    pinned = sorted(tuple(os.sched_getaffinity(pid)) for pid in children(server.proc.pid))
    assert pinned == [(cores[0],), (cores[1],)]
    assert os.sched_getaffinity(server.proc.pid) == set(cores)  # the supervisor is not pinned


def test_workers_exit_when_the_supervisor_dies(start_server) -> None:
    server = start_server(APP, workers=2)
    workers = children(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(5)
    assert wait_until(lambda: not any(alive(pid) for pid in workers), timeout=8)
    assert refuses(server.host, server.port)


def test_close_hook_runs_in_every_worker(start_server, tmp_path) -> None:
    server = start_server(
        "tests.process.apps:Closing", workers=2, env={"PEREGRINE_TEST_CLOSE_DIR": str(tmp_path)}
    )
    workers = children(server.proc.pid)
    assert server.stop() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"closed-{pid}" for pid in workers)


def test_crash_looping_worker_is_backed_off_then_recovers(start_server, tmp_path) -> None:
    # the delays themselves are a table in test_supervisor.py; here: a real crash loop follows it
    flag = tmp_path / "crash"
    server = start_server(
        "tests.process.apps:FailsWhenFlagged",
        workers=2,
        env={"PEREGRINE_TEST_CRASH_FLAG": str(flag)},
    )
    flag.write_text("on")
    time.sleep(_MIN_UPTIME)  # the victim has served long enough: its death is not a failed start
    victim = children(server.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    mark = len(server.lines)
    failed = "failed to start: RuntimeError: crash flag is set; trying again in "
    delays = []
    for _ in range(2):
        line = server.wait_for_line(failed, 10, start=mark)
        assert line is not None, server.output
        delays.append(float(line.rpartition(failed)[2].rstrip("s")))
        mark = server.lines.index(line, mark) + 1
    # replaced at once, then the 1st and 2nd failed starts in a row wait (the rest of the
    # series is the table in test_supervisor.py)
    assert delays == [restart_delay(n, was_serving=False) for n in (1, 2)] == [0.5, 0.5]
    assert get(server.url + "/").status_code == 200  # the other worker serves throughout
    flag.unlink()
    assert wait_until(lambda: len(children(server.proc.pid)) == 2, timeout=6), server.output
    assert server.stop() == 0


def test_counter_goes_on_across_a_reload(start_server) -> None:
    server = start_server("examples.counter:Handler", workers=2)
    assert [get(server.url + "/").text for _ in range(5)] == [f"counter={i}\n" for i in range(5)]
    mark = len(server.lines)
    server.send_signal(signal.SIGHUP)
    assert server.wait_for_line("reload complete", 10, start=mark), server.output
    assert [get(server.url + "/").text for _ in range(5)] == [
        f"counter={i}\n" for i in range(5, 10)
    ]


def test_reuse_port_slot_without_a_worker_does_not_swallow_connections(
    start_server, tmp_path
) -> None:
    flag = tmp_path / "crash"
    server = start_server(
        "tests.process.apps:FailsWhenFlagged",
        "--reuse-port",
        "true",
        workers=2,
        env={"PEREGRINE_TEST_CRASH_FLAG": str(flag)},
    )
    flag.write_text("on")  # from now on a new worker cannot start
    os.kill(children(server.proc.pid)[0], signal.SIGKILL)
    assert server.wait_for_line("failed to start", 5), server.output
    clients = []
    try:
        for _ in range(20):
            sock = socket.create_connection((server.host, server.port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            clients.append(sock)
        answered: set[socket.socket] = set()
        wait_until(
            lambda: answered.update(select.select(clients, [], [], 0)[0]) or len(answered) == 20,
            timeout=3,
        )
        assert len(answered) == 20, f"{20 - len(answered)} of 20 connections never answered"
    finally:
        for sock in clients:
            sock.close()
        flag.unlink()


@pytest.mark.parametrize("workers", [1, 2])
def test_start_up_objects_leave_the_collectors_walk(start_server, workers: int) -> None:
    # what the worker built before serving (here the handler) is frozen: a full collection,
    # set off when many connections open at once, does not walk it again
    server = start_server("tests.process.apps:HeapWatch", workers=workers)
    assert get(server.url + "/").text == "frozen"
