"""A raw WSGI app (no framework) for every WSGI server: Peregrine (both modes), gunicorn,
granian, uvicorn, peregrine-server, socketify.

Status and headers are prebuilt once so the app itself costs as little as a WSGI app can;
what is measured is the server.
"""

from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]


SEED = (_headers(SEED_BODY), [SEED_BODY])
SMALL = (_headers(SMALL_BODY), [SMALL_BODY])


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read()  # the whole request body, as a real handler would
        headers, body = SMALL
    else:
        path = environ["PATH_INFO"]
        if path == "/":
            headers, body = SEED
        elif path == "/small":
            headers, body = SMALL
        else:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
    start_response("200 OK", list(headers))
    return body
