"""``wsgi.input``: every reading method, over bodies arriving in pieces split at every byte,
and the bridge from an application thread to the body arriving on the event loop."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable

import pytest

from peregrine.aio.body import RequestBody
from peregrine.wsgi.input import BodyIncomplete, BodyReader, StreamedInput

BODY = b"first line\nsecond\n\nfourth line is longer\nno newline at the end"


class Pieces(BodyReader):
    """A body delivered in the given pieces (as the loop would hand them over)."""

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__()
        self.pieces = list(pieces)

    def _more(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def splits(body: bytes) -> list[list[bytes]]:
    """The body whole, in single bytes, and split in two at every position."""
    cases = [[body], [bytes([b]) for b in body]]
    cases += [[body[:i], body[i:]] for i in range(1, len(body))]
    return cases


READERS: dict[str, Callable[[io.BytesIO | BodyReader], bytes]] = {
    "read()": lambda f: f.read(),
    "read(-1)": lambda f: f.read(-1),
    "read(None)": lambda f: f.read(None),
    "read(3) loop": lambda f: b"".join(iter(lambda: f.read(3), b"")),
    "read(1000)": lambda f: f.read(1000),
    "readline()": lambda f: b"".join(iter(f.readline, b"")),
    "readline(4)": lambda f: b"".join(iter(lambda: f.readline(4), b"")),
    "readlines()": lambda f: b"".join(f.readlines()),
    "iteration": lambda f: b"".join(f),
}


@pytest.mark.parametrize("how", list(READERS))
def test_every_reading_method_over_every_split(how: str) -> None:
    for pieces in splits(BODY):
        assert READERS[how](Pieces(pieces)) == BODY, pieces


@pytest.mark.parametrize("size", [0, 1, 4, 11, 12, 100])
def test_readline_with_a_limit_matches_bytesio(size: int) -> None:
    for pieces in splits(BODY):
        ours, reference = Pieces(pieces), io.BytesIO(BODY)
        while True:
            line = ours.readline(size)
            assert line == reference.readline(size), pieces
            if not line:
                break
            if size == 0:
                break  # readline(0) is always b"": nothing more to compare


def test_readlines_hint_stops_after_enough_bytes() -> None:
    assert Pieces([BODY]).readlines(12) == [b"first line\n", b"second\n"]


def test_reads_after_the_end_return_empty() -> None:
    reader = Pieces([b"abc"])
    assert reader.read() == b"abc"
    assert reader.read() == b"" and reader.read(5) == b"" and reader.readline() == b""


def run_loop_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


def test_streamed_input_reads_pieces_fed_on_the_loop_as_they_arrive() -> None:
    loop, thread = run_loop_thread()
    wanted: list[int] = []
    try:
        body = RequestBody(lambda b: wanted.append(1))
        reader = StreamedInput(body, loop)
        got: list[bytes] = []
        app = threading.Thread(target=lambda: got.append(reader.read()))
        app.start()
        for piece in (b"one ", b"two ", b"three"):
            loop.call_soon_threadsafe(body.feed, piece)
        loop.call_soon_threadsafe(body.finish)
        app.join(5)
        assert got == [b"one two three"]
        assert wanted  # the reader asked the connection for more (100 Continue, resume reading)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_streamed_input_raises_when_the_body_breaks_off() -> None:
    loop, thread = run_loop_thread()
    try:
        body = RequestBody(lambda b: None)
        reader = StreamedInput(body, loop)
        errors: list[BaseException] = []

        def read() -> None:
            try:
                reader.read()
            except BodyIncomplete as exc:
                errors.append(exc)

        app = threading.Thread(target=read)
        app.start()
        loop.call_soon_threadsafe(body.feed, b"partial")
        loop.call_soon_threadsafe(body.fail)
        app.join(5)
        assert len(errors) == 1 and isinstance(errors[0], OSError)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
