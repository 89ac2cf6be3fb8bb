"""Peregrine's native API: a handler class, run with `peregrine run peregrine_app:Handler`.

Plain (sync) handle_request: the fast path, called inline on the event loop.
"""

from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY, STATIC_DIR

try:  # static files land in their own issue; the benchmark skips the case until then
    from peregrine.util import DirServer
except ImportError:  # pragma: no cover - depends on the engine's progress
    DirServer = None

try:  # WebSocket lands in its own issue
    import peregrine.ws as pws
except ImportError:  # pragma: no cover
    pws = None


class Handler:
    def __init__(self):
        self.static = None
        if DirServer is not None and STATIC_DIR:
            self.static = DirServer(STATIC_DIR, prefix="/static/")

    def handle_request(self, req, resp):
        path = req.path
        if req.method == "POST":
            # req.body is complete when the handler runs; nothing to await.
            resp.set_header("Content-Type", CONTENT_TYPE)
            resp.set_body(SMALL_BODY)
        elif path == "/":
            resp.set_header("Content-Type", CONTENT_TYPE)
            resp.set_body(SEED_BODY)
        elif path == "/small":
            resp.set_header("Content-Type", CONTENT_TYPE)
            resp.set_body(SMALL_BODY)
        elif path.startswith("/static/") and self.static is not None:
            self.static.serve(req, resp)
        elif path == "/ws" and pws is not None:
            pws.upgrade(req, resp, compression=False)
        else:
            resp.status = 404
            resp.set_body(b"")

    # WebSocket echo (used only when peregrine.ws exists).
    def handle_ws_message(self, ws, message):
        ws.send(message)
