"""Errors of the WebSocket protocol layer, each carrying the close code it should produce.

This is the one place that maps failures to close codes (RFC 6455 section 7.4.1):
the parser and the connection raise these, and the connection turns the code of
whatever it caught into the close frame it sends.
"""

from __future__ import annotations

__all__ = [
    "WebSocketError",
    "ProtocolViolation",
    "InvalidPayload",
    "MessageTooBig",
    "InternalError",
]


class WebSocketError(Exception):
    """Base class: a failure that must close the connection with `close_code`."""

    #: Close code sent to the peer when this error fails the connection.
    close_code: int = 1011


class ProtocolViolation(WebSocketError):
    """The peer broke the framing or the protocol rules (RFC 6455: 1002)."""

    close_code = 1002


class InvalidPayload(WebSocketError):
    """A payload is inconsistent with its type: bad UTF-8, undecompressable data (1007)."""

    close_code = 1007


class MessageTooBig(WebSocketError):
    """A frame or message is larger than the configured limit (1009)."""

    close_code = 1009


class InternalError(WebSocketError):
    """Anything else; the peer gets 1011 and no details (they may leak internals)."""

    close_code = 1011
