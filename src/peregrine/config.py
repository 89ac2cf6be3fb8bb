"""Every server option in one validated dataclass.

The command line is generated from this class (one flag per field, see ``cli.py``), so a field's
``help`` metadata is also its ``--help`` text. Add an option here and it exists everywhere.

Each field carries its own check, declared next to it (``check=``): a function that returns
``None`` for a good value, or what the field allows (``"an integer from 0 to 65535"``) for a bad
one. ``Config.__post_init__`` runs them in declaration order, then the few checks that involve
two fields, and raises ``ValueError("Config.port must be an integer from 0 to 65535, got -1")``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .http.forwarded import FAMILIES, TrustedProxies

KiB = 1024
MiB = 1024 * KiB

#: a field's check: ``None`` when the value is good, else what the field allows
Check = Callable[[Any], "str | None"]

#: options measured in bytes: the command line also takes them as ``10MB`` or ``512KiB``
SIZE_FIELDS = frozenset(
    (
        "max_request_line",
        "max_header_size",
        "max_body_size",
        "max_chunk_extensions",
        "write_buffer_high",
        "write_buffer_low",
        "ws_max_message_size",
        "ws_write_limit",
        "lingering_max",
    )
)

# Linux's sun_path holds 108 bytes, the terminating NUL included.
_UDS_PATH_MAX = 107
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


def _opt(default: Any, help: str, group: str, check: Check, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "group": group, "check": check, **extra})


# --- checks, one per kind of value (each returns None or what is allowed) -----------------------


def _integer(low: int, high: int | None = None) -> Check:
    """A whole number (not a bool, not a float) in ``low..high``."""
    allowed = (
        f"an integer of at least {low}" if high is None else f"an integer from {low} to {high}"
    )

    def check(value: Any) -> str | None:
        ok = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= low
            and (high is None or value <= high)
        )
        return None if ok else allowed

    return check


def _seconds(zero_allowed: bool, zero_means: str = "") -> Check:
    """A finite number of seconds, greater than 0 (or at least 0 when ``zero_allowed``)."""
    allowed = (
        f"a number of seconds of at least 0{f' (0 = {zero_means})' if zero_means else ''}"
        if zero_allowed
        else "a number of seconds greater than 0"
    )

    def check(value: Any) -> str | None:
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value >= 0 if zero_allowed else value > 0)
        )
        return None if ok else allowed

    return check


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "True or False"


def _choice(*choices: str) -> Check:
    allowed = "one of " + ", ".join(choices)

    def check(value: Any) -> str | None:
        return None if isinstance(value, str) and value in choices else allowed

    return check


def _optional(check: Check) -> Check:
    """``check``, or None (the field's "not set")."""

    def optional(value: Any) -> str | None:
        if value is None:
            return None
        allowed = check(value)
        return None if allowed is None else f"None or {allowed}"

    return optional


def _path(value: Any) -> str | None:
    ok = isinstance(value, str) and value != "" and "\0" not in value
    return None if ok else "a non-empty file path"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _host(value: Any) -> str | None:
    """An IPv4 or IPv6 address (without brackets), or a host name resolved at bind time."""
    allowed = "an IPv4 or IPv6 address (no brackets) or a host name"
    if not isinstance(value, str) or not value:
        return allowed
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in name.split(".")):
        return allowed
    return None


def _access_log_format(value: Any) -> str | None:
    """A ``str.format`` template of the access log's fields (see ``peregrine.accesslog``)."""
    from .accesslog import FIELDS, format_problem

    if not isinstance(value, str):
        return "a string"
    problem = format_problem(value)
    return None if problem is None else f"a template of {{{'}, {'.join(FIELDS)}}} ({problem})"


def _group(value: Any) -> str | None:
    ok = isinstance(value, str) and value != "" and "\0" not in value
    return None if ok else "a group name or number"


def _health_path(value: Any) -> str | None:
    ok = (
        isinstance(value, str)
        and value.startswith("/")
        and value.isascii()
        and not any(c in value for c in "?# \t\r\n\0")
    )
    return None if ok else "an ASCII path starting with '/', without query, fragment or spaces"


def _uds_path(value: Any) -> str | None:
    """A unix socket path; a leading NUL is Linux's abstract namespace."""
    allowed = f"a unix socket path of 1 to {_UDS_PATH_MAX} bytes (a leading NUL for the abstract namespace)"
    if not isinstance(value, str) or value in ("", "\0") or "\0" in value[1:]:
        return allowed
    try:
        size = len(os.fsencode(value))
    except UnicodeEncodeError:
        return allowed
    return None if size <= _UDS_PATH_MAX else allowed


def _file_mode(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777
    return None if ok else "a file mode from 0 to 0o777 (e.g. 0o660)"


def _root_path(value: Any) -> str | None:
    ok = isinstance(value, str) and (
        not value or (value.startswith("/") and not value.endswith("/") and "\0" not in value)
    )
    return None if ok else "empty or a path like '/api' (a leading slash, no trailing one)"


def _trusted_proxies(value: Any) -> str | None:
    allowed = "a comma-separated list of IP addresses, CIDR networks, '*' or 'unix'"
    if not isinstance(value, str):
        return allowed
    try:
        TrustedProxies(value)
    except ValueError as exc:  # names the bad entry
        return f"{allowed} ({str(exc).partition(': ')[2]})"
    return None


@dataclass
class Config:
    """All options of a Peregrine server, validated when the object is made.

    Raises ``ValueError`` naming the offending field, its value and what it allows.
    """

    # --- the application ---------------------------------------------------------------------
    interface: str = _opt(
        "auto",
        "auto (guess from the app), native (handle_request), asgi or wsgi",
        "application",
        _choice("auto", "native", "asgi", "wsgi"),
    )
    factory: bool = _opt(
        False, "MODULE:ATTR is a function that returns the app: call it", "application", _flag
    )
    root_path: str = _opt(
        "",
        "path prefix a proxy removed before forwarding (ASGI root_path, WSGI SCRIPT_NAME)",
        "application",
        _root_path,
    )
    lifespan: str = _opt(
        "auto",
        "ASGI lifespan events: auto (if the app supports them), on (required) or off",
        "application",
        _choice("auto", "on", "off"),
    )
    threads: int = _opt(
        10,
        "WSGI: threads per worker running the app; 0 = on the event loop, one request at a time",
        "application",
        _integer(0),
    )

    # --- listening -------------------------------------------------------------------------
    host: str = _opt("127.0.0.1", "address to bind (IPv4 or IPv6)", "listen", _host)
    port: int = _opt(3000, "TCP port to bind (0 picks a free port)", "listen", _integer(0, 65535))
    uds: str | None = _opt(
        None, "bind a unix domain socket at this path instead", "listen", _optional(_uds_path)
    )
    uds_permissions: int | None = _opt(
        None,
        "file mode of the unix socket, e.g. 0o660 (octal accepted on the command line)",
        "listen",
        _optional(_file_mode),
    )
    uds_group: str | None = _opt(
        None,
        "group (name or id) owning the unix socket, e.g. www-data so that nginx may connect "
        "(with --uds-permissions 0o660)",
        "listen",
        _optional(_group),
    )
    fd: int | None = _opt(
        None,
        "serve on an inherited, already bound socket file descriptor",
        "listen",
        _optional(_integer(0)),
    )
    backlog: int = _opt(2048, "listen() backlog", "listen", _integer(1))
    reuse_port: bool = _opt(
        False,
        "one SO_REUSEPORT socket per worker, spread by the kernel (Linux/BSD); off = one socket all "
        "workers share, taken by whichever worker is free (measured better here: docs/production.md)",
        "listen",
        _flag,
    )

    # --- processes ---------------------------------------------------------------------------
    workers: int = _opt(
        0,
        "worker processes; 0 = one per available CPU core, 1 = this process",
        "process",
        _integer(0),
    )
    cpu_affinity: bool = _opt(False, "pin worker i to core i", "process", _flag)
    graceful_timeout: float = _opt(
        30.0, "seconds in-flight requests get to finish at shutdown", "process", _seconds(True)
    )
    max_requests: int = _opt(
        0, "recycle a worker after this many requests (0 = never)", "process", _integer(0)
    )
    max_requests_jitter: int = _opt(
        0, "random extra requests added to max_requests per worker", "process", _integer(0)
    )
    worker_timeout: float = _opt(
        30.0,
        "kill and replace a worker whose event loop has not run for this long, e.g. a handler "
        "stuck in a blocking call (0 = off; needs the supervisor, so not with --workers 1)",
        "process",
        _seconds(True, "off"),
    )
    loop: str = _opt(
        "auto",
        "event loop: auto (uvloop when installed), uvloop or asyncio",
        "process",
        _choice("auto", "uvloop", "asyncio"),
    )

    # --- timeouts (seconds) ------------------------------------------------------------------
    keep_alive_timeout: float = _opt(
        5.0, "close an idle keep-alive connection after this long", "timeouts", _seconds(False)
    )
    header_timeout: float = _opt(
        10.0, "time to receive a complete request head (then 408)", "timeouts", _seconds(False)
    )
    body_timeout: float = _opt(
        30.0,
        "longest gap between two parts of a request body (then 408)",
        "timeouts",
        _seconds(False),
    )
    send_timeout: float = _opt(
        30.0,
        "close when a client reads nothing of our output for this long",
        "timeouts",
        _seconds(False),
    )
    tls_handshake_timeout: float = _opt(
        10.0, "time allowed for a TLS handshake", "timeouts", _seconds(False)
    )
    lingering_timeout: float = _opt(
        5.0,
        "after an error response, read and discard what the client still sends for up to this "
        "long before closing, so that it receives the response instead of a reset (0 = close "
        "at once)",
        "timeouts",
        _seconds(True, "close at once"),
    )

    # --- limits --------------------------------------------------------------------------------
    max_request_line: int = _opt(
        8 * KiB, "longest request target (URI) in bytes (then 414)", "limits", _integer(1)
    )
    max_header_size: int = _opt(
        32 * KiB, "largest request head in bytes (then 431)", "limits", _integer(1)
    )
    max_header_count: int = _opt(
        100, "most header fields in a request (then 431)", "limits", _integer(1)
    )
    max_body_size: int = _opt(
        1 * MiB, "largest request body in bytes (then 413)", "limits", _integer(0)
    )
    max_chunk_extensions: int = _opt(
        16 * KiB,
        "most bytes of chunk extensions in one chunked request body, all chunks together "
        "(then 413; 0 = none allowed)",
        "limits",
        _integer(0),
    )
    max_connections: int = _opt(
        10000, "open connections per worker; beyond it new ones get 503", "limits", _integer(1)
    )
    max_pipelined: int = _opt(
        32, "parsed requests queued on one connection before reading pauses", "limits", _integer(1)
    )
    write_buffer_high: int = _opt(
        64 * KiB, "send buffer size above which streaming writes wait", "limits", _integer(1)
    )
    write_buffer_low: int = _opt(
        16 * KiB, "send buffer size below which streaming writes resume", "limits", _integer(0)
    )
    lingering_max: int = _opt(
        4 * MiB,
        "most bytes read and discarded after an error response before closing anyway",
        "limits",
        _integer(0),
    )

    # --- TLS -----------------------------------------------------------------------------------
    ssl_certfile: str | None = _opt(
        None, "PEM certificate chain; enables HTTPS", "tls", _optional(_path)
    )
    ssl_keyfile: str | None = _opt(
        None, "PEM private key (defaults to the certfile)", "tls", _optional(_path)
    )
    ssl_keyfile_password: str | None = _opt(
        None, "password of an encrypted private key", "tls", _optional(_text), secret=True
    )
    ssl_ca_certs: str | None = _opt(
        None, "CA bundle used to verify client certificates", "tls", _optional(_path)
    )
    ssl_cert_reqs: str = _opt(
        "none",
        "client certificates: none, optional or required",
        "tls",
        _choice("none", "optional", "required"),
    )
    ssl_min_version: str = _opt(
        "1.2", "lowest TLS version accepted: 1.2 or 1.3", "tls", _choice("1.2", "1.3")
    )

    # --- proxies -------------------------------------------------------------------------------
    forwarded_allow_ips: str | None = _opt(
        None,
        "comma-separated addresses/CIDRs trusted to set X-Forwarded-For/-Proto and Forwarded ('*' = all)",
        "proxy",
        _optional(_trusted_proxies),
    )
    forwarded_headers: str = _opt(
        "auto",
        "which proxy headers to believe: auto (X-Forwarded-* when present, else Forwarded), "
        "x-forwarded or forwarded (the other family is ignored)",
        "proxy",
        _choice(*FAMILIES),  # the one list, kept with the code that reads it
    )

    # --- WebSocket -----------------------------------------------------------------------------
    ws_max_message_size: int = _opt(
        16 * MiB,
        "largest WebSocket message after decompression (then 1009)",
        "websocket",
        _integer(1),
    )
    ws_ping_interval: float = _opt(
        20.0, "seconds between keepalive pings (0 = off)", "websocket", _seconds(True, "off")
    )
    ws_ping_timeout: float = _opt(
        20.0, "close when a pong does not arrive within this long", "websocket", _seconds(False)
    )
    ws_write_limit: int = _opt(
        1 * MiB,
        "send buffer above which a client that does not read is closed (checked before each send)",
        "websocket",
        _integer(1),
    )
    ws_close_timeout: float = _opt(
        5.0, "time the peer gets to answer our close frame", "websocket", _seconds(False)
    )
    ws_compression: bool = _opt(
        True, "offer permessage-deflate compression to clients that ask", "websocket", _flag
    )
    ws_compression_window_bits: int = _opt(
        12,
        "deflate window (9-15 bits) per direction; smaller saves memory per connection",
        "websocket",
        _integer(9, 15),
    )
    ws_compression_level: int = _opt(
        6, "zlib compression level of outgoing messages (1-9)", "websocket", _integer(1, 9)
    )

    # --- deployment: health, drain, metrics -----------------------------------------------------
    health_path: str | None = _opt(
        None,
        "answer GET/HEAD of this path in the server itself: 200 while serving, 503 while "
        "starting or draining (for load balancer health checks)",
        "deploy",
        _optional(_health_path),
    )
    drain_delay: float = _opt(
        0.0,
        "on SIGTERM (and for old workers in a reload) keep serving this long with the health path "
        "at 503 and 'Connection: close' on every response, so a balancer sees the host leave "
        "before it stops accepting; a second SIGTERM/SIGINT skips it",
        "deploy",
        _seconds(True),
    )
    metrics_port: int | None = _opt(
        None,
        "serve Prometheus metrics of all workers on this port (off by default; needs the "
        "supervisor, so it implies one even with workers=1)",
        "deploy",
        _optional(_integer(0, 65535)),
    )
    metrics_host: str = _opt("127.0.0.1", "address the metrics listener binds", "deploy", _host)

    # --- HTTP/2 ----------------------------------------------------------------------------------
    http2: bool = _opt(
        True,
        "serve HTTP/2: ALPN h2 over TLS, prior-knowledge h2c on cleartext (--no-http2: HTTP/1 only)",
        "http2",
        _flag,
    )
    http2_max_concurrent_streams: int = _opt(
        100,
        "streams a client may have open on one connection (more are refused)",
        "http2",
        _integer(1),
    )
    http2_stream_window: int = _opt(
        64 * KiB - 1,
        "request body bytes a stream may send before we ask for more",
        "http2",
        _integer(1, 2**31 - 1),
    )
    http2_max_resets: int = _opt(
        200,
        "stream resets (client RST_STREAM or refused streams) per 10 s before GOAWAY (rapid reset)",
        "http2",
        _integer(1),
    )
    http2_max_control_frames: int = _opt(
        1000,
        "SETTINGS/PING/PRIORITY/empty DATA frames per 10 s before GOAWAY (floods)",
        "http2",
        _integer(1),
    )

    # --- responses and logging -----------------------------------------------------------------
    server_header: bool = _opt(True, "send 'Server: peregrine'", "logging", _flag)
    access_log: bool = _opt(
        False,
        "log one line per answer (logger peregrine.access), errors the server sends included",
        "logging",
        _flag,
    )
    access_log_format: str | None = _opt(
        None,
        "access log line with {fields}: client, method, path, query, target, version, status, "
        "bytes, duration_us, user_agent, referer, request_id (implies --access-log)",
        "logging",
        _optional(_access_log_format),
    )
    access_log_json: bool = _opt(
        False,
        "access log lines as JSON objects of those fields (implies --access-log)",
        "logging",
        _flag,
    )
    log_level: str = _opt(
        "info",
        "debug, info, warning, error or critical (any case on the command line)",
        "logging",
        _choice("debug", "info", "warning", "error", "critical"),
    )
    log_config: str | None = _opt(
        None,
        "logging set-up file: dictConfig as .json, .toml or .yaml (PyYAML), or fileConfig .ini",
        "logging",
        _optional(_path),
    )
    pid_file: str | None = _opt(
        None,
        "write the server's process id to this file (removed at exit)",
        "process",
        _optional(_path),
    )

    def __post_init__(self) -> None:
        if self.access_log_format is not None or self.access_log_json is True:
            self.access_log = True
        for each in dataclasses.fields(self):
            value = getattr(self, each.name)
            allowed = each.metadata["check"](value)
            if allowed is not None:
                shown = (
                    "a value not shown here (secret)"
                    if each.metadata.get("secret")
                    else repr(value)
                )
                raise ValueError(f"Config.{each.name} must be {allowed}, got {shown}")
        # the checks that involve two fields
        if self.write_buffer_low > self.write_buffer_high:
            raise ValueError(
                f"Config.write_buffer_low ({self.write_buffer_low}) must not exceed "
                f"Config.write_buffer_high ({self.write_buffer_high})"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("Config.ssl_keyfile needs Config.ssl_certfile")
        if self.ssl_cert_reqs != "none" and not self.ssl_ca_certs:
            raise ValueError(
                "Config.ssl_cert_reqs needs Config.ssl_ca_certs to verify clients against"
            )
        if self.uds is not None and self.fd is not None:
            raise ValueError("Config.uds and Config.fd are exclusive: pick one listener")

    @property
    def tls(self) -> bool:
        """True when the server speaks HTTPS."""
        return self.ssl_certfile is not None

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
