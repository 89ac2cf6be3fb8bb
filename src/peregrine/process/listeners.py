"""Making the listening sockets a server serves on."""

from __future__ import annotations

import os
import socket
import stat

from ..config import Config


def _bind_tcp(host: str, port: int, backlog: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # "::" should serve IPv6 only, like nginx; bind 0.0.0.0 too for both families
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _bind_unix(path: str, backlog: int, permissions: int | None) -> socket.socket:
    if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        os.unlink(path)  # a stale socket from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if permissions is not None:
            os.chmod(path, permissions)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def inherited_sockets() -> list[socket.socket]:
    """Sockets passed by systemd socket activation (``LISTEN_FDS``), else ``[]``."""
    if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    sockets = [socket.socket(fileno=3 + i) for i in range(count)]
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def make_listeners(config: Config, port: int | None = None) -> list[socket.socket]:
    """Bind the sockets ``config`` asks for: a unix socket, an inherited fd, systemd's, or TCP."""
    if config.uds:
        return [_bind_unix(config.uds, config.backlog, config.uds_permissions)]
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
        sock.setblocking(False)
        return [sock]
    activated = inherited_sockets()
    if activated:
        return activated
    return [_bind_tcp(config.host, config.port if port is None else port, config.backlog,
                      config.reuse_port)]


def describe(sock: socket.socket, tls: bool) -> str:
    """``http://127.0.0.1:3000``-style address of a listening socket, for the startup line."""
    scheme = "https" if tls else "http"
    if sock.family == socket.AF_UNIX:
        return f"{scheme}+unix://{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
