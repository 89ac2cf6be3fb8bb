"""Instructions per request of ways to run an ASGI request's coroutine, apart from any server.

Each "request" is a trivial coroutine started from a loop callback (no task current, as uvloop
calls ``data_received``), one per loop turn, the way ``hotpath_asgi.py`` feeds requests; count
two lengths with callgrind and difference them (``N`` requests, ``MODE`` the design):

- ``none``: the coroutine stepped directly, no task (the floor; not correct for anyio);
- ``task``: a task per request, as Peregrine does (``asyncio.Task(coro, loop=, name=)``);
- ``task-context``: the same given ``context=`` a copy of a kept context (what isolating a
  pipelined request's context variables would cost on every request);
- ``reused``: one task per connection that waits on a future for each request and steps its
  coroutine inside a fresh copy of the context (per-request context variables, one task);
- ``reused-shared``: the same without the context copy (the floor of any reused-task design,
  context variables leaking from request to request).

    for n in 2000 12000; do MODE=task N=$n valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null .venv/bin/python bench/task_designs.py; done
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Coroutine, Generator
from typing import Any

import uvloop

MODE = os.environ.get("MODE", "task")


async def app(scope: dict[str, Any]) -> None:
    return None


class InContext:
    """Awaits ``coroutine`` with each of its steps run inside ``context``."""

    __slots__ = ("context", "coroutine")

    def __init__(self, context: contextvars.Context, coroutine: Coroutine[Any, Any, None]) -> None:
        self.context = context
        self.coroutine = coroutine

    def __await__(self) -> Generator[Any, Any, None]:
        run = self.context.run
        send = self.coroutine.send
        value = None
        while True:
            try:
                yielded = run(send, value)
            except StopIteration:
                return
            value = yield yielded


def serve(count: int) -> None:
    loop = uvloop.new_event_loop()
    done = loop.create_future()
    base = contextvars.copy_context()
    served = 0
    waiter: list[asyncio.Future[Any]] = []

    async def runner() -> None:
        while True:
            future = loop.create_future()
            waiter.append(future)
            context, coroutine = await future
            if context is None:
                await coroutine
            else:
                await InContext(context, coroutine)

    runner_task = None

    def hand_over(job: tuple[Any, Any]) -> None:
        waiter.pop().set_result(job)

    def step() -> None:
        nonlocal served, runner_task
        if served == count:
            done.set_result(None)
            return
        served += 1
        coroutine = app({})
        if MODE == "none":
            try:
                coroutine.send(None)
            except StopIteration:
                pass
        elif MODE == "task":
            asyncio.Task(coroutine, loop=loop, name="request")
        elif MODE == "task-context":
            asyncio.Task(coroutine, loop=loop, name="request", context=base.copy())
        else:
            job = (base.copy() if MODE == "reused" else None, coroutine)
            if runner_task is None:
                runner_task = asyncio.Task(runner(), loop=loop, name="connection")
                loop.call_soon(hand_over, job)
            else:
                hand_over(job)
        loop.call_soon(loop.call_soon, step)  # the request's turn, then the next

    loop.call_soon(step)
    loop.run_until_complete(done)


if __name__ == "__main__":
    serve(int(os.environ["N"]))
