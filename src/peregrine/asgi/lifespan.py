"""The ASGI lifespan protocol: ``startup`` before a worker accepts, ``shutdown`` when it stops.

With ``--lifespan auto`` an application that raises on the lifespan scope (Django, many small
apps) is served without it; with ``on`` that, or ``lifespan.startup.failed``, stops the worker
from starting, with the application's message; ``off`` never calls the application for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .scope import LIFESPAN_ASGI

log = logging.getLogger("peregrine.error")


class LifespanFailure(RuntimeError):
    """The application's startup failed (``lifespan.startup.failed`` or an exception)."""


class Lifespan:
    """Runs one application's lifespan in a worker (see the module docstring)."""

    def __init__(self, app: Any, mode: str) -> None:
        self.app = app
        self.mode = mode
        #: the lifespan state (``scope["state"]``), copied into every request's scope; None
        #: when the application does not take part in the lifespan protocol
        self.state: dict[str, Any] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._answers: asyncio.Queue[dict[str, Any] | BaseException | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer; raise :class:`LifespanFailure`."""
        if self.mode == "off":
            return
        state: dict[str, Any] = {}
        self._inbox = asyncio.Queue()
        self._answers = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": LIFESPAN_ASGI, "state": state}
        self._task = asyncio.get_running_loop().create_task(self._main(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._answers.get()
        if answer is None:  # the application returned without answering: nothing to run
            self.state = state
            return
        if isinstance(answer, BaseException):
            if self.mode == "on":
                raise LifespanFailure(f"lifespan startup raised {answer!r}") from answer
            log.info(
                "the application does not support the ASGI lifespan protocol (%s): serving "
                "without it (--lifespan on makes this an error)",
                type(answer).__name__,
            )
            return
        if answer["type"] == "lifespan.startup.failed":
            raise LifespanFailure(answer.get("message") or "lifespan.startup.failed")
        self.state = state
        self._running = True

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (errors are logged)."""
        if not self._running or self._inbox is None or self._answers is None:
            return
        self._running = False
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._answers.get()
        if isinstance(answer, BaseException):
            log.error("lifespan shutdown raised %r", answer, exc_info=answer)
        elif answer is not None and answer["type"] == "lifespan.shutdown.failed":
            log.error("lifespan shutdown failed: %s", answer.get("message") or "(no message)")
        if self._task is not None:
            await asyncio.wait([self._task], timeout=1.0)

    async def _main(self, scope: dict[str, Any]) -> None:
        assert self._answers is not None
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - reported to startup() or shutdown()
            await self._answers.put(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            await self._answers.put(None)

    async def _receive(self) -> dict[str, Any]:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._answers is not None
        kind = message["type"]
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise RuntimeError(f"ASGI: unexpected lifespan message {kind!r}")
        await self._answers.put(message)
