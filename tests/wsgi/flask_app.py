"""A Flask application for the WSGI tests (``tests.wsgi.flask_app:app``)."""

from __future__ import annotations

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
    def generate() -> Iterator[str]:
        for i in range(3):
            yield f"event {i}\n"
            time.sleep(0.3)

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/where")
def where() -> dict[str, str]:
    return {
        "script_root": request.script_root,
        "path": request.path,
        "url": request.url,
        "for_new": url_for("new"),
    }
