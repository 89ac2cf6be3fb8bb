"""Errors that carry the HTTP status they should produce."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the server must refuse; ``status`` is the response code to send before closing."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return f"ProtocolError({self.status}, {self.detail!r})"
