"""A small blocking HTTP/2 client on the ``h2`` package, for the end-to-end tests.

It speaks prior knowledge on a plain socket (or on a TLS socket that negotiated h2), and lets a
test send hand-built frames next to well-formed ones.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def _text_fields(fields: Any) -> dict[str, str]:
    """Header fields as text (the client is set to decode them as latin-1)."""
    return {str(name): str(value) for name, value in fields}


class Stream:
    """What arrived on one stream."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.status = 0
        self.body = bytearray()
        self.ended = False
        self.reset_code: int | None = None
        self.informational: list[int] = []  # 1xx statuses, in order
        self.trailers: dict[str, str] | None = None  # the trailing HEADERS frame, if any


class H2Client:
    """``H2Client(host, port)``: a connection, with ``get``/``request`` and raw frame access."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        timeout: float = 10.0,
        auto_window: bool = True,
    ) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock: Any = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        config = h2.config.H2Configuration(client_side=True, header_encoding="latin-1")
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.streams: dict[int, Stream] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.auto_window = auto_window
        self.remote_settings: dict[int, int] = {}
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        end: bool = True,
    ) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "http"), (":path", path)]
        fields += [(":authority", "localhost"), *(headers or [])]
        self.conn.send_headers(stream_id, fields, end_stream=end and not body)
        self.streams[stream_id] = Stream()
        self.flush()
        if body:
            self.send_body(stream_id, body, end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        """Send ``body`` within the server's windows and frame size, reading while blocked."""
        view = memoryview(body)
        while view:
            stream = self.streams[stream_id]
            if stream.ended:
                return  # answered (413) or reset before the body was all sent
            window = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.read_once()
                continue
            piece, view = view[:window], view[window:]
            self.conn.send_data(stream_id, bytes(piece), end_stream=end and not view)
            self.flush()

    def read_once(self, timeout: float = 10.0) -> bool:
        """Read what arrives (one recv); False once the server closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        for event in self.conn.receive_data(data):
            self._on_event(event)
        self.flush()
        return True

    def _on_event(self, event: Any) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived) and stream is not None:
            stream.headers = _text_fields(event.headers)
            stream.status = int(stream.headers[":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived) and stream is not None:
            stream.informational.append(int(_text_fields(event.headers)[":status"]))
        elif isinstance(event, h2.events.TrailersReceived) and stream is not None:
            stream.trailers = _text_fields(event.headers)
        elif isinstance(event, h2.events.DataReceived) and stream is not None:
            stream.body += event.data
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            stream.reset_code = int(event.error_code)
            stream.ended = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for key, changed in event.changed_settings.items():
                self.remote_settings[int(key)] = changed.new_value

    def wait(self, stream_ids: list[int] | int, timeout: float = 10.0) -> list[Stream]:
        """Read until the streams ended (or the connection closed)."""
        ids = [stream_ids] if isinstance(stream_ids, int) else stream_ids
        deadline = time.monotonic() + timeout
        while not all(self.streams[i].ended for i in ids):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"streams {ids} did not end")
            if not self.read_once(remaining):
                break
        return [self.streams[i] for i in ids]

    def wait_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server did not close")
            try:
                self.read_once(remaining)
            except h2.exceptions.ProtocolError:
                self.closed = True  # frames after its GOAWAY: the h2 client refuses to care

    def get(self, path: str, **kwargs: Any) -> Stream:
        return self.wait(self.request("GET", path, **kwargs))[0]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
