"""Payloads shared by every benchmark app, so all servers answer identical bytes.

Routes every app implements (the orchestrator in bench/run.py relies on them):

    GET  /                 -> SEED_BODY   (6150 bytes, the seed benchmark)
    GET  /small            -> SMALL_BODY  (6 bytes)
    POST /upload           -> reads the whole request body, answers SMALL_BODY
    GET  /static/1mb.bin   -> the 1 MiB file in $BENCH_STATIC_DIR (only servers with file serving)
    GET  /static/6k.bin    -> a 6150-byte file there (the seed body's size, from a file)
    GET  /ws               -> WebSocket echo (only servers with WebSocket support)

All bodies are sent with "Content-Type: text/plain" (the static file is
application/octet-stream everywhere).
"""

import os


def make_body(size: int) -> bytes:
    """Deterministic printable text of exactly `size` bytes.

    Only [a-z0-9 ] and newlines, so the same bytes can be embedded in an nginx
    `return` string without any quoting trouble.
    """
    line_len = 50  # 49 characters + "\n"
    lines = []
    n = 0
    while sum(len(x) for x in lines) < size:
        text = f"peregrine benchmark payload line {n:04d} "
        text = (text + "abcdefghijklmnopqrstuvwxyz0123456789" * 2)[: line_len - 1]
        lines.append(text + "\n")
        n += 1
    return "".join(lines).encode()[:size]


SEED_SIZE = 6150
SEED_BODY = make_body(SEED_SIZE)
SMALL_BODY = b"Kawww\n"  # 6 bytes, the same greeting as examples/basic.py
POST_SIZE = 4096
STATIC_NAME = "1mb.bin"
STATIC_SIZE = 1024 * 1024
STATIC_SMALL_NAME = "6k.bin"
STATIC_SMALL_SIZE = 6150
CONTENT_TYPE = "text/plain"

# Where the orchestrator put the static file (a temp dir); None when the case is not run.
STATIC_DIR = os.environ.get("BENCH_STATIC_DIR")

assert len(SEED_BODY) == SEED_SIZE and len(SMALL_BODY) == 6
