"""Defects found by a review of the WebSocket support (issue 4), kept as strict xfails.

Each test proves one defect, with a docstring saying what is sent, what the issue, the docs
or the RFC expect, and what happens instead. Servers run as real processes (`ServerProcess`)
or the sans-IO classes are driven with bytes alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any, Callable

import peregrine
import peregrine.ws

CLOSE_TICKER_EVERY = 0.05


class ReviewApp:
    """Test endpoints the shared apps lack.

    `/ticker`: an async `handle_ws_conn` that sends `tick` until `ws.closed` (the usual
    push-loop shape). `/backend`: messages run an async hook that raises the handler's own
    ConnectionRefusedError. `/slow`: every message waits 3 s in an async hook.
    Every disconn is printed as `REVIEW disconn PATH CODE`.
    """

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        peregrine.ws.upgrade(req, resp)

    async def handle_ws_conn(self, ws: Any) -> None:
        if ws.request.path == "/ticker":
            while not ws.closed:
                ws.send("tick")
                await asyncio.sleep(CLOSE_TICKER_EVERY)

    async def handle_ws_message(self, ws: Any, message: Any) -> None:
        path = ws.request.path
        if path == "/backend":
            await asyncio.sleep(0)
            raise ConnectionRefusedError("the handler's own backend refused it")
        if path == "/slow":
            await asyncio.sleep(3)
            return
        ws.send(message)

    def handle_ws_disconn(self, ws: Any, code: int) -> None:
        print(f"REVIEW disconn {ws.request.path} {code}", flush=True)
