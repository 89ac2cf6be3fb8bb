"""The HTTP/2 connection in process: how the streams of one connection share time.

A real ``Http2Connection`` (taken over by prior knowledge from an ``HttpConnection`` serving
``tests.apps:Engine``, or an ASGI application) on the fake transport and hand-moved clock of ``tests/aio/fakes.py``; the
client is the sans-IO ``h2`` package, so the test names the instant each answer is written.
What needs a kernel (TLS and ALPN, real sockets, flow control against a real client) stays in
``test_h2_e2e.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from peregrine.asgi import AsgiHandler
from peregrine.config import Config

from ..apps import Engine
from .fakes import ClockLoop, Wire, http_connection

EPSILON = 0.001


class Client:
    """An ``h2`` client connection on a ``Wire``: requests out, finished streams in."""

    def __init__(self, wire: Wire, window: int | None = None) -> None:
        self.wire = wire
        config = h2.config.H2Configuration(client_side=True, header_encoding="latin-1")
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if window is not None:  # the stream window the client grants the server's answers
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        #: stream id -> (status, body) of every stream the server has ended
        self.finished: dict[int, tuple[str, bytes]] = {}
        #: stream id -> error code of every stream the server has reset
        self.reset: dict[int, int] = {}
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
                elif isinstance(event, h2.events.StreamReset):
                    self.reset[event.stream_id] = event.error_code

    def get(self, path: str) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(sid, headers, end_stream=True)
        return sid

    def post(self, path: str, body: bytes) -> int:
        """A POST whose body ``body`` is sent but not ended (the request stays open)."""
        sid: int = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(sid, headers)
        self.conn.send_data(sid, body)
        return sid

    def cancel(self, sid: int) -> None:
        """Reset stream ``sid`` (RST_STREAM CANCEL: the client no longer wants the answer)."""
        self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)


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


class Stubborn:
    """An ASGI application that tells what happens to it and returns only when ``release`` is
    set (so that the test decides when it ends), whatever the client does meanwhile.

    ``/stubborn``: answers nothing, waits for ``release``. ``/listen``: starts a streamed
    response, then records each message ``receive()`` gives, tries one more ``send()`` after the
    disconnect (recording what it raised), and still finishes its own work after that.
    ``/blocked``: streams until ``send()`` fails (the client grants no window).
    ``/answer-first``: sends a whole response at once, then waits for ``release``.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.log: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        try:
            if path == "/stubborn":
                await self.release.wait()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"late"})
            elif path == "/listen":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"wait", "more_body": True})
                while (message := await receive())["type"] == "http.request":
                    pass
                self.log.append(message["type"])
                try:
                    await send({"type": "http.response.body", "body": b"more", "more_body": True})
                except OSError as exc:
                    self.log.append(f"send raised {type(exc).__name__}")
                await self.release.wait()
                self.log.append("finished its work")
            elif path == "/answer-first":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"answered"})
                await self.release.wait()
            elif path == "/blocked":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                try:
                    while True:
                        await send({"type": "http.response.body", "body": b"x", "more_body": True})
                except OSError as exc:
                    self.log.append(f"send raised {type(exc).__name__}")
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise


def asgi_connection(loop: ClockLoop, app: Stubborn, **options: Any) -> Wire:
    config = Config(lifespan="off", **options)
    wire, _ = http_connection(loop, AsgiHandler(app, config), **options, lifespan="off")
    return wire


def test_a_reset_stream_is_a_disconnect_for_the_asgi_app_not_a_cancellation(
    loop: ClockLoop,
) -> None:
    """As when an HTTP/1 client closes its connection: receive() says http.disconnect, send()
    raises an OSError at once, and the application's own work after that runs to its end."""
    app = Stubborn()
    client = Client(asgi_connection(loop, app))
    sid = client.get("/listen")
    client.flush()
    assert client._body[sid] == b"wait"
    client.cancel(sid)
    client.flush()
    assert app.log == ["http.disconnect", "send raised ClientDisconnected"]
    app.release.set()
    loop.run_ready()
    assert app.log[-1] == "finished its work"


def test_a_send_waiting_for_window_raises_when_the_stream_is_reset(loop: ClockLoop) -> None:
    app = Stubborn()
    client = Client(asgi_connection(loop, app), window=0)
    sid = client.get("/blocked")
    client.flush()
    assert app.log == []  # waiting for window the client never grants
    client.cancel(sid)
    client.flush()
    assert app.log == ["send raised ConnectionResetError"]


def test_reset_streams_of_running_asgi_apps_keep_their_place_till_the_apps_return(
    loop: ClockLoop,
) -> None:
    """Resetting streams whose application runs on does not make room for more: at
    max_concurrent_streams running applications a new stream is refused (REFUSED_STREAM, which
    the client may retry), until some return (rapid reset without cancelling the apps)."""
    app = Stubborn()
    client = Client(asgi_connection(loop, app, http2_max_concurrent_streams=4))
    first = [client.get("/stubborn") for _ in range(4)]
    client.flush()
    for sid in first:
        client.cancel(sid)
    client.flush()
    assert client.reset == {} and client.finished == {}
    refused = client.get("/stubborn")
    client.flush()
    assert client.reset == {refused: h2.errors.ErrorCodes.REFUSED_STREAM}
    app.release.set()  # the four applications return (their answers go nowhere)
    loop.run_ready()
    served = client.get("/stubborn")
    client.flush()
    assert client.finished == {served: ("200", b"late")}
    assert "cancelled" not in app.log


# (id, how a stream is ended by the server's own answer while its application runs on, the
# answer the client gets, server options)
ANSWERED_WHILE_RUNNING = [
    ("413-mid-body", lambda c: c.post("/stubborn", b"x" * 200), "413", {"max_body_size": 100}),
    ("408-body-timeout", lambda c: c.post("/stubborn", b"x"), "408", {"body_timeout": 5.0}),
    ("own-answer-then-work", lambda c: c.get("/answer-first"), "200", {}),
]


@pytest.mark.parametrize(
    "start, status, options",
    [c[1:] for c in ANSWERED_WHILE_RUNNING],
    ids=[c[0] for c in ANSWERED_WHILE_RUNNING],
)
def test_streams_answered_while_their_asgi_apps_run_keep_their_place_till_the_apps_return(
    loop: ClockLoop, start: Any, status: str, options: dict[str, Any]
) -> None:
    """A stream the server ends itself (a 413 mid-body, a body timeout, or the application's
    own complete answer) while the application runs on keeps its place among
    max_concurrent_streams until the application returns: at the limit a new stream is
    refused (REFUSED_STREAM), as for streams the client reset."""
    app = Stubborn()
    client = Client(asgi_connection(loop, app, http2_max_concurrent_streams=4, **options))
    first = [start(client) for _ in range(4)]
    client.flush()
    loop.advance(options.get("body_timeout", 0.0))
    client.flush()
    assert {sid: client.finished[sid][0] for sid in first} == dict.fromkeys(first, status)
    refused = client.get("/answer-first")
    client.flush()
    assert client.reset.get(refused) == h2.errors.ErrorCodes.REFUSED_STREAM
    app.release.set()  # the four applications return
    loop.run_ready()
    served = client.get("/answer-first")
    client.flush()
    assert client.finished[served] == ("200", b"answered")
