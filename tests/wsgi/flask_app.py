"""A Flask application for the WSGI tests (``tests.wsgi.flask_app:app``)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask, Response, redirect, request, stream_with_context, url_for

app = Flask(__name__)


@app.post("/json")
def json_echo() -> dict[str, object]:
    data = request.get_json()
    return {"got": data, "path": request.path, "url": request.url}


@app.get("/old")
def old() -> Response:
    return redirect(url_for("new"))  # type: ignore[return-value]


@app.get("/new")
def new() -> str:
    return "new place"


@app.post("/upload")
def upload() -> dict[str, object]:
    f = request.files["file"]
    content = f.read()
    return {
        "filename": f.filename,
        "size": len(content),
        "sum": sum(content) % 65521,
        "field": request.form.get("field"),
    }


@app.get("/stream")
def stream() -> Response:
    """Three events; the third is made only once the file ``gate`` names exists (or 10 s passed).

    The client creates that file when it has read the second event, so a server that held the
    response back until the app finished would make the third say "timeout".
    """
    gate = request.args["gate"]

    def generate() -> Iterator[str]:
        yield "event 0\n"
        yield "event 1\n"
        deadline = time.monotonic() + 10
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "event 2 after " + ("gate" if os.path.exists(gate) else "timeout") + "\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/where")
def where() -> dict[str, str]:
    return {
        "script_root": request.script_root,
        "path": request.path,
        "url": request.url,
        "for_new": url_for("new"),
    }
