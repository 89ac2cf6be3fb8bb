"""WebSocket echo: a page at ``/`` that talks to ``/ws``, which echoes every message.

Run it:  python examples/websocket/app.py [--port N]   then open http://127.0.0.1:3000/
    or:  peregrine run examples.websocket.app:Handler
"""

from pathlib import Path

import peregrine
import peregrine.ws

PAGE = (Path(__file__).parent / "index.html").read_bytes()


class Handler:
    """WebSocket echo with a small page that uses it."""

    def handle_request(self, req: peregrine.Request, resp: peregrine.Response) -> None:
        if req.path == "/ws":
            peregrine.ws.upgrade(req, resp)  # answers 101, or 400/426 by itself
        elif req.path == "/":
            resp.set_header("Content-Type", "text/html; charset=utf-8")
            resp.set_body(PAGE)
        else:
            resp.status = 404
            resp.set_body(b"not found\n")

    def handle_ws_message(self, ws, message) -> None:  # type: ignore[no-untyped-def]
        ws.send(message)  # str comes back as text, bytes as binary


if __name__ == "__main__":
    from peregrine.cli import run_example

    run_example(Handler, workers=1)
