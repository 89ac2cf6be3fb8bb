"""A sans-IO server-side WebSocket connection (RFC 6455 sections 5-7, RFC 7692).

Bytes in, events out: `feed()` buffers bytes and `next_event()` returns events one at a
time (`receive_data()` does both and returns a list), leaving what must be answered (pongs,
the close reply, the close frame that fails a misbehaving peer) in `data_to_send()`. `send_text()`, `send_binary()`, `ping()` and `close()` return
the bytes to write. The caller owns the socket and the timers and looks at `state`:

    OPEN     messages flow both ways
    CLOSING  we sent a close frame and wait for the peer's; if we sent it because the
             peer broke the protocol (`failed`), its further bytes are ignored
    CLOSED   the close handshake is over (or the transport is gone): close the transport

Every failure is a `WebSocketError` carrying its close code; `_fail()` is the one place
that turns it into a close frame.
"""

from __future__ import annotations

import codecs
import enum

from .deflate import PerMessageDeflate
from .errors import InvalidPayload, MessageTooBig, ProtocolViolation, WebSocketError
from .events import Close, Event, Message, Ping, Pong
from .frames import (
    CONTROL_PAYLOAD_MAX,
    SHORT_HEADERS,
    FrameParser,
    is_valid_close_code,
    parse_close_payload,
    serialize_close_payload,
    serialize_frame,
)

__all__ = ["State", "ServerConnection", "DEFAULT_MAX_MESSAGE_SIZE"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Fewest fragments a message may have before 1009 whatever the size limit (see `max_fragments`).
MIN_MAX_FRAGMENTS = 1 << 16

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

# Plain ints for the hot path: comparing with IntEnum members costs several times more.
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_TEXT_HEADERS = SHORT_HEADERS[0x80 | _TEXT]
_BINARY_HEADERS = SHORT_HEADERS[0x80 | _BINARY]


class State(enum.Enum):
    """Where the connection is in its life (see the module docstring)."""

    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


# for the hot path: a module global is found faster than an enum member
_OPEN, _CLOSED = State.OPEN, State.CLOSED


class ServerConnection:
    """The protocol state of one server-side WebSocket connection."""

    __slots__ = (
        "max_message_size",
        "max_fragments",
        "deflate",
        "state",
        "failed",
        "close_code",
        "close_reason",
        "_parser",
        "_out",
        "_msg_opcode",
        "_msg_compressed",
        "_msg_size",
        "_msg_buf",
        "_msg_fragments",
        "_msg_decoder",
    )

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        deflate: PerMessageDeflate | None = None,
        max_fragments: int | None = None,
    ) -> None:
        #: Largest message accepted, in bytes after decompression (1009 beyond it).
        self.max_message_size = max_message_size
        #: Most frames one message may come in (1009 beyond it). Fragments are gathered in
        #: one buffer, so memory stays within the size limit whatever their number; this
        #: bound only makes a message of endless empty fragments end. By default one
        #: fragment per 16 bytes of the limit, and never fewer than MIN_MAX_FRAGMENTS.
        self.max_fragments = (
            max(MIN_MAX_FRAGMENTS, max_message_size >> 4)
            if max_fragments is None
            else max_fragments
        )
        self.deflate = deflate
        self.state = State.OPEN
        #: True once we failed the connection because of the peer's input.
        self.failed = False
        #: Code of the close frame that started the close handshake (the peer's, 1005 if
        #: it had none, or ours), 1006 if the transport went away without one.
        self.close_code: int | None = None
        #: Reason that went with `close_code`.
        self.close_reason = ""
        # A compressed frame may be a little larger than its content when the content
        # does not compress (stored blocks add 5 bytes per 64 KiB); allow for it here,
        # the decompressed size is what the limit is really checked against.
        max_payload = (
            max_message_size + (max_message_size >> 10) + 64 if deflate else max_message_size
        )
        self._parser = FrameParser(max_payload=max_payload, allow_rsv1=deflate is not None)
        self._out: list[bytes] = []
        # The data message being reassembled from fragments.
        self._msg_opcode: int | None = None
        self._msg_compressed = False
        self._msg_size = 0
        # Fragments accumulate in one buffer: a list of pieces would cost ~100 bytes of
        # overhead per fragment, 20x the limit for a message sent in 2-byte fragments.
        self._msg_buf = bytearray()
        self._msg_fragments = 0
        self._msg_decoder: codecs.IncrementalDecoder | None = None

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Process received bytes; return all the events they completed, in order.

        Shorthand for `feed(data)` then `next_event()` until None. A caller that answers
        events as they come (a server echoing messages) should use those two instead: an
        error in a later frame then fails the connection only after the answers to the
        events before it have been sent.
        """
        self.feed(data)
        events: list[Event] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def feed(self, data: bytes) -> None:
        """Buffer received bytes; `next_event()` turns them into events."""
        if self.state is State.CLOSED or self.failed:
            return  # after failing, the peer's stream is not trusted any more
        self._parser.feed(data)

    def next_event(self) -> Event | None:
        """The next event from buffered bytes, or None until more arrive.

        Fails the connection (a close frame in `data_to_send()`, `state` CLOSING, `failed`
        set) on invalid input, after which it returns None. Only control frames and failures
        add to `data_to_send()`: after a `Message` it is unchanged.
        """
        if self.state is _CLOSED or self.failed:
            return None
        parser = self._parser
        try:
            while True:
                frame = parser.next_frame_parts()
                if frame is None:
                    return None
                fin, opcode, payload, rsv1 = frame
                if opcode >= 0x8:
                    return self._control_frame(opcode, payload)
                if fin and opcode and not rsv1 and self._msg_opcode is None:
                    # The common case, inlined: a whole uncompressed message in one frame.
                    if len(payload) > self.max_message_size:
                        raise MessageTooBig(f"message over {self.max_message_size} bytes")
                    if opcode == _TEXT:
                        try:
                            return Message(payload.decode("utf-8"))
                        except UnicodeDecodeError:
                            raise InvalidPayload("text message is not valid UTF-8") from None
                    return Message(payload)
                event = self._data_frame(opcode, fin, rsv1, payload)
                if event is not None:
                    return event
        except WebSocketError as exc:
            self._fail(exc)
            return None

    def receive_eof(self) -> None:
        """The transport ended (EOF or lost) before the close handshake finished: 1006."""
        if self.close_code is None:
            self.close_code = 1006
        self.state = State.CLOSED

    def data_to_send(self) -> bytes:
        """Bytes produced by received data (pongs, close frames); empties the buffer."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _control_frame(self, opcode: int, payload: bytes) -> Event:
        if opcode == _PING:
            if self.state is State.OPEN:
                # RFC 6455 5.5.2: answer with the same application data.
                self._out.append(serialize_frame(_PONG, payload))
            return Ping(payload)
        if opcode == _PONG:
            return Pong(payload)
        # A close frame.
        code, reason = parse_close_payload(payload)
        if self.state is State.OPEN:
            # The peer started the close: echo its code (RFC 6455 5.5.1), or an empty
            # close for an empty one, then the server closes the TCP connection first.
            echo = None if code == 1005 else code
            self._out.append(serialize_frame(_CLOSE, serialize_close_payload(echo)))
            self.close_code = code
            self.close_reason = reason
        self.state = State.CLOSED
        return Close(code, reason)

    def _data_frame(self, opcode: int, fin: bool, rsv1: bool, payload: bytes) -> Event | None:
        if opcode == _CONT:
            if self._msg_opcode is None:
                raise ProtocolViolation("continuation frame without a message to continue")
            opcode = self._msg_opcode
            fragmented = True
            self._msg_fragments += 1
            if self._msg_fragments > self.max_fragments:
                raise MessageTooBig(f"message in over {self.max_fragments} fragments")
        else:
            if self._msg_opcode is not None:
                raise ProtocolViolation("new data message before the previous one was finished")
            self._msg_compressed = rsv1
            self._msg_size = 0
            fragmented = not fin
            if fragmented:
                self._msg_opcode = opcode
                self._msg_fragments = 1

        if self._msg_compressed:
            assert self.deflate is not None  # the parser allows RSV1 only with deflate
            payload = self.deflate.decompress(
                payload, fin=fin, max_length=self.max_message_size - self._msg_size
            )
        size = self._msg_size + len(payload)
        if size > self.max_message_size:
            raise MessageTooBig(f"message over {self.max_message_size} bytes")

        if not fragmented:  # the common case: a whole message in one frame
            if opcode == _TEXT:
                try:
                    return Message(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    raise InvalidPayload("text message is not valid UTF-8") from None
            return Message(payload)

        self._msg_size = size
        if opcode == _TEXT:
            # Validating each fragment as it arrives rejects bad UTF-8 early, and a code
            # point split across fragments is carried over by the incremental decoder.
            # Its output is dropped: the text is decoded once, from the whole buffer.
            decoder = self._msg_decoder
            if decoder is None:
                decoder = self._msg_decoder = _utf8_decoder("strict")
            try:
                decoder.decode(payload, fin)
            except UnicodeDecodeError:
                raise InvalidPayload("text message is not valid UTF-8") from None
        buf = self._msg_buf
        buf += payload
        if not fin:
            # A continuation's header is checked against the room left in the message.
            room = self.max_message_size - size
            self._parser.max_continuation = (
                room + (room >> 10) + 64 if self._msg_compressed else room
            )
            return None
        self._end_message()
        return Message(buf.decode("utf-8") if opcode == _TEXT else bytes(buf))

    def _end_message(self) -> None:
        """Forget the fragmented message being reassembled (and its memory)."""
        self._msg_buf = bytearray()
        self._msg_fragments = 0
        self._msg_decoder = None
        self._msg_opcode = None
        self._parser.max_continuation = self._parser.max_payload

    def _fail(self, exc: WebSocketError) -> None:
        """Fail the connection (RFC 6455 7.1.7): send the error's close code, stop reading."""
        self.failed = True
        self._end_message()
        if self.state is State.OPEN:
            # The reason is generic on purpose: details of 1011 could leak internals.
            reason = str(exc) if exc.close_code != 1011 else ""
            payload = serialize_close_payload(exc.close_code, _truncate_reason(reason))
            self._out.append(serialize_frame(_CLOSE, payload))
            self.close_code = exc.close_code
            self.close_reason = reason
            self.state = State.CLOSING
        else:
            # Already closing: nothing more to say, the transport can go.
            self.state = State.CLOSED

    # -- sending -----------------------------------------------------------------------

    def send_text(self, text: str) -> bytes:
        """Bytes of a text message (b"" once the connection is closing)."""
        payload = text.encode("utf-8")
        if len(payload) < 126 and self.deflate is None and self.state is _OPEN:
            return _TEXT_HEADERS[len(payload)] + payload  # the common case, inlined
        return self._send_message(_TEXT, payload)

    def send_binary(self, data: bytes | bytearray | memoryview) -> bytes:
        """Bytes of a binary message (b"" once the connection is closing)."""
        payload = bytes(data)
        if len(payload) < 126 and self.deflate is None and self.state is _OPEN:
            return _BINARY_HEADERS[len(payload)] + payload
        return self._send_message(_BINARY, payload)

    def _send_message(self, opcode: int, payload: bytes) -> bytes:
        if self.state is not State.OPEN:
            # RFC 6455 5.5.1: no data frames after a close frame.
            return b""
        if self.deflate is not None:
            return serialize_frame(opcode, self.deflate.compress(payload), rsv1=True)
        return serialize_frame(opcode, payload)

    def ping(self, data: bytes = b"") -> bytes:
        """Bytes of a ping (at most 125 bytes of data; b"" once closing)."""
        return self._control(_PING, data, "ping")

    def pong(self, data: bytes = b"") -> bytes:
        """Bytes of an unsolicited pong (at most 125 bytes of data; b"" once closing)."""
        return self._control(_PONG, data, "pong")

    def _control(self, opcode: int, data: bytes, name: str) -> bytes:
        if len(data) > CONTROL_PAYLOAD_MAX:
            raise ValueError(f"{name} data longer than 125 bytes")
        if self.state is not State.OPEN:
            return b""
        return serialize_frame(opcode, bytes(data))

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start the close handshake: the close frame's bytes (b"" if already closing).

        Raises ValueError for a code that may not be sent or a reason over 123 bytes.
        """
        if not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        payload = serialize_close_payload(code, reason)
        if self.state is not State.OPEN:
            return b""
        self.state = State.CLOSING
        self.close_code = code
        self.close_reason = reason
        return serialize_frame(_CLOSE, payload)


def _truncate_reason(reason: str) -> str:
    """Cut a reason to the 123 bytes a close frame has room for, on a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= CONTROL_PAYLOAD_MAX - 2:
        return reason
    return data[: CONTROL_PAYLOAD_MAX - 2].decode("utf-8", "ignore")
