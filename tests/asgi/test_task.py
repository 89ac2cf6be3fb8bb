"""The task an ASGI application runs in: one per request, current from the application's first
step to its last (anyio keeps the task it finds first), named, and out of the server's set at
the end; its context a fresh copy of the server's for every request, so what one request sets in
a context variable is not seen by the next on the connection, pipelined or not. In-process,
through Peregrine's own protocol code (``peregrine.testing.Client``)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from typing import Any

import pytest

from peregrine.asgi.http import TASK_NAME
from peregrine.testing import Client


async def _answer(send: Any, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    first = asyncio.current_task()
    if scope["path"] == "/suspend":
        await asyncio.sleep(0)  # a trip through the loop before answering
    after = asyncio.current_task()
    await _answer(
        send,
        {
            "name": first.get_name() if first is not None else None,
            "same": first is after,
            "id": id(first),
        },
    )


def test_the_app_runs_in_a_named_task_from_its_first_step() -> None:
    with Client(app) as client:
        answer = client.get("/").json()
    assert answer["name"] == TASK_NAME
    assert answer["same"] is True


def test_an_app_that_suspends_keeps_the_task_it_started_in() -> None:
    with Client(app) as client:
        answer = client.get("/suspend").json()
    assert answer["name"] == TASK_NAME
    assert answer["same"] is True


def test_each_request_has_a_task_of_its_own_and_none_is_left_in_the_servers_set() -> None:
    tasks: list[asyncio.Task[Any]] = []

    async def keeping(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            await asyncio.sleep(0)
            await _answer(send, {})

    with Client(keeping) as client:
        for _ in range(3):
            assert client.get("/").status == 200
        state = client._state
        assert state is not None
        assert len({id(task) for task in tasks}) == 3
        assert not state.tasks


# --- context variables and the task, request after request on one connection -------------------

#: what one request's application sets; the next request on the connection must not see it
_SET_BY_A_REQUEST: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "set_by_a_request", default=None
)


def _get(path: str) -> bytes:
    """The bytes of one keep-alive GET of ``path``."""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


#: requests answered at once or after a trip through the loop, each kind after each kind
_ANSWERED = ("/now", "/now", "/suspend", "/suspend", "/now")
#: a failure before or after suspending (a 500: the response had not started) ends a connection
_FAILING = ("/fail-now", "/fail-after-suspending")


def _context_app(seen: list[dict[str, Any]]) -> Any:
    """Records, per request, the context variable as the request found it and its task (first
    and last step); then sets the variable, as a request-id middleware would."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        record: dict[str, Any] = {
            "path": path,
            "found": _SET_BY_A_REQUEST.get(),
            "task": asyncio.current_task(),
        }
        seen.append(record)
        _SET_BY_A_REQUEST.set(path)
        if path in ("/suspend", "/fail-after-suspending"):
            await asyncio.sleep(0)
        record["last task"] = asyncio.current_task()
        record["still mine"] = _SET_BY_A_REQUEST.get() == path
        if path.startswith("/fail"):
            raise RuntimeError(f"the application failed on {path}")
        await _answer(send, {})

    return app


def _serve_in_reads(client: Client, reads: list[bytes], responses: int) -> bytes:
    """Deliver ``reads`` to one connection, each read given when the previous one's responses
    are out (keep-alive, one request after another) or all in the first read (pipelined)."""
    loop, state = client._running()

    async def exchange() -> bytes:
        peer, transport = client._connect(state)
        try:
            answered = 0
            for chunk in reads:
                transport.feed(chunk)
                answered += bytes(chunk).count(b"HTTP/1.1\r\n")
                wanted = min(answered, responses)
                await peer.until(
                    lambda wanted=wanted: bytes(peer.data).count(b"HTTP/1.1 ") >= wanted or None,
                    5.0,
                    f"{wanted} responses",
                )
            for _ in range(3):  # let the applications' tasks end
                await asyncio.sleep(0)
            return bytes(peer.data)
        finally:
            transport.hang_up()
            await asyncio.sleep(0)

    return loop.run_until_complete(exchange())


def _serve_context_app(paths: list[str], pipelined: bool) -> tuple[list[dict[str, Any]], bytes]:
    """GET each of ``paths`` from ``_context_app`` on one connection, one read per request or
    all in one read; what the app recorded per request, and the bytes sent back (every task
    checked gone)."""
    seen: list[dict[str, Any]] = []
    requests = [_get(path) for path in paths]
    reads = [b"".join(requests)] if pipelined else requests
    with Client(_context_app(seen)) as client:
        sent = _serve_in_reads(client, reads, len(paths))
        state = client._state
        assert state is not None
        assert not state.tasks
    return seen, sent


@pytest.mark.parametrize("last", _FAILING)
@pytest.mark.parametrize("pipelined", [False, True], ids=["one after another", "pipelined"])
def test_a_context_variable_one_request_sets_is_not_seen_by_the_next_on_the_connection(
    pipelined: bool, last: str
) -> None:
    paths = [*_ANSWERED, last]
    seen, sent = _serve_context_app(paths, pipelined)
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", sent)]
    assert statuses == [500 if path.startswith("/fail") else 200 for path in paths]
    assert [record["path"] for record in seen] == paths
    assert [record["found"] for record in seen] == [None] * len(paths)
    assert all(record["still mine"] for record in seen)


@pytest.mark.parametrize("last", _FAILING)
@pytest.mark.parametrize("pipelined", [False, True], ids=["one after another", "pipelined"])
def test_each_request_on_a_connection_runs_in_its_own_task_from_first_step_to_last(
    pipelined: bool, last: str
) -> None:
    paths = [*_ANSWERED, last]
    seen, _ = _serve_context_app(paths, pipelined)
    tasks = [record["task"] for record in seen]
    assert all(isinstance(task, asyncio.Task) for task in tasks)
    assert all(record["last task"] is record["task"] for record in seen)
    assert len({id(task) for task in tasks}) == len(paths)  # all alive in `seen`: ids distinct
    assert all(task.done() and task.get_name() == TASK_NAME for task in tasks)


def test_a_context_variable_set_around_the_server_reaches_every_request() -> None:
    """What is set in the context the server runs in (before it starts) is the base each
    request's context is copied from, as a task made there would copy it."""
    found: list[str | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            found.append(_SET_BY_A_REQUEST.get())
            _SET_BY_A_REQUEST.set("changed by a request")
            await _answer(send, {})

    def serve_here() -> None:
        _SET_BY_A_REQUEST.set("set around the server")
        with Client(app) as client:
            _serve_in_reads(client, [_get("/") + _get("/")], 2)
            _serve_in_reads(client, [_get("/"), _get("/")], 2)

    contextvars.copy_context().run(serve_here)
    assert found == ["set around the server"] * 4


def test_a_request_still_running_at_shutdown_is_cancelled_in_its_own_task() -> None:
    """The server's set holds each running request's task; leaving the client (as a worker's
    graceful timeout does) cancels it, and the application sees CancelledError."""
    events: list[str] = []
    started = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append(f"cancelled in {asyncio.current_task().get_name()}")  # type: ignore[union-attr]
            raise

    client = Client(app)
    loop, state = client._running()

    async def leave_one_waiting() -> None:
        peer, transport = client._connect(state)
        transport.feed(_get("/wait"))
        await asyncio.wait_for(started.wait(), 5.0)

    loop.run_until_complete(leave_one_waiting())
    assert len(state.tasks) == 1
    client.close()
    assert events == [f"cancelled in {TASK_NAME}"]
