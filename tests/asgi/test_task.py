"""The task an ASGI application runs in: one per request, current from the application's first
step to its last (anyio keeps the task it finds first), named, and out of the server's set at
the end. In-process, through Peregrine's own protocol code (``peregrine.testing.Client``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

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
