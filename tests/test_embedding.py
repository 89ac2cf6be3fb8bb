"""A program embedding Peregrine: ``await server.serve()``, ``start()`` off the main thread, and
failures as exceptions (never ``SystemExit``)."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time

import httpx
import pytest

import peregrine
from peregrine.server import StartupError


class Hello:
    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        resp.set_body(b"hello from " + threading.current_thread().name.encode())


class FailsToBuild:
    def __init__(self) -> None:
        raise ValueError("no database")

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        pass


def wait_for_address(server: peregrine.Server, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.addresses:
            return server.addresses[0]
        time.sleep(0.01)
    raise AssertionError("the server never listened")


def test_serve_runs_in_the_programs_own_loop() -> None:
    async def program() -> tuple[str, str]:
        server = peregrine.Server(Hello, port=0, workers=1)
        serving = asyncio.create_task(server.serve())
        while not server.addresses:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            response = await client.get(server.addresses[0] + "/")
        other = await asyncio.sleep(0, "the loop stays the program's")
        server.shutdown()
        await asyncio.wait_for(serving, 10)
        return response.text, other

    text, other = asyncio.run(program())
    assert text == "hello from MainThread"
    assert other == "the loop stays the program's"


def test_serve_leaves_the_programs_collector_alone() -> None:
    # a worker that owns its process freezes the start-up heap (process/worker.py); one serving
    # in a program's own loop leaves that program's objects to its collector
    async def program() -> None:
        server = peregrine.Server(Hello, port=0, workers=1)
        serving = asyncio.create_task(server.serve())
        while not server.addresses:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            await client.get(server.addresses[0] + "/")
        server.shutdown()
        await asyncio.wait_for(serving, 10)

    programs_own = [object()]  # tracked by the collector, made before serving
    asyncio.run(program())
    assert any(obj is programs_own for obj in gc.get_objects())


def test_serve_stops_when_shutdown_is_called_from_another_thread() -> None:
    async def program() -> int:
        server = peregrine.Server(Hello, port=0)
        serving = asyncio.create_task(server.serve())
        while not server.addresses:
            await asyncio.sleep(0.01)
        url = server.addresses[0]
        status = await asyncio.to_thread(lambda: httpx.get(url + "/").status_code)
        threading.Thread(target=server.shutdown).start()
        await asyncio.wait_for(serving, 10)
        return status

    assert asyncio.run(program()) == 200


def test_serve_refuses_several_workers() -> None:
    server = peregrine.Server(Hello, port=0, workers=4)
    with pytest.raises(ValueError, match="workers=4 needs start"):
        asyncio.run(server.serve())


def test_serve_reports_a_handler_that_cannot_be_built() -> None:
    server = peregrine.Server(FailsToBuild, port=0)
    with pytest.raises(StartupError, match="no worker could start: ValueError: no database"):
        asyncio.run(server.serve())


def test_serve_busy_port_is_an_oserror_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = peregrine.Server(Hello, port=port)
        with pytest.raises(OSError, match=f"cannot bind 127.0.0.1:{port}: address already in use"):
            asyncio.run(server.serve())


def test_start_in_a_thread_with_one_worker() -> None:
    server = peregrine.Server(Hello, port=0, workers=1)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="server-thread")
    thread.start()
    try:
        url = wait_for_address(server)
        assert httpx.get(url + "/").text == "hello from server-thread"
    finally:
        server.shutdown()
        thread.join(15)
    assert not thread.is_alive()
    assert errors == []


def test_start_in_a_thread_with_a_supervisor_says_it_needs_the_main_thread() -> None:
    server = peregrine.Server(Hello, port=0, workers=2)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(server.start, errors))
    thread.start()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert str(errors[0]) == (
        "workers=2: the supervisor needs the main thread; call start() from it, or use "
        "workers=1 to serve in this thread"
    )


def test_start_busy_port_raises_oserror_not_systemexit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            peregrine.Server(Hello, port=port, workers=1).start()
    assert f"127.0.0.1:{port}" in str(info.value)


def test_start_with_a_handler_that_cannot_be_built_raises() -> None:
    with pytest.raises(StartupError, match="no worker could start: ValueError: no database"):
        peregrine.Server(FailsToBuild, port=0, workers=1).start()


def _catch(function: object, errors: list[BaseException]) -> None:
    try:
        function()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_start_inside_a_running_loop_points_to_serve() -> None:
    async def program() -> None:
        peregrine.Server(Hello, port=0, workers=1).start()

    with pytest.raises(RuntimeError, match="use 'await server.serve\\(\\)'"):
        asyncio.run(program())
