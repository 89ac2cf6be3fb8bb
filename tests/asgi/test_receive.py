"""What ``receive()`` hands an ASGI application, whatever the order of its calls and however the
request's bytes arrive: the body as ``http.request`` (an empty one for a request without a body),
then ``http.disconnect`` once the response is complete. Requests without a body share one empty
body object (``peregrine.aio.body.EMPTY_BODY``), which no exchange may change.

In-process through Peregrine's own protocol code (``peregrine.testing.Client``), each request
also delivered split at every byte.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from peregrine.aio.body import EMPTY_BODY
from peregrine.testing import Client

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
BODY = {"type": "http.response.body", "body": b"ok"}

#: where the application calls receive(): before the response, between its two messages, after
ORDERS = {
    "before, after": ("before", "after"),
    "between, after": ("between", "after"),
    "after only": ("after",),
}

#: request bytes -> the body the application must be handed
REQUESTS = {
    "GET without a body": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    "POST with Content-Length 0": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"",
    ),
    "HTTP/1.0 GET": (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", b""),
    "POST with a body": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"abc"),
    "chunked POST": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"abc",
    ),
    "empty chunked POST": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"",
    ),
}


def expected(order: tuple[str, ...], body: bytes) -> list[dict[str, Any]]:
    """What each receive() returns: the body once, if asked before the response is complete (a
    request whose body ended is also "more_body": False), else the disconnect."""
    messages: list[dict[str, Any]] = []
    for place in order:
        if place != "after" and not messages:
            messages.append({"type": "http.request", "body": body, "more_body": False})
        else:
            messages.append({"type": "http.disconnect"})
    return messages


def recording_app(order: tuple[str, ...], log: list[list[dict[str, Any]]]) -> Any:
    """An application that calls receive() at the places ``order`` names; what it got goes to
    ``log``, one list per request."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        got: list[dict[str, Any]] = []
        log.append(got)

        async def read() -> None:  # until the body is whole (it may come in pieces)
            while True:
                message = await receive()
                got.append(message)
                if message["type"] != "http.request" or not message["more_body"]:
                    return

        if "before" in order:
            await read()
        await send(START)
        if "between" in order:
            await read()
        await send(BODY)
        if "after" in order:
            got.append(await receive())

    return app


def joined(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with each run of ``http.request`` pieces joined into one message (every
    piece but the last says ``more_body``)."""
    result: list[dict[str, Any]] = []
    for message in messages:
        last = result[-1] if result else None
        if (
            message["type"] == "http.request"
            and last is not None
            and last["type"] == "http.request"
            and last["more_body"]
        ):
            result[-1] = {**message, "body": last["body"] + message["body"]}
        else:
            result.append(message)
    return result


def pieces(data: bytes, split: int | None) -> list[bytes]:
    return [data] if split is None else [data[:split], data[split:]]


def serve(client: Client, chunks: list[bytes], responses: int) -> bytes:
    """Deliver ``chunks`` to a fresh connection, one read each, until ``responses`` complete
    responses are out; returns what the server sent."""
    loop, state = client._running()

    async def exchange() -> bytes:
        peer, transport = client._connect(state)
        try:
            for chunk in chunks:
                transport.feed(chunk)
                await asyncio.sleep(0)
            await peer.until(
                lambda: True if bytes(peer.data).count(b"HTTP/1.") >= responses else None,
                5.0,
                f"{responses} responses",
            )
            for _ in range(3):  # let the applications' tasks end
                await asyncio.sleep(0)
            return bytes(peer.data)
        finally:
            transport.hang_up()
            await asyncio.sleep(0)

    return loop.run_until_complete(exchange())


def assert_empty_body_untouched() -> None:
    assert EMPTY_BODY.complete is True
    assert EMPTY_BODY.chunks == []
    assert EMPTY_BODY.unread == 0
    assert EMPTY_BODY.failed is False
    assert EMPTY_BODY.discarding is False
    assert EMPTY_BODY.waiter is None


@pytest.mark.parametrize("order", ORDERS.values(), ids=list(ORDERS))
@pytest.mark.parametrize("request_bytes,body", REQUESTS.values(), ids=list(REQUESTS))
def test_receive_hands_over_the_body_then_the_disconnect_however_the_bytes_are_split(
    order: tuple[str, ...], request_bytes: bytes, body: bytes
) -> None:
    log: list[list[dict[str, Any]]] = []
    with Client(recording_app(order, log)) as client:
        for split in [None, *range(1, len(request_bytes))]:
            log.clear()
            sent = serve(client, pieces(request_bytes, split), 1)
            assert sent.startswith(b"HTTP/1.1 200 OK\r\n") and sent.endswith(b"\r\n\r\nok")
            assert [joined(got) for got in log] == [expected(order, body)], split
    assert_empty_body_untouched()


@pytest.mark.parametrize("order", ORDERS.values(), ids=list(ORDERS))
def test_pipelined_requests_each_get_their_own_body(order: tuple[str, ...]) -> None:
    log: list[list[dict[str, Any]]] = []
    requests = list(REQUESTS.values())
    # every request of the table but the HTTP/1.0 one (it ends the connection), in one read
    keep_alive = [(data, body) for data, body in requests if b"HTTP/1.0" not in data]
    with Client(recording_app(order, log)) as client:
        serve(client, [b"".join(data for data, _ in keep_alive)], len(keep_alive))
    assert [joined(got) for got in log] == [expected(order, body) for _, body in keep_alive]
    assert_empty_body_untouched()


def test_the_empty_body_is_untouched_by_failures_and_clients_that_leave() -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fail":
            raise RuntimeError("the application failed")
        if scope["path"] == "/wait":
            # waits for the client to leave, as a long poll would
            assert (await receive())["type"] == "http.request"
            assert (await receive())["type"] == "http.disconnect"
            return
        await send(START)
        await send(BODY)

    with Client(failing) as client:
        assert client.get("/fail").status == 500
        loop, state = client._running()

        async def leave_while_waiting() -> None:
            peer, transport = client._connect(state)
            transport.feed(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
            for _ in range(3):
                await asyncio.sleep(0)
            transport.hang_up()
            for _ in range(3):
                await asyncio.sleep(0)
            assert not state.tasks

        loop.run_until_complete(leave_while_waiting())
        assert client.get("/").status == 200
    assert_empty_body_untouched()
