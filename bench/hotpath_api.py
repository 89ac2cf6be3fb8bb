"""The ladder's `api` rung (bench/apps/ladder.py) driven in-process, for instruction counts.

The same request and handler as bench/hotpath.py, through llhttp with two callbacks and
Peregrine's Request/Response/serialize_head only: what a server offering Peregrine's handler API
cannot avoid. Count it with `SCRIPT=bench/hotpath_api.py bash bench/hotpath.sh`.
"""

import os, time
import httptools
from peregrine.http.dates import date_line
from peregrine.http.request import Request
from peregrine.http.response import Response, serialize_head

BODY = b"x" * 6150
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"
class Handler:
    def handle_request(self, req, resp):
        resp.set_header("Content-Type", "text/plain")
        resp.set_body(BODY)
handle = Handler().handle_request
dates = {"line": date_line(time.time())}
server_line = b"Server: peregrine\r\n"
class T:
    n = 0
    def write(self, d): self.n += 1
class ApiRung:
    def __init__(self, t):
        self.write = t.write
        self.feed = httptools.HttpRequestParser(self).feed_data
        self.url = b""
    def data_received(self, data):
        self.feed(data)
    def on_url(self, url):
        self.url = url
    def on_message_complete(self):
        path, _, query = self.url.partition(b"?")
        request = Request("GET", path, query, "1.1", [], b"", None, True, "http")
        response = Response(None, request)
        handle(request, response)
        data = response.body
        self.write(serialize_head(response, len(data), True, False, dates["line"], server_line) + data)
t = T(); p = ApiRung(t); f = p.data_received
n = int(os.environ.get("N", "1000"))
for _ in range(n): f(REQUEST)
assert t.n == n
