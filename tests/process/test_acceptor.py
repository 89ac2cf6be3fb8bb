"""How many waiting connections one readiness event of the listening socket takes.

Real sockets over loopback, on both loops: the clients' connections complete in the kernel and
wait in the listen queue; one call of the acceptor's readiness callback (what the loop calls when
the socket is readable) takes a batch of them.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import pytest

from peregrine.aio.loop import loop_factory
from peregrine.process.acceptor import Acceptor, accepted_socket_class


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    make, _ = loop_factory(request.param)
    loop = make()
    yield loop
    loop.close()


class Protocols:
    """The protocol factory: keeps the transports of the connections set up."""

    def __init__(self) -> None:
        self.transports: list[asyncio.BaseTransport] = []
        #: the peer address the acceptor gave each protocol it asked for
        self.peers: list[object] = []

    def __call__(self, peer: object) -> asyncio.Protocol:
        made = self.transports
        self.peers.append(peer)

        class Quiet(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.append(transport)

        return Quiet()


@contextmanager
def queued(
    loop: asyncio.AbstractEventLoop, waiting: int
) -> Iterator[tuple[socket.socket, Protocols]]:
    """A listening socket with ``waiting`` connections in its queue, and the protocols that will
    count what an acceptor sets up; all closed afterwards."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(waiting)]
    protocols = Protocols()
    try:
        yield listener, protocols
    finally:
        listener.close()
        for transport in protocols.transports:
            transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        for client in clients:
            client.close()


def take_one_event(loop: asyncio.AbstractEventLoop, waiting: int, served: int | None) -> int:
    """Queue ``waiting`` connections, run the acceptor's readiness callback once (the worker
    serving ``served`` connections; None: no count given), and return how many it set up."""
    with queued(loop, waiting) as (listener, protocols):
        count = None if served is None else (lambda: served)
        acceptor = Acceptor(loop, listener, protocols, None, 5.0, count)
        # (not started: the loop would call the callback again while the set-ups run)
        acceptor._on_readable()  # what the loop calls when the socket is readable
        pending = list(acceptor.pending)
        if pending:
            loop.run_until_complete(asyncio.wait(pending))
        return len(protocols.transports)


@pytest.mark.parametrize(
    "waiting, served, taken",
    [
        (100, None, 16),  # no count of the worker's connections: the fixed minimum
        (100, 0, 16),  # an idle worker still takes a burst 16 at a time at least
        (100, 40, 40),  # as many as it serves: an iteration at most twice as long
        (100, 500, 100),  # a busy worker takes a whole burst in one event
        (5, 500, 5),  # never more than is waiting
    ],
    ids=["no-count", "idle", "serving-40", "serving-500", "few-waiting"],
)
def test_one_event_takes_as_many_as_the_worker_serves(
    loop: asyncio.AbstractEventLoop, waiting: int, served: int | None, taken: int
) -> None:
    assert take_one_event(loop, waiting, served) == taken


def test_a_burst_is_taken_in_a_few_events_as_the_worker_grows(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # hundreds of connections arriving at once (a benchmark's start, a reconnect storm after a
    # restart): the batch follows the connections already taken, so it doubles each event
    # (a fixed batch of 16 would take 19 events; taking all at once, 1)
    with queued(loop, 300) as (listener, protocols):
        transports = protocols.transports
        acceptor = Acceptor(loop, listener, protocols, None, 5.0, transports.__len__)
        events = 0
        while len(protocols.transports) < 300 and events < 100:
            acceptor._on_readable()
            events += 1
            loop.run_until_complete(asyncio.wait(list(acceptor.pending)))
        assert len(protocols.transports) == 300
        assert events == 6  # 16, 16, 32, 64, 128, then the remaining 44


def test_accepted_connections_reach_the_protocol_non_blocking_and_answer(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The acceptor leaves O_NONBLOCK to the loop's set-up of the socket: by the time the
    # protocol has its transport, the descriptor must be non-blocking on either loop, and the
    # connection must carry bytes both ways.
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            made.append(transport)

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())

    made: list[asyncio.BaseTransport] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        acceptor = Acceptor(loop, listener, lambda peer: Echo(), None, 5.0, None)
        acceptor._on_readable()
        loop.run_until_complete(asyncio.wait(list(acceptor.pending)))
        assert len(made) == 3
        for transport in made:
            fd = transport.get_extra_info("socket").fileno()
            assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
        for n, client in enumerate(clients):
            client.sendall(b"ping %d" % n)
        for _ in range(20):
            loop.run_until_complete(asyncio.sleep(0.01))
        for n, client in enumerate(clients):
            client.settimeout(5)
            assert client.recv(100) == b"PING %d" % n
    finally:
        listener.close()
        for transport in made:
            transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        for client in clients:
            client.close()


def test_each_protocol_is_given_the_peer_address_accept_returned(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # what accept() returned goes to the protocol factory, so that the connection need not ask
    # the socket again (uvloop: a getsockname and a getpeername per connection)
    with queued(loop, 5) as (listener, protocols):
        acceptor = Acceptor(loop, listener, protocols, None, 5.0, None)
        acceptor._on_readable()
        loop.run_until_complete(asyncio.wait(list(acceptor.pending)))
        peers = [t.get_extra_info("peername") for t in protocols.transports]
        assert len(peers) == 5 and sorted(protocols.peers) == sorted(peers)  # type: ignore[type-var]


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6, socket.AF_UNIX])
def test_accepted_sockets_report_the_listeners_family_and_type(
    family: socket.AddressFamily,
) -> None:
    listener = socket.socket(family, socket.SOCK_STREAM)
    with listener:
        make = accepted_socket_class(listener)
        # the same values, and the same enum members, as socket.socket's properties give
        assert vars(make)["family"] is listener.family  # class attributes, not properties
        assert vars(make)["type"] is listener.type
        assert issubclass(make, socket.socket)


def test_accepted_sockets_are_closed_once_by_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    # The loop owns the descriptor once it has the socket: closing the transport must leave no
    # socket object holding it, which would close the (by then maybe reused) descriptor again
    # when collected (Python then also warns of an "unclosed socket").
    accepted: list[socket.socket] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with queued(loop, 10) as (listener, protocols):
            acceptor = Acceptor(loop, listener, protocols, None, 5.0, None)
            made = acceptor._socket_class

            class Recorded(made):  # type: ignore[valid-type,misc]
                __slots__ = ()

                def __init__(self, *args: object) -> None:
                    super().__init__(*args)
                    accepted.append(self)

            acceptor._socket_class = Recorded
            acceptor._on_readable()
            loop.run_until_complete(asyncio.wait(list(acceptor.pending)))
            assert len(protocols.transports) == len(accepted) == 10
        assert [sock.fileno() for sock in accepted] == [-1] * 10  # detached or closed
        accepted.clear()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
