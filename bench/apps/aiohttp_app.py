"""aiohttp's low-level web.Server (no router, no middlewares) on uvloop.

Usage: python aiohttp_app.py PORT
"""

import asyncio
import sys

import uvloop
from aiohttp import WSMsgType, web
from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY


async def handler(request: web.BaseRequest) -> web.StreamResponse:
    path = request.path
    if request.method == "POST":
        await request.read()  # read the whole request body
        return web.Response(body=SMALL_BODY, content_type=CONTENT_TYPE)
    if path == "/":
        return web.Response(body=SEED_BODY, content_type=CONTENT_TYPE)
    if path == "/small":
        return web.Response(body=SMALL_BODY, content_type=CONTENT_TYPE)
    if path == "/ws":
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws
    return web.Response(status=404)


async def serve(port: int) -> None:
    server = web.Server(handler, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    # keepalive_timeout is aiohttp's idle keep-alive timeout (default 75 s); the idle
    # memory case needs connections to stay open while it measures.
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
