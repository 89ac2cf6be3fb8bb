"""The seed endpoint in Flask, for every WSGI server (the "flask-100" case)."""

from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY
from flask import Flask, Response

app = Flask(__name__)


@app.get("/")
def seed() -> Response:
    return Response(SEED_BODY, content_type=CONTENT_TYPE)


@app.get("/small")
def small() -> Response:
    return Response(SMALL_BODY, content_type=CONTENT_TYPE)
