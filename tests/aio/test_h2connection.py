"""The HTTP/2 connection in process: how the streams of one connection share time.

A real ``Http2Connection`` (taken over by prior knowledge from an ``HttpConnection`` serving
``tests.apps:Engine``) on the fake transport and hand-moved clock of ``tests/aio/fakes.py``; the
client is the sans-IO ``h2`` package, so the test names the instant each answer is written.
What needs a kernel (TLS and ALPN, real sockets, flow control against a real client) stays in
``test_h2_e2e.py``.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events

from ..apps import Engine
from .fakes import ClockLoop, Wire, http_connection

EPSILON = 0.001


class Client:
    """An ``h2`` client connection on a ``Wire``: requests out, finished streams in."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        config = h2.config.H2Configuration(client_side=True, header_encoding="latin-1")
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        #: stream id -> (status, body) of every stream the server has ended
        self.finished: dict[int, tuple[str, bytes]] = {}
        self._status: dict[int, str] = {}
        self._body: dict[int, bytes] = {}
        self.flush()

    def flush(self) -> None:
        """Send what the client has to send, and take in what the server has written."""
        while True:
            data = self.conn.data_to_send()
            if data:
                self.wire.send(data)
            received = self.wire.received()
            if not received:
                return
            for event in self.conn.receive_data(received):
                if isinstance(event, h2.events.ResponseReceived):
                    self._status[event.stream_id] = dict(event.headers)[":status"]
                elif isinstance(event, h2.events.DataReceived):
                    sid = event.stream_id
                    self._body[sid] = self._body.get(sid, b"") + event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id
                    self.finished[sid] = (self._status[sid], self._body.get(sid, b""))

    def get(self, path: str) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(sid, headers, end_stream=True)
        return sid


def test_slow_streams_of_one_connection_are_answered_together(loop: ClockLoop) -> None:
    """100 streams whose handler sleeps 0.5 s: all answered at 0.5 s, none before (one after
    the other would take 50 s)."""
    wire, _ = http_connection(loop, Engine())
    client = Client(wire)
    ids = [client.get("/slow?s=0.5") for _ in range(100)]
    client.flush()
    loop.advance(0.5 - EPSILON)
    client.flush()
    assert client.finished == {}
    loop.advance(EPSILON)
    client.flush()
    assert client.finished == {sid: ("200", b"slept 0.5\n") for sid in ids}
