"""Sending a file as a response body, bounded in memory, with ``sendfile`` where it can.

Used by every interface that sends files (``Response.send_file``, ASGI ``pathsend``, WSGI
``wsgi.file_wrapper``). The connection it is given provides ``transport``, ``config``,
``write_paused``, ``closed``, ``drain()`` and ``abort()``.
"""

from __future__ import annotations

import os
from typing import Any

_FILE_CHUNK = 256 * 1024


class FileShrank(Exception):
    """A file ended before the length announced in the response head."""


async def copy_file(conn: Any, fd: int, offset: int, count: int) -> None:
    """Send ``count`` bytes of the file ``fd`` from ``offset`` through ``conn``'s transport.

    Not ``loop.sendfile``: uvloop lacks it, and the standard loop's bypasses ``pause_writing``,
    so the send timeout would never notice a client that stopped reading.
    """
    transport = conn.transport
    sock = transport.get_extra_info("socket")
    if (
        sock is not None
        and transport.get_extra_info("sslcontext") is None
        and hasattr(os, "sendfile")
    ):
        await _sendfile(conn, sock.fileno(), fd, offset, count)
    else:
        await _copy_through_transport(conn, fd, offset, count)


def send_now(conn: Any, fd: int, offset: int, count: int) -> int:
    """Send up to ``count`` bytes of ``fd`` from ``offset`` with one ``sendfile``, not waiting.

    Returns how many bytes went out: 0 when nothing can go now (the transport has bytes queued,
    which the file must not overtake; TLS; no ``sendfile``; the socket is full). Raises
    :class:`FileShrank` if the file ended early, and ConnectionResetError (after aborting the
    connection) if the client has gone.
    """
    transport = conn.transport
    if transport.get_write_buffer_size() or not hasattr(os, "sendfile"):
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None:
        return 0
    try:
        sent = os.sendfile(sock.fileno(), fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:  # reset, broken pipe: the client has gone
        conn.abort()
        raise ConnectionResetError(str(exc)) from None
    if sent == 0:
        raise FileShrank()
    return sent


async def _sendfile(conn: Any, sock_fd: int, file_fd: int, offset: int, count: int) -> None:
    """``os.sendfile`` straight into the socket whenever the transport has nothing queued.

    The socket belongs to the transport, so sendfile may only write while the transport's
    buffer is empty (else bytes would overtake each other). When the socket is full, one
    piece goes through the transport, which waits for the socket; a low-water mark of 0
    wakes us only once that piece has gone, and sendfile takes over again.
    """
    transport = conn.transport
    config = conn.config
    transport.set_write_buffer_limits(config.write_buffer_high, 0)
    try:
        while count > 0:
            if conn.write_paused:
                await conn.drain()
            elif not transport.get_write_buffer_size():
                try:
                    sent = os.sendfile(sock_fd, file_fd, offset, count)
                except (BlockingIOError, InterruptedError):
                    sent = -1
                except OSError as exc:  # reset, broken pipe: the client has gone
                    conn.abort()
                    raise ConnectionResetError(str(exc)) from None
                if sent == 0:
                    raise FileShrank()
                if sent > 0:
                    offset += sent
                    count -= sent
                    continue
            if count > 0 and not conn.write_paused:
                sent = _write_piece(conn, file_fd, offset, count)
                offset += sent
                count -= sent
            if conn.closed:
                raise ConnectionResetError("the client has gone")
    finally:
        if not conn.closed:
            transport.set_write_buffer_limits(config.write_buffer_high, config.write_buffer_low)


async def _copy_through_transport(conn: Any, fd: int, offset: int, count: int) -> None:
    """Read and write in bounded pieces (TLS, or no sendfile): memory stays bounded."""
    while count > 0:
        sent = _write_piece(conn, fd, offset, count)
        offset += sent
        count -= sent
        if conn.write_paused:
            await conn.drain()
        if conn.closed:
            raise ConnectionResetError("the client has gone")


def _write_piece(conn: Any, fd: int, offset: int, count: int) -> int:
    piece = os.pread(fd, min(_FILE_CHUNK, count), offset)
    if not piece:
        raise FileShrank()
    conn.transport.write(piece)
    return len(piece)
