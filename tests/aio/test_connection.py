"""The HTTP/1.x connection in process: timers, pipelining, flow control, upgrades, shutdown.

Each test drives a real ``HttpConnection`` (serving ``tests.apps:Engine``) on a ``FakeTransport``
through the asyncio protocol methods only, on a loop whose clock the test moves by hand
(``tests/aio/fakes.py``). Time-dependent behaviour is therefore asserted to the instant: a
deadline of 1 s has not fired at 0.999 s and has at 1 s. What needs a kernel (real resets,
sendfile, TLS, signals) stays in ``test_connection_e2e.py``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import socket
import time
from typing import Any

import httptools
import pytest

import peregrine
from peregrine.aio.connection import HttpConnection
from peregrine.aio.state import ServerState
from peregrine.config import Config

from ..apps import Engine
from .fakes import ClockLoop, Wire, get, http_connection, request

EPSILON = 0.001


def echo_of(body: bytes) -> dict[str, Any]:
    return json.loads(body)  # type: ignore[no-any-return]


def post(path: str, body: bytes, headers: str = "") -> bytes:
    return request("POST", path, headers=headers, body=body)


def lingers_then_closes(wire: Wire) -> None:
    """After an error response: our side is shut (FIN after the answer), what the client still
    sends is read and dropped, and the connection closes when the client closes (aio/linger.py)."""
    assert wire.transport.eof_written and not wire.closed
    wire.send(b"more from the client")
    wire.send_eof()
    assert wire.closed and wire.transport.how == "close"


# --- persistence -----------------------------------------------------------------------------------


class TestPersistence:
    """RFC 9112 §9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only with ``keep-alive``."""

    def test_http11_answers_many_requests_on_one_connection(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        for code in (200, 201, 202):
            wire.send(get(f"/status?code={code}"))
            (resp,) = wire.responses()
            assert resp.status == code and resp.get("connection") is None
        assert not wire.transport.is_closing()

    @pytest.mark.parametrize(
        "data, connection",
        [
            (get("/", headers="Connection: close\r\n"), "close"),
            (get("/", version="1.0"), "close"),
            (get("/close"), "close"),  # the handler asked for it
        ],
        ids=["client-close", "http10", "handler-close"],
    )
    def test_closing_exchanges(self, loop: ClockLoop, data: bytes, connection: str) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(data + get("/status?code=201"))  # nothing after the close is answered
        (resp,) = wire.responses()
        assert resp.getall("connection") == [connection]
        assert wire.transport.how == "close" and wire.closed
        assert wire.received() == b""

    def test_http10_keep_alive(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        for _ in range(3):
            wire.send(get("/", version="1.0", headers="Connection: keep-alive\r\n"))
            resp = wire.response()
            assert resp.body == b"ok"
            assert resp.get("connection") == "keep-alive"
            assert resp.get("keep-alive") == "timeout=5"  # the default keep_alive_timeout
        assert not wire.transport.is_closing()

    def test_http10_chunked_request_is_processed_then_closed(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(
            b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing: the message is
        # processed, then the connection closed (nothing after it can be trusted)
        resp = wire.response()
        assert resp.status == 200 and echo_of(resp.body)["body"] == "abc"
        assert resp.get("connection") == "close" and wire.closed

    @pytest.mark.parametrize("path", ["/", "/slow?s=0.2"], ids=["sync", "async"])
    def test_half_closed_client_is_closed_after_its_response(
        self, loop: ClockLoop, path: str
    ) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(get(path))
        wire.send_eof()
        loop.advance(0.2)
        assert wire.response().status == 200
        assert wire.transport.how == "close" and wire.closed  # at once, not at keep-alive's end


# --- pipelining and fragmentation ---------------------------------------------------------------------


class TestPipelining:
    """RFC 9112 §9.3.2: pipelined requests are answered in the order received."""

    def test_in_order(self, loop: ClockLoop) -> None:
        codes = [200, 201, 202, 203, 404, 410, 418, 299] * 4
        wire, _ = http_connection(loop, Engine())
        wire.send(b"".join(get(f"/status?code={c}") for c in codes))
        assert [r.status for r in wire.responses()] == codes

    def test_slow_async_request_holds_back_the_ones_after_it(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(
            get("/slow?s=0.5")
            + get("/status?code=201")
            + post("/echo", b"abc")
            + get("/iter?n=2")
            + get("/")
        )
        loop.advance(0.5 - EPSILON)
        assert wire.received() == b""  # nothing overtakes the slow first answer
        loop.advance(EPSILON)
        first, second, third, fourth, fifth = wire.responses()
        assert first.body == b"slept 0.5\n" and second.status == 201
        assert echo_of(third.body)["body"] == "abc"
        assert fourth.body == b"chunk 0\nchunk 1\n" and fifth.body == b"ok"

    def test_async_answers_keep_request_order(self, loop: ClockLoop) -> None:
        delays = ["0.3", "0", "0.2", "0", "0.1", "0"]
        wire, _ = http_connection(loop, Engine())
        wire.send(b"".join(get(f"/slow?s={d}") for d in delays))
        loop.advance(0.3)  # the later ones start only when the earlier are answered
        assert [r.body for r in wire.responses()] == [b"slept 0.3\n", b"slept 0\n"]
        loop.advance(0.2)
        assert [r.body for r in wire.responses()] == [b"slept 0.2\n", b"slept 0\n"]
        loop.advance(0.1)
        assert [r.body for r in wire.responses()] == [b"slept 0.1\n", b"slept 0\n"]

    def test_reading_pauses_at_max_pipelined_and_resumes(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), max_pipelined=4)
        wire.send(get("/slow?s=1"))
        wire.send(*(get(f"/status?code={200 + i}") for i in range(3)))
        assert wire.transport.reading  # three wait: under the limit
        wire.send(get("/status?code=203"))
        assert not wire.transport.reading  # four wait behind a busy handler: TCP pushes back
        wire.send(*(get(f"/status?code={204 + i}") for i in range(4)))  # held by the kernel
        loop.advance(1)
        statuses = [r.status for r in wire.responses()]
        assert statuses == [200, *range(200, 208)]
        assert wire.transport.reading

    def test_many_more_than_max_pipelined(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(
            get("/slow?s=0.2") + b"".join(get(f"/status?code={200 + i % 50}") for i in range(100))
        )
        loop.advance(0.2)
        responses = wire.responses()
        assert [r.status for r in responses[1:]] == [200 + i % 50 for i in range(100)]

    def test_bad_request_behind_a_slow_one_is_answered_in_turn(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(get("/slow?s=0.3") + b"GET / HTTP/1.1\r\n\r\n" + get("/"))
        assert not wire.transport.reading  # nothing after a bad request is read
        loop.advance(0.3)
        first, second = wire.responses()
        assert first.body == b"slept 0.3\n" and second.status == 400
        lingers_then_closes(wire)

    def test_handler_close_drops_the_requests_behind_it_unrun(self, loop: ClockLoop) -> None:
        app = Engine()
        wire, _ = http_connection(loop, app)
        wire.send(
            b"GET /close HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
            + get("/count")
        )
        assert [r.status for r in wire.responses()] == [200]
        assert app.count == 0 and wire.closed


class TestFragmentation:
    """A request may arrive split anywhere: every split point gives the same answers."""

    PIPELINE = (
        b"POST /echo?x=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
        + post("/echo", b"wxyz")
        + get("/status?code=202")
    )

    def check(self, wire: Wire) -> None:
        first, second, third = wire.responses()
        assert echo_of(first.body)["body"] == "abcde"
        assert echo_of(first.body)["query_string"] == "x=1"
        assert echo_of(second.body)["body"] == "wxyz"
        assert third.status == 202

    def test_split_in_two_at_every_byte(self, loop: ClockLoop) -> None:
        data = self.PIPELINE
        for at in range(1, len(data)):
            wire, _ = http_connection(loop, Engine())
            wire.send(data[:at], data[at:])
            self.check(wire)

    def test_one_byte_at_a_time(self, loop: ClockLoop) -> None:
        data = self.PIPELINE
        wire, _ = http_connection(loop, Engine())
        wire.send(*(data[i : i + 1] for i in range(len(data))))
        self.check(wire)


class TestChunkedFraming:
    """A chunked body's framing gets one answer however TCP splits it, and a body refused for its
    framing never reaches the handler (the parser's tables: tests/http/test_parser_limits.py)."""

    HEAD = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    CASES = [
        ("junk-after-the-size", HEAD + b"5 x" + b"a" * 40000 + b"\r\n", {}, [400]),
        (
            "extension-of-40k",
            HEAD + b"5;" + b"a" * 40000 + b"\r\nabcde\r\n0\r\n\r\n" + get("/"),
            {},
            [413],
        ),
        (
            "extension-over-a-configured-limit",
            HEAD + b"5;" + b"a" * 150 + b"\r\nabcde\r\n0\r\n\r\n",
            {"max_chunk_extensions": 100},
            [413],
        ),
        (
            "extension-within-a-configured-limit",
            HEAD + b"5;" + b"a" * 99 + b"\r\nabcde\r\n0\r\n\r\n",
            {"max_chunk_extensions": 100},
            [200],
        ),
        (
            "transfer-encoding-with-trailing-empty-elements",
            HEAD.replace(b"chunked", b"chunked, ,") + b"5\r\nabcde\r\n0\r\n\r\n" + get("/"),
            {},
            [200, 200],
        ),
    ]

    @staticmethod
    def reads(data: bytes) -> list[list[bytes]]:
        """One read, 1,460-byte reads, and two reads cut at ~60 places."""
        step = max(1, len(data) // 60)
        return [
            [data],
            [data[i : i + 1460] for i in range(0, len(data), 1460)],
            *([data[:i], data[i:]] for i in range(1, len(data), step)),
        ]

    @pytest.mark.parametrize(
        "data, options, statuses", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
    )
    def test_same_answers_however_split(
        self, loop: ClockLoop, data: bytes, options: dict[str, int], statuses: list[int]
    ) -> None:
        for pieces in self.reads(data):
            wire, _ = http_connection(loop, Engine(), **options)
            wire.send(*pieces)
            responses = wire.responses()
            assert [r.status for r in responses] == statuses, [len(p) for p in pieces]
            if statuses[0] == 200:
                assert echo_of(responses[0].body)["body"] == "abcde"


class TestIdleParser:
    """An idle keep-alive connection holds no parser (memory per idle connection); the next
    request, however it arrives, is served as if it never went away."""

    IDLE = 1.0  # longer than the connection takes to notice it is idle

    def parked(self, loop: ClockLoop, **options: Any) -> Wire:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=60, **options)
        wire.send(get("/status?code=201"))
        assert wire.response().status == 201
        loop.advance(self.IDLE)
        assert wire.protocol.parser is None  # type: ignore[attr-defined]
        return wire

    def test_a_parked_connection_answers_a_pipeline_split_at_every_byte(
        self, loop: ClockLoop
    ) -> None:
        data = TestFragmentation.PIPELINE
        for at in range(1, len(data)):
            wire = self.parked(loop)
            wire.send(data[:at], data[at:])
            TestFragmentation().check(wire)

    def test_a_parked_connection_answers_a_pipeline_one_byte_at_a_time(
        self, loop: ClockLoop
    ) -> None:
        data = TestFragmentation.PIPELINE
        wire = self.parked(loop)
        wire.send(*(data[i : i + 1] for i in range(len(data))))
        TestFragmentation().check(wire)

    def test_a_request_in_progress_keeps_its_parser(self, loop: ClockLoop) -> None:
        wire = self.parked(loop)
        wire.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
        loop.advance(self.IDLE)  # a gap within the body (body_timeout is longer)
        assert wire.protocol.parser is not None  # type: ignore[attr-defined]
        wire.send(b"cd")
        assert echo_of(wire.response().body)["body"] == "abcd"

    def test_it_parks_again_after_the_next_request(self, loop: ClockLoop) -> None:
        wire = self.parked(loop)
        for _ in range(3):
            wire.send(get("/"))
            assert wire.response().body == b"ok"
            assert wire.protocol.parser is not None  # type: ignore[attr-defined]
            loop.advance(self.IDLE)
            assert wire.protocol.parser is None  # type: ignore[attr-defined]

    def test_bad_bytes_after_parking_get_400(self, loop: ClockLoop) -> None:
        wire = self.parked(loop)
        wire.send(b"\x00GET / HTTP/1.1\r\n\r\n")
        assert wire.response().status == 400

    def test_the_keep_alive_timeout_stays_exact(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=3)
        wire.send(get("/"))
        assert wire.response().body == b"ok"
        loop.advance(3 - EPSILON)
        assert wire.protocol.parser is None  # type: ignore[attr-defined]
        assert not wire.transport.is_closing()
        loop.advance(EPSILON)
        assert wire.transport.how == "close" and wire.received() == b""

    def test_the_header_timeout_of_the_next_request_stays_exact(self, loop: ClockLoop) -> None:
        wire = self.parked(loop, header_timeout=2)
        wire.send(b"GET / HTTP/1.1\r\n")
        loop.advance(2 - EPSILON)
        assert wire.received() == b""
        loop.advance(EPSILON)
        assert wire.response().status == 408

    def test_a_parked_connection_is_idle_and_has_had_its_first_request(
        self, loop: ClockLoop
    ) -> None:
        conn = self.parked(loop).protocol
        assert conn.is_idle()  # type: ignore[attr-defined]
        assert not conn.awaits_first_request()  # type: ignore[attr-defined]

    def test_a_busy_connection_keeps_its_parser(self, loop: ClockLoop) -> None:
        # a request every 0.1 s for 3 s: the timer looks several times, never at a quiet spell
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=60)
        wire.send(get("/"))
        assert wire.response().body == b"ok"
        parser = wire.protocol.parser  # type: ignore[attr-defined]
        for _ in range(30):
            loop.advance(0.1)
            wire.send(get("/"))
            assert wire.response().body == b"ok"
            assert wire.protocol.parser is parser  # type: ignore[attr-defined]
        loop.advance(0.5 - EPSILON)
        assert wire.protocol.parser is parser  # type: ignore[attr-defined]
        loop.advance(self.IDLE)
        assert wire.protocol.parser is None  # type: ignore[attr-defined]

    def test_busy_connections_are_swept_together_without_a_timer_of_their_own(
        self, loop: ClockLoop
    ) -> None:
        # Whether a connection went quiet is found by one sweep, every 1/8 s, of the connections
        # holding a parser (aio/parking.py), not by each connection's read timer coming back to
        # look: while busy, that timer stays at the deadline it had, and the timer queue holds
        # one entry per connection plus the sweep's. Parking comes 0.5 to 0.625 s after the
        # last request, at a sweep; with every parser dropped, no sweep is pending.
        first, state = http_connection(loop, Engine(), keep_alive_timeout=60)
        wires = [first] + [http_connection(loop, Engine(), state=state)[0] for _ in range(2)]
        timers_at = [wire.protocol.timer_at for wire in wires]  # type: ignore[attr-defined]
        last_request: dict[int, float] = {}
        for _ in range(20):  # a request on each every 0.1 s for 2 s
            for index, wire in enumerate(wires):
                wire.send(get("/"))
                assert wire.response().body == b"ok"
                last_request[index] = loop.elapsed
                loop.advance(0.03)
            loop.advance(0.01)
        assert [wire.protocol.timer_at for wire in wires] == timers_at  # type: ignore[attr-defined]
        assert len(state.timers) == len(wires) + 1
        parked_at: dict[int, float] = {}
        while len(parked_at) < len(wires):
            loop.advance(0.001)
            for index, wire in enumerate(wires):
                if wire.protocol.parser is None and index not in parked_at:  # type: ignore[attr-defined]
                    parked_at[index] = loop.elapsed
        for index, at in parked_at.items():
            assert 0.5 <= at - last_request[index] <= 0.625 + 0.001
            assert round(at * 8, 6) % 1 == 0  # at a sweep, on the 1/8 s grid
        assert len(set(parked_at.values())) < len(wires)  # (without the sweep: one time each)
        assert state.parking.timer_number == 0 and not state.parking.holding
        assert len(state.timers) == len(wires)

    def test_a_closed_connection_leaves_the_sweep(self, loop: ClockLoop) -> None:
        first, state = http_connection(loop, Engine(), keep_alive_timeout=60)
        second, _ = http_connection(loop, Engine(), state=state)
        assert state.parking.holding == {first.protocol, second.protocol}
        first.send(get("/", headers="Connection: close\r\n"))
        assert first.closed
        second.transport.reset()
        assert not state.parking.holding
        assert state.parking.timer_number == 0  # no sweep left pending either

    def test_a_short_keep_alive_timeout_stays_exact_on_a_busy_connection(
        self, loop: ClockLoop
    ) -> None:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=0.3)
        for _ in range(5):
            wire.send(get("/"))
            assert wire.response().body == b"ok"
            loop.advance(0.2)
        loop.advance(0.1 - EPSILON)
        assert not wire.transport.is_closing()
        loop.advance(EPSILON)
        assert wire.transport.how == "close"

    @pytest.mark.parametrize("how", ["parked", "closed", "reset", "upgraded", "declined"])
    def test_a_parser_let_go_is_freed_without_the_cycle_collector(
        self, loop: ClockLoop, how: str
    ) -> None:
        # llhttp's parser holds bound methods of ours: left in that cycle, every parser dropped
        # (at each park, at each close) waits for a full pass of the cyclic GC, a pause of the
        # whole worker that grows with the number of connections
        # (counted: llhttp's parsers, the cycle's other half; after a close, our parser lives on
        # with the connection object, not in a cycle)
        # (only the youngest generation is searched: with the collector off, every object made
        # from here on stays in it, and the whole heap of a test process is ~10^6 objects)
        def live_parsers() -> int:
            young = gc.get_objects(generation=0)
            return sum(1 for o in young if type(o) is httptools.HttpRequestParser)

        gc.disable()
        try:
            before = live_parsers()
            app = Upgrader() if how == "upgraded" else Engine()
            wire, _ = http_connection(loop, app, keep_alive_timeout=60)
            wire.send(get("/"))
            assert wire.response().body == b"ok"
            assert live_parsers() == before + 1
            if how == "upgraded":
                wire.send(UPGRADE)
                assert wire.response(head_only=True).status == 101
            elif how == "declined":  # the request's parser ends; a new one reads what follows
                wire.send(
                    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n"
                )
                assert wire.response().body == b"ok"
                assert live_parsers() == before + 1
                wire.transport.reset()
            elif how == "parked":
                loop.advance(self.IDLE)
                assert wire.protocol.parser is None  # type: ignore[attr-defined]
            elif how == "closed":
                wire.send(get("/", headers="Connection: close\r\n"))
                assert wire.closed
            else:
                wire.transport.reset()
            assert live_parsers() == before
        finally:
            gc.enable()

    def test_a_connection_without_a_request_keeps_its_parser(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), header_timeout=5)
        loop.advance(self.IDLE)
        conn = wire.protocol
        assert conn.parser is not None and conn.awaits_first_request()  # type: ignore[attr-defined]


# --- request bodies and 100-continue --------------------------------------------------------------------


class TestContinue:
    def test_100_continue_before_the_body(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        assert wire.received() == b"HTTP/1.1 100 Continue\r\n\r\n"
        wire.send(b"hello")
        assert echo_of(wire.response().body)["body"] == "hello"

    def test_100_continue_waits_for_the_request_before(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(
            get("/slow?s=0.3")
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        assert wire.received() == b""
        loop.advance(0.3)
        first, interim = wire.responses()
        assert first.body == b"slept 0.3\n" and interim.status == 100
        wire.send(b"hi")
        assert echo_of(wire.response().body)["body"] == "hi"

    def test_no_100_for_http10(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert wire.received() == b""
        wire.send(b"hi")
        resp = wire.response()
        assert resp.status == 200 and echo_of(resp.body)["body"] == "hi"

    def test_body_too_large_is_413_without_100(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        assert wire.received().startswith(b"HTTP/1.1 413 ")
        lingers_then_closes(wire)


# --- read timeouts ------------------------------------------------------------------------------------


class TestReadTimeouts:
    """One timer for all reads: keep-alive (idle), header (whole head), body (gap between parts)."""

    def test_idle_keep_alive_closes_at_the_timeout(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=0.5)
        wire.send(get("/"))
        assert wire.response().body == b"ok"
        loop.advance(0.5 - EPSILON)
        assert not wire.transport.is_closing()
        loop.advance(EPSILON)
        assert wire.transport.how == "close" and wire.received() == b""  # no 408 for idling

    def test_keep_alive_restarts_with_each_request(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=0.5)
        for _ in range(4):
            wire.send(get("/"))
            assert wire.response().body == b"ok"
            loop.advance(0.4)
        assert not wire.transport.is_closing()
        loop.advance(0.1)
        assert wire.closed

    def test_no_read_timeout_while_the_handler_runs(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(
            loop, Engine(), keep_alive_timeout=0.5, header_timeout=1, body_timeout=1
        )
        wire.send(get("/slow?s=5"))
        loop.advance(5)
        assert wire.response().body == b"slept 5\n"
        assert not wire.transport.is_closing()

    def test_silent_new_connection_gets_408_at_the_header_timeout(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), header_timeout=1)
        loop.advance(1 - EPSILON)
        assert not wire.transport.is_closing()
        loop.advance(EPSILON)
        assert wire.response().status == 408
        lingers_then_closes(wire)

    def test_header_timeout_counts_from_the_first_byte(self, loop: ClockLoop) -> None:
        """Not from the last packet: a head arriving in pieces must be complete in time."""
        wire, _ = http_connection(loop, Engine(), header_timeout=1.5, keep_alive_timeout=5)
        wire.send(get("/"))
        wire.responses()
        loop.advance(3)  # idle, within keep-alive
        wire.send(b"G")
        loop.advance(1)
        wire.send(b"ET / HTTP/1.1\r\n")
        loop.advance(0.5 - EPSILON)
        assert wire.received() == b""
        loop.advance(EPSILON)
        assert wire.response().status == 408
        lingers_then_closes(wire)

    def test_slowloris_gets_408(self, loop: ClockLoop) -> None:
        """A client dripping header lines, always some progress, never the end of the head."""
        wire, _ = http_connection(loop, Engine(), header_timeout=1)
        wire.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        for _ in range(9):
            loop.advance(0.1)
            wire.send(b"X-Drip: 1\r\n")
        loop.advance(0.1 - EPSILON)
        assert wire.received() == b""
        loop.advance(EPSILON)
        assert wire.response().status == 408
        lingers_then_closes(wire)

    def test_body_gap_gets_408(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), body_timeout=1)
        wire.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        loop.advance(0.9)
        wire.send(b"def")  # each part restarts the gap
        loop.advance(1 - EPSILON)
        assert wire.received() == b""
        loop.advance(EPSILON)
        assert wire.response().status == 408
        lingers_then_closes(wire)

    def test_slow_body_with_short_gaps_is_accepted(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), body_timeout=1, header_timeout=1)
        wire.send(post("/echo", b"abcdefgh")[:-8])
        for piece in (b"ab", b"cd", b"ef", b"gh"):  # 3.6 s in all, gaps of 0.9 s
            loop.advance(0.9)
            wire.send(piece)
        assert echo_of(wire.response().body)["body"] == "abcdefgh"

    @pytest.mark.parametrize("first", [b"", get("/")], ids=["fresh", "after-a-request"])
    def test_empty_lines_do_not_keep_a_connection_open(self, loop: ClockLoop, first: bytes) -> None:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=0.5, header_timeout=1)
        if first:
            wire.send(first)
            assert wire.response().body == b"ok"
        for _ in range(20):
            if wire.transport.is_closing() or wire.transport.eof_written:
                break
            wire.send(b"\r\n")
            loop.advance(0.1)
        # empty lines are no progress: the deadline that was running fires on time
        if first:
            assert loop.elapsed == 0.5 and wire.closed  # keep-alive: closed, nothing said
            assert wire.received() == b""
        else:
            assert loop.elapsed == 1.0 and wire.response().status == 408  # header timeout
            lingers_then_closes(wire)

    def test_http09_request_line_is_refused(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.send(b"GET /\r\n")
        assert wire.response().status == 400
        lingers_then_closes(wire)

    def test_keep_alive_deadline_does_not_cut_pipelined_async_work(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), keep_alive_timeout=0.5)
        wire.send(get("/"))
        wire.responses()
        wire.send(get("/slow?s=1.5") + get("/"))
        loop.advance(1.5)
        assert [r.body for r in wire.responses()] == [b"slept 1.5\n", b"ok"]

    def test_header_deadline_of_a_first_request_is_gone_once_it_is_read(
        self, loop: ClockLoop
    ) -> None:
        wire, _ = http_connection(loop, Engine(), header_timeout=1)
        wire.send(get("/slow?s=1.5") + get("/"))
        loop.advance(1.5)
        assert [r.status for r in wire.responses()] == [200, 200]
        wire.send(get("/"))
        assert wire.response().status == 200

    def test_no_408_while_the_client_waits_for_100_continue(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), body_timeout=1)
        wire.send(
            get("/slow?s=2")
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        loop.advance(2)
        assert [r.status for r in wire.responses()] == [200, 100]
        loop.advance(1 - EPSILON)  # the body gap counts from the 100 Continue
        wire.send(b"hello")
        assert wire.response().status == 200

    def test_no_408_for_a_request_the_server_did_not_read(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), header_timeout=1, max_pipelined=1)
        wire.send(get("/slow?s=2"))
        loop.advance(0.2)
        wire.send(get("/") + b"GET /close HTT")  # reading pauses: the rest waits in the kernel
        loop.advance(0.2)
        wire.send(b"P/1.1\r\nHost: t\r\n\r\n")
        loop.advance(1.6)
        assert [r.status for r in wire.responses()] == [200, 200, 200]
        assert wire.closed  # the last one was /close


# --- sending ------------------------------------------------------------------------------------------


class TestSendTimeout:
    """A client that reads nothing of a pending answer for ``send_timeout`` is dropped."""

    def test_client_that_stops_reading_is_aborted(self, loop: ClockLoop) -> None:
        wire, state = http_connection(loop, Engine(), send_timeout=1)
        wire.transport.client_reads = False
        wire.send(get("/big?n=3000000"))
        assert wire.transport.get_write_buffer_size() > 3_000_000
        loop.advance(1 - EPSILON)
        assert not wire.transport.is_closing()
        loop.advance(EPSILON)
        assert wire.aborted and wire.closed
        assert state.connections == set()

    def test_slow_but_reading_client_is_spared(self, loop: ClockLoop) -> None:
        wire, _ = http_connection(loop, Engine(), send_timeout=1)
        wire.transport.client_reads = False
        wire.send(get("/big?n=3000000"))
        for _ in range(30):  # 100 KB every 0.9 s: slow, but never stalled for 1 s
            loop.advance(0.9)
            wire.transport.client_read(100_000)
        assert wire.transport.how != "abort"
        wire.transport.client_read()
        assert len(wire.response().body) == 3_000_000

    def test_stalled_stream_is_aborted_and_its_writer_stopped(self, loop: ClockLoop) -> None:
        app = Engine()
        wire, state = http_connection(loop, app, send_timeout=1)
        wire.transport.client_reads = False
        wire.send(get("/produce?n=2000&size=16384"))
        assert app.produced == 3  # the fourth 16 KB chunk passes the 64 KB high-water mark
        loop.advance(1 - EPSILON)
        assert not wire.transport.is_closing()
        loop.advance(EPSILON)
        assert wire.aborted and state.tasks == set()
        assert (app.produced, app.produce_done) == (3, False)

    def test_close_with_unsent_output_is_watched_under_the_high_water_mark(
        self, loop: ClockLoop
    ) -> None:
        """No pause_writing comes under the mark: the close itself must start the watch."""
        wire, state = http_connection(
            loop,
            Engine(),
            send_timeout=0.5,
            keep_alive_timeout=0.5,
            write_buffer_high=64 << 20,
            max_connections=1,
        )
        wire.transport.client_reads = False
        wire.send(get("/big?n=20000000"))
        loop.advance(0.5)  # keep-alive ends: closing, the answer still in the buffer
        assert wire.transport.how == "close" and not wire.closed
        loop.advance(0.5 - EPSILON)
        assert not wire.closed
        loop.advance(EPSILON)
        assert wire.aborted and wire.closed
        other, _ = http_connection(loop, Engine(), state=state)
        other.send(get("/"))
        assert other.response().status == 200  # the only slot is free again


class TestBackpressure:
    """A client that does not read pauses streamed writes and request parsing: memory stays bounded."""

    def test_stream_writer_waits_for_the_client(self, loop: ClockLoop) -> None:
        app = Engine()
        wire, _ = http_connection(loop, app)
        wire.transport.client_reads = False
        wire.send(get("/produce?n=100&size=16384"))
        assert (app.produced, app.produce_done) == (3, False)
        wire.transport.client_read(20_000)  # above the low-water mark (16 KB): still paused
        loop.run_ready()
        assert app.produced == 3
        wire.transport.client_read(40_000)  # ~5.6 KB left: resumed
        loop.run_ready()
        # the waiting write returns, three more fit under the mark, the next one waits again
        assert app.produced == 7 and wire.transport.writing_paused

    def test_stream_resumes_when_the_client_reads(self, loop: ClockLoop) -> None:
        app = Engine()
        wire, _ = http_connection(loop, app)
        wire.transport.client_reads = False
        wire.send(get("/produce?n=100&size=65536"))
        while not app.produce_done:
            before = app.produced
            wire.transport.client_read()
            loop.run_ready()
            assert app.produced > before
        wire.transport.client_read()
        assert len(wire.response().body) == 100 * 65536

    def test_non_reading_client_does_not_block_others(self, loop: ClockLoop) -> None:
        app = Engine()
        stalled, state = http_connection(loop, app)
        stalled.transport.client_reads = False
        stalled.send(get("/produce?n=1000"))
        other, _ = http_connection(loop, app, state=state)
        other.send(get("/"))
        assert other.response().body == b"ok"

    def test_pipelined_requests_for_a_non_reader_are_not_all_answered(
        self, loop: ClockLoop
    ) -> None:
        wire, _ = http_connection(loop, Engine())
        wire.transport.client_reads = False
        wire.send(get("/big?n=1000000") * 150)  # 150 MB of answers asked for
        # one answer fills the send buffer; the rest wait parsed (up to max_pipelined) or unread
        assert wire.transport.get_write_buffer_size() == len(wire.transport.written)
        assert wire.transport.get_write_buffer_size() < 2_000_000
        assert not wire.transport.reading

    def test_pipelined_flood_is_answered_as_the_client_reads(self, loop: ClockLoop) -> None:
        n = 200
        wire, _ = http_connection(loop, Engine())
        wire.transport.client_reads = False
        wire.send(b"".join(get("/big?n=20000") for _ in range(n)))
        bodies = []
        for _ in range(10 * n):
            wire.transport.client_read()
            loop.run_ready()
            bodies += [r.body for r in wire.responses()]
            if len(bodies) == n:
                break
        assert bodies == [b"x" * 20000] * n


# --- limits, concurrency, errors ------------------------------------------------------------------------


class TestConnections:
    def test_beyond_max_connections_503_then_close(self, loop: ClockLoop) -> None:
        app = Engine()
        first, state = http_connection(loop, app, max_connections=2)
        second, _ = http_connection(loop, app, state=state)
        third, _ = http_connection(loop, app, state=state)
        resp = third.response()
        assert resp.status == 503 and resp.get("connection") == "close" and third.closed
        for wire in (first, second):
            wire.send(get("/"))
            assert wire.response().body == b"ok"
        first.transport.reset()
        fourth, _ = http_connection(loop, app, state=state)
        fourth.send(get("/"))
        assert fourth.response().status == 200  # the slot came back

    @pytest.mark.parametrize(
        "data",
        [
            b"GET / HT",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
            get("/slow?s=0.5"),
            get("/produce?n=500"),
            get("/big?n=5000000"),
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            get("/"),
        ],
        ids=["head", "body", "handler", "stream", "large-write", "expect", "idle"],
    )
    def test_reset_in_any_phase_frees_the_connection(self, loop: ClockLoop, data: bytes) -> None:
        wire, state = http_connection(loop, Engine())
        wire.transport.client_reads = False
        wire.send(data)
        wire.transport.reset()
        loop.advance(60)  # every timer and task the connection started has run out
        assert state.connections == set() and state.tasks == set()
        assert wire.transport.writes_after_close == 0

    def test_slow_async_handlers_run_concurrently(self, loop: ClockLoop) -> None:
        app = Engine()
        wires = [http_connection(loop, app)[0] for _ in range(50)]
        for wire in wires:
            wire.send(get("/slow?s=1"))
        loop.advance(1)
        assert [w.response().body for w in wires] == [b"slept 1\n"] * 50

    def test_async_handler_raising_connection_error_is_a_500(
        self, loop: ClockLoop, caplog: pytest.LogCaptureFixture
    ) -> None:
        class BackendDown(Engine):
            async def backend_down(self) -> None:
                raise ConnectionRefusedError("the handler's own backend refused it")

            def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
                return self.backend_down()

        wire, _ = http_connection(loop, BackendDown())
        wire.send(get("/"))
        assert wire.response().status == 500
        assert "ConnectionRefusedError" in caplog.text

    @pytest.mark.parametrize(
        "accepted, client",
        [
            (("192.0.2.7", 40000), ["192.0.2.7", 40000]),
            (("2001:db8::7", 40000, 0, 0), ["2001:db8::7", 40000]),  # accept()'s IPv6 4-tuple
            ("", None),  # a unix socket's unnamed peer
            (None, ["127.0.0.1", 50000]),  # not given: the transport is asked
        ],
        ids=["ipv4", "ipv6", "unix", "not-given"],
    )
    def test_the_client_is_the_address_accept_returned(
        self, loop: ClockLoop, accepted: Any, client: list[Any] | None
    ) -> None:
        # the acceptor hands over what accept() returned; the transport (uvloop: a getsockname
        # and a getpeername) is asked only when nothing was handed over
        state = ServerState(Config(), Engine(), loop)
        wire = Wire(loop, HttpConnection(state, accepted), peername=("127.0.0.1", 50000))
        wire.send(get("/echo"))
        assert echo_of(wire.response().body)["client"] == client


class TestFiles:
    """Bodies from ``send_file``: here through the transport (the fake has no socket to sendfile)."""

    @pytest.fixture
    def app(self, tmp_path: Any) -> Engine:
        path = str(tmp_path / "f.bin")
        with open(path, "wb") as f:
            f.write(bytes(range(256)) * 1000)

        class Files(Engine):
            async def slow_file(self, resp: peregrine.Response) -> None:
                await asyncio.sleep(0.25)
                resp.send_file(path)

            def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
                if req.path == "/slow-file":
                    return self.slow_file(resp)
                if req.path == "/too-long":
                    resp.send_file(path, 0, 300_000)  # promises more than the file has
                    return None
                resp.send_file(path)
                return None

        return Files()

    def test_file_body_and_access_log_line(
        self, loop: ClockLoop, app: Engine, caplog: pytest.LogCaptureFixture
    ) -> None:
        wire, _ = http_connection(loop, app, access_log=True)
        began = time.perf_counter()
        with caplog.at_level(logging.INFO, "peregrine.access"):
            wire.send(get("/file"), get("/slow-file"))
            loop.advance(0.25)
        took_us = (time.perf_counter() - began) * 1e6
        first, second = wire.responses()
        assert first.body == second.body == bytes(range(256)) * 1000
        lines = [r.getMessage() for r in caplog.records if r.name == "peregrine.access"]
        pattern = r'127\.0\.0\.1:50000 - "GET (/file|/slow-file) HTTP/1\.1" 200 256000 (\d+)us'
        matches = [re.fullmatch(pattern, line) for line in lines]
        assert all(matches) and [m.group(1) for m in matches] == ["/file", "/slow-file"], lines  # type: ignore[union-attr]
        # durations are real time (perf_counter), not the loop's: at most what really passed
        assert all(int(m.group(2)) <= took_us for m in matches), (lines, took_us)  # type: ignore[union-attr]

    def test_file_shorter_than_announced_cuts_the_connection(
        self, loop: ClockLoop, app: Engine
    ) -> None:
        wire, _ = http_connection(loop, app)
        wire.send(get("/too-long"))
        head, _, body = wire.received().partition(b"\r\n\r\n")
        assert b"Content-Length: 300000" in head and len(body) == 256_000
        assert wire.aborted  # the client sees a short body, not a desynchronised stream

    def test_file_the_socket_takes_whole_is_sent_during_the_read(
        self, loop: ClockLoop, app: Engine
    ) -> None:
        """With a socket to ``sendfile`` into and room in it, a sync handler's file goes out
        before ``data_received`` returns: the head through the transport, the body with one
        ``sendfile``, no task left behind. (Bodies larger than the socket takes go on in a task:
        the big-file tests of tests/util/test_static_e2e.py, byte for byte.)"""
        server_end, client_end = socket.socketpair()
        with server_end, client_end:
            server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024 * 1024)
            server_end.setblocking(False)
            state = ServerState(Config(access_log=False), app, loop)
            wire = Wire(loop, HttpConnection(state), sock=server_end)
            wire.transport.deliver(get("/file"))  # data_received, without running the loop
            assert [t for t in asyncio.all_tasks(loop) if not t.done()] == []
            head = wire.received()
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
            assert b"\r\nContent-Length: 256000\r\n" in head
            body = b""
            client_end.settimeout(5)
            while len(body) < 256_000:
                body += client_end.recv(1 << 20)
            assert body == bytes(range(256)) * 1000
            assert state.requests == 1
            wire.send(get("/file"))  # and the connection goes on: the next one the same way
            assert b"\r\nContent-Length: 256000\r\n" in wire.received()
            body = b""
            while len(body) < 256_000:
                body += client_end.recv(1 << 20)
            assert body == bytes(range(256)) * 1000


# --- upgrades -------------------------------------------------------------------------------------------


class Upgrader(Engine):
    """``/up`` switches to a protocol that records what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.protocols: list[Recorder] = []

    def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
        if req.path == "/up":
            resp.status = 101
            resp.set_header("Upgrade", "test")
            resp.set_header("Connection", "Upgrade")
            resp.upgrade(self.make)
            return None
        return super().handle_request(req, resp)

    def make(self, transport: Any, state: Any) -> Recorder:
        protocol = Recorder()
        self.protocols.append(protocol)
        return protocol


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.made = False
        self.data = b""

    def connection_made(self, transport: Any) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.data += data


UPGRADE = b"GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"


class TestUpgrade:
    def test_hand_off_with_the_bytes_after_the_head(self, loop: ClockLoop) -> None:
        app = Upgrader()
        wire, state = http_connection(loop, app, keep_alive_timeout=0.5, header_timeout=1)
        wire.send(UPGRADE + b"first bytes of the new protocol")
        resp = wire.response(head_only=True)
        assert resp.status == 101 and resp.get("upgrade") == "test"
        (protocol,) = app.protocols
        assert wire.transport.protocol is protocol and protocol.made
        assert protocol.data == b"first bytes of the new protocol"
        assert wire.transport.reading
        wire.send(b" and more")
        assert protocol.data.endswith(b" and more")
        loop.advance(60)  # the HTTP side's timers are gone: no 408, no close
        assert wire.received() == b"" and not wire.transport.is_closing()
        assert state.connections == set()  # the new protocol registers itself if it wants to

    def test_upgrade_without_101_is_a_500(self, loop: ClockLoop) -> None:
        class Wrong(Upgrader):
            def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
                super().handle_request(req, resp)  # type: ignore[no-untyped-call]
                resp.status = 200

        app = Wrong()
        wire, _ = http_connection(loop, app)
        wire.send(UPGRADE)
        assert wire.response().status == 500 and app.protocols == []

    @pytest.mark.parametrize("with_body", [False, True], ids=["no-body", "body"])
    def test_declined_upgrade_goes_on_in_http(self, loop: ClockLoop, with_body: bool) -> None:
        smuggled = get("/raise")
        head = b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
        data = head + (
            b"Content-Length: %d\r\n\r\n" % len(smuggled) + smuggled if with_body else b"\r\n"
        )
        wire, _ = http_connection(loop, Engine())
        wire.send(data + get("/status?code=202"))
        first, second = wire.responses()
        assert echo_of(first.body)["body_length"] == (len(smuggled) if with_body else 0)
        assert second.status == 202

    def test_websocket_handshake_and_frames_in_one_packet(self, loop: ClockLoop) -> None:
        from peregrine.ws.frames import FrameParser, serialize_frame

        from ..ws.apps import Echo

        wire, state = http_connection(loop, Echo())
        wire.send(
            b"GET /ws/plain HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + serialize_frame(0x1, b"hello", mask=b"abcd")
        )
        head, _, rest = wire.received().partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        parser = FrameParser(max_payload=1 << 20, require_mask=False, allow_rsv1=True)
        parser.feed(rest)
        frame = parser.next_frame()
        assert frame is not None and (frame.opcode, frame.payload) == (0x1, b"hello")
        assert len(state.connections) == 1  # the WebSocket connection, not the HTTP one


# --- graceful shutdown ----------------------------------------------------------------------------------


class TestShutdown:
    """What the worker does to each connection at shutdown: ``draining``, then ``shutdown()``."""

    def test_idle_connection_closes_at_once(self, loop: ClockLoop) -> None:
        wire, state = http_connection(loop, Engine())
        wire.send(get("/"))
        wire.responses()
        state.draining = True
        for conn in list(state.connections):
            assert conn.is_idle()
            conn.shutdown()
        loop.run_ready()
        assert wire.closed and wire.received() == b""

    def test_response_in_flight_finishes_then_closes(self, loop: ClockLoop) -> None:
        wire, state = http_connection(loop, Engine())
        wire.send(get("/slow?s=1") + get("/"))
        state.draining = True
        for conn in list(state.connections):
            assert not conn.is_idle()
            conn.shutdown()
        assert not wire.transport.is_closing()
        loop.advance(1)
        resp = wire.response()
        assert resp.body == b"slept 1\n" and resp.get("connection") == "close"
        assert wire.closed  # the pipelined request behind it is not started

    def test_partial_request_is_not_idle(self, loop: ClockLoop) -> None:
        wire, state = http_connection(loop, Engine())
        (conn,) = state.connections
        assert conn.is_idle() and conn.awaits_first_request()
        wire.send(b"GET / HTTP/1.1\r\n")
        assert not conn.is_idle() and not conn.awaits_first_request()
        state.draining = True
        wire.send(b"Host: t\r\n\r\n")
        assert wire.response().get("connection") == "close" and wire.closed

    def test_large_answer_being_flushed_is_not_idle(self, loop: ClockLoop) -> None:
        wire, state = http_connection(loop, Engine())
        wire.transport.client_reads = False
        wire.send(get("/big?n=1000000"))
        (conn,) = state.connections
        assert not conn.is_idle()
        wire.transport.client_read()
        assert conn.is_idle()


def test_streamed_response_reports_streaming(loop: ClockLoop) -> None:
    seen: list[bool] = []

    class Streams(Engine):
        async def stream_and_look(self, resp: peregrine.Response) -> None:
            seen.append(resp.streaming)
            await resp.write(b"a")
            seen.append(resp.streaming)

        def handle_request(self, req, resp):  # type: ignore[no-untyped-def]
            return self.stream_and_look(resp)

    wire, _ = http_connection(loop, Streams())
    wire.send(get("/"))
    assert wire.response().body == b"a" and seen == [False, True]
