"""socketify (uWebSockets bindings) with its native App API.

Usage: python socketify_app.py PORT
"""

import sys

from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY
from socketify import App, CompressOptions


def seed(res, req):
    res.write_header("Content-Type", CONTENT_TYPE)
    res.end(SEED_BODY)


def small(res, req):
    res.write_header("Content-Type", CONTENT_TYPE)
    res.end(SMALL_BODY)


# Responses waiting for their request body. socketify's own `await res.get_data()`
# crashed here (the response object was garbage collected while its body was still
# arriving: "ffi.from_handle() detected that the address passed points to garbage"),
# so the body is collected with on_data callbacks and the response kept referenced.
_waiting = set()


def upload(res, req):
    chunks = []

    def on_data(res, chunk, is_end):
        if chunk:
            chunks.append(chunk)  # read the whole request body
        if is_end:
            _waiting.discard(res)
            res.write_header("Content-Type", CONTENT_TYPE)
            res.end(SMALL_BODY)

    _waiting.add(res)
    res.on_aborted(lambda res: _waiting.discard(res))
    res.on_data(on_data)


def ws_message(ws, message, opcode):
    ws.send(message, opcode)


def main() -> None:
    port = int(sys.argv[1])
    app = App()
    app.get("/", seed)
    app.get("/small", small)
    app.post("/upload", upload)
    # No compression: the load client does not offer permessage-deflate anyway.
    app.ws("/ws", {"compression": CompressOptions.DISABLED, "message": ws_message})
    app.listen({"port": port, "host": "127.0.0.1"}, lambda config: None)
    app.run()


if __name__ == "__main__":
    main()
