"""A Flask application served by Peregrine (WSGI, PEP 3333). Needs Flask: pip install flask.

Run it:  python examples/wsgi_flask.py [--port N] [--threads N]
   or:   peregrine run examples.wsgi_flask:app --workers 4 --threads 8

Routes: ``/`` (text), ``/hello/<name>`` (JSON), ``POST /echo`` (JSON body back),
``/stream`` (a streamed body, one line every 0.2 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/")
def index() -> Response:
    return Response("Kawww from Flask\n", mimetype="text/plain")


@app.get("/hello/<name>")
def hello(name: str) -> dict[str, str]:
    return {"hello": name}


@app.post("/echo")
def echo() -> dict[str, object]:
    return {"you_sent": request.get_json(silent=True)}


@app.get("/stream")
def stream() -> Response:
    def lines() -> Iterator[str]:
        for i in range(5):
            yield f"line {i}\n"
            time.sleep(0.2)  # blocking is fine: the app runs in a thread of the pool

    return Response(lines(), mimetype="text/plain")


if __name__ == "__main__":
    from peregrine.cli import run_example

    run_example(app)
