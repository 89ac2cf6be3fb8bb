"""Events a WebSocket connection hands to its user: small immutable records."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "Message", "Ping", "Pong", "Close"]


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: `str` for a text message, `bytes` for a binary one."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping arrived (the pong is already in `data_to_send()`)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong arrived."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame arrived: `code` is 1005 when it carried none."""

    code: int
    reason: str = ""


Event = Message | Ping | Pong | Close
