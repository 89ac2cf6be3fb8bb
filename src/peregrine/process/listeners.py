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

import errno
import os
import socket
import stat
from dataclasses import dataclass

from ..config import Config

# systemd passes activated sockets starting at this descriptor (sd_listen_fds(3))
SD_LISTEN_FDS_START = 3
# how long a connect() to an existing unix socket file may take to tell a live server from a stale file
_PROBE_TIMEOUT = 1.0


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


def bind_tcp(
    host: str, port: int, backlog: int, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A non-blocking TCP socket bound to ``host:port`` (with SO_REUSEPORT if asked).

    It listens unless ``listen`` is false: a SO_REUSEPORT socket that does not listen yet gets
    no share of the connections.
    """
    reuse_port = reuse_port and has_reuse_port()
    sock = _tcp_socket(host, reuse_port)
    try:
        try:
            sock.bind((host, port))
        except socket.gaierror as exc:
            raise OSError(exc.errno, f"cannot resolve host {host!r}: {exc.strerror}") from None
        except OSError as exc:
            raise bind_error(exc, host, port) from None
        if listen:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_error(exc: OSError, host: str, port: int) -> OSError:
    """``exc`` from binding ``host:port``, reworded to say what happened and what to do."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        text = f"cannot bind {address}: address already in use (is another server running?)"
    elif exc.errno == errno.EACCES and 0 < port < 1024:
        text = (
            f"permission denied binding port {port} "
            "(ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        )
    elif exc.errno == errno.EADDRNOTAVAIL:
        text = f"cannot bind {address}: {host!r} is not an address of this machine"
    else:
        text = f"cannot bind {address}: {exc.strerror or exc}"
    return OSError(exc.errno, text)


def bind_unix(
    path: str, backlog: int, permissions: int | None = None, group: str | None = None
) -> socket.socket:
    """A non-blocking unix socket at ``path`` (owned by ``group`` when given).

    A socket file already there is replaced only when it is stale (nothing answers a connect()
    to it); a live one raises ``OSError(EADDRINUSE)``, as binding a TCP port in use does.
    """
    try:
        _remove_if_stale(path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot bind --uds {path!r}: {exc.strerror or exc}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The file exists from bind() on: narrowing the umask makes it appear with the requested mode
    # instead of being world-connectable until a later chmod.
    old_umask = os.umask(0o777 & ~permissions) if permissions is not None else None
    try:
        try:
            sock.bind(path)
        except OSError as exc:
            raise OSError(exc.errno, _uds_error(path, exc)) from None
        if permissions is not None:
            os.chmod(path, permissions)  # the umask cannot add bits, chmod can
        if group is not None:
            try:
                os.chown(path, -1, group_id(group))
            except PermissionError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot give --uds {path!r} to group {group!r}: permission denied "
                    "(the server's user must belong to that group)",
                ) from None
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    sock.setblocking(False)
    return sock


def _uds_error(path: str, exc: OSError) -> str:
    directory = os.path.dirname(path) or "."
    if exc.errno == errno.ENOENT:
        return f"cannot bind --uds {path!r}: the directory {directory!r} does not exist"
    if exc.errno == errno.EACCES:
        return (
            f"cannot bind --uds {path!r}: permission denied (can this user write to {directory!r}?)"
        )
    if exc.errno == errno.EADDRINUSE:
        return f"cannot bind --uds {path!r}: address already in use (is another server running?)"
    return f"cannot bind --uds {path!r}: {exc.strerror or exc}"


def group_id(group: str) -> int:
    """The numeric id of ``group`` (a name or a number); ``ValueError`` names an unknown one."""
    if group.isdigit():
        return int(group)
    try:
        import grp
    except ImportError:  # not on this platform
        raise ValueError("Config.uds_group needs a platform with unix groups") from None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"Config.uds_group: no group named {group!r}") from None


def _remove_if_stale(path: str) -> None:
    """Unlink the socket file at ``path`` if no server listens on it; refuse if one does."""
    if path.startswith("\0"):
        return  # Linux abstract namespace: no file
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # not a socket: bind() fails with the right error
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # stale: left by a server that is gone
        except FileNotFoundError:
            return  # removed meanwhile
        except OSError as exc:
            # a full backlog (timeout), no permission...: someone else's business either way
            raise OSError(errno.EADDRINUSE, f"socket file in use ({exc})") from None
        else:
            raise OSError(errno.EADDRINUSE, "address already in use (a server answers on it)")
    os.unlink(path)


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
    return bool(
        config.reuse_port
        and has_reuse_port()
        and not config.uds
        and config.fd is None
        and not activated
    )


def make_listeners(config: Config) -> list[socket.socket]:
    """Bind the sockets ``config`` asks for: a unix socket, an inherited fd, systemd's, or TCP.

    The TCP socket is a plain one (no SO_REUSEPORT): one socket that every worker shares.
    """
    if config.uds:
        return [bind_unix(config.uds, config.backlog, config.uds_permissions, config.uds_group)]
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


@dataclass(frozen=True)
class SocketFile:
    """A unix socket file this server created, removed at exit only if it is still the same file.

    Another server may have replaced the file since (after someone removed ours): its socket is
    then not ours to remove.
    """

    path: str
    device: int
    inode: int

    @classmethod
    def of(cls, path: str) -> SocketFile:
        info = os.stat(path)
        return cls(path, info.st_dev, info.st_ino)

    def remove(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if stat.S_ISSOCK(info.st_mode) and (info.st_dev, info.st_ino) == (self.device, self.inode):
            os.unlink(self.path)


def created_socket_files(config: Config) -> list[SocketFile]:
    """The socket files to remove at exit: the one bound for ``uds``, never an inherited one.

    Call it right after :func:`make_listeners`. A unix socket passed with ``fd`` or by systemd
    belongs to whoever made it (systemd keeps listening on it for the next start).
    """
    if not config.uds or config.uds.startswith("\0"):
        return []
    try:
        return [SocketFile.of(config.uds)]
    except FileNotFoundError:
        return []
