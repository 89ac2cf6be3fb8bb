"""Making the listening sockets a server serves on.

Where a socket comes from, in order of precedence: a unix socket path (``uds``), an inherited
file descriptor (``fd``), systemd socket activation (``LISTEN_FDS``), else a TCP socket bound to
``host:port``.

With several workers there are two ways to share a TCP port (see ``docs/production.md``):

* one listening socket bound by the supervisor and inherited by every worker through ``fork``
  (the default, and the only way for unix sockets, ``fd`` and systemd sockets);
* ``reuse_port``: one ``SO_REUSEPORT`` listening socket per worker slot, and the kernel hashes
  new connections across them. The supervisor binds them all (the first learns the real port
  when ``port`` is 0) and keeps them, so a replacement worker inherits its slot's socket, queue
  included.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Optional

from ..config import Config

# systemd passes activated sockets starting at this descriptor (sd_listen_fds(3))
SD_LISTEN_FDS_START = 3


def _tcp_socket(host: str, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # "::" should serve IPv6 only, like nginx; bind 0.0.0.0 too for both families
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_tcp(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (with SO_REUSEPORT if asked)."""
    reuse_port = reuse_port and has_reuse_port()
    sock = _tcp_socket(host, reuse_port)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_unix(path: str, backlog: int, permissions: Optional[int] = None) -> socket.socket:
    """A non-blocking unix socket at ``path`` (a stale socket file there is replaced)."""
    if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        os.unlink(path)  # a stale socket from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The file exists from bind() on: narrowing the umask makes it appear with the requested mode
    # instead of being world-connectable until a later chmod.
    old_umask = os.umask(0o777 & ~permissions) if permissions is not None else None
    try:
        sock.bind(path)
        if permissions is not None:
            os.chmod(path, permissions)  # the umask cannot add bits, chmod can
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    sock.setblocking(False)
    return sock


def adopt_fd(fd: int, backlog: int) -> socket.socket:
    """Wrap an inherited stream socket descriptor, listening on it if its owner did not."""
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ValueError(f"file descriptor {fd} is not a stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.listen(backlog)
    sock.setblocking(False)
    return sock


def inherited_sockets(backlog: int = 2048) -> list[socket.socket]:
    """Sockets passed by systemd socket activation (``LISTEN_FDS``), else ``[]``.

    The variables are removed from the environment once read, as ``sd_listen_fds(1)`` does, so
    that programs this process starts do not take the sockets for theirs.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        sockets.append(adopt_fd(fd, backlog))
    return sockets


def has_reuse_port() -> bool:
    """True where ``SO_REUSEPORT`` spreads connections across sockets (Linux, the BSDs)."""
    return hasattr(socket, "SO_REUSEPORT")


def uses_reuse_port(config: Config) -> bool:
    """Whether workers bind their own ``SO_REUSEPORT`` sockets under this configuration.

    Only for a TCP address the server binds itself: a unix socket, an inherited fd and systemd's
    sockets are single sockets that every worker shares.
    """
    activated = os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS")
    return bool(config.reuse_port and has_reuse_port() and not config.uds and config.fd is None
                and not activated)


def make_listeners(config: Config) -> list[socket.socket]:
    """Bind the sockets ``config`` asks for: a unix socket, an inherited fd, systemd's, or TCP.

    The TCP socket is a plain one (no SO_REUSEPORT): one socket that every worker shares.
    """
    if config.uds:
        return [bind_unix(config.uds, config.backlog, config.uds_permissions)]
    if config.fd is not None:
        return [adopt_fd(config.fd, config.backlog)]
    activated = inherited_sockets(config.backlog)
    if activated:
        return activated
    return [bind_tcp(config.host, config.port, config.backlog)]


def describe(sock: socket.socket, tls: bool) -> str:
    """``http://127.0.0.1:3000``-style address of a listening socket, for the startup line."""
    scheme = "https" if tls else "http"
    if sock.family == socket.AF_UNIX:
        return f"{scheme}+unix://{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def unix_paths(sockets: list[socket.socket]) -> list[str]:
    """The file paths of the unix sockets among ``sockets`` (to remove them after closing)."""
    paths = []
    for sock in sockets:
        if sock.family == socket.AF_UNIX:
            name = sock.getsockname()
            if isinstance(name, str) and name and not name.startswith("\0"):
                paths.append(name)
    return paths


def remove_unix_socket(path: str) -> None:
    """Unlink the unix socket file at ``path`` (a file of another kind is left alone)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
