"""Every server option in one validated dataclass.

The command line is generated from this class (one flag per field, see ``cli.py``), so a field's
``help`` metadata is also its ``--help`` text. Add an option here and it exists everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

KiB = 1024
MiB = 1024 * KiB


def _opt(default: Any, help: str, group: str = "server", **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass
class Config:
    """All options of a Peregrine server, validated when the object is made.

    Raises ``ValueError`` naming the offending field when a value is out of range.
    """

    # --- the application ---------------------------------------------------------------------
    interface: str = _opt(
        "auto",
        "auto (guess from the app), native (handle_request), asgi or wsgi",
        "application",
    )
    factory: bool = _opt(
        False, "MODULE:ATTR is a function that returns the app: call it", "application"
    )
    root_path: str = _opt(
        "",
        "path prefix a proxy removed before forwarding (ASGI root_path, WSGI SCRIPT_NAME)",
        "application",
    )
    lifespan: str = _opt(
        "auto",
        "ASGI lifespan events: auto (if the app supports them), on (required) or off",
        "application",
    )
    threads: int = _opt(
        10,
        "WSGI: threads per worker running the app; 0 = on the event loop, one request at a time",
        "application",
    )

    # --- listening -------------------------------------------------------------------------
    host: str = _opt("127.0.0.1", "address to bind (IPv4 or IPv6)", "listen")
    port: int = _opt(3000, "TCP port to bind (0 picks a free port)", "listen")
    uds: str | None = _opt(None, "bind a unix domain socket at this path instead", "listen")
    uds_permissions: int | None = _opt(
        None,
        "file mode of the unix socket, e.g. 0o660 (octal accepted on the command line)",
        "listen",
    )
    fd: int | None = _opt(
        None, "serve on an inherited, already bound socket file descriptor", "listen"
    )
    backlog: int = _opt(2048, "listen() backlog", "listen")
    reuse_port: bool = _opt(
        False,
        "one SO_REUSEPORT socket per worker, spread by the kernel (Linux/BSD); off = one socket all "
        "workers share, taken by whichever worker is free (measured better here: docs/production.md)",
        "listen",
    )

    # --- processes ---------------------------------------------------------------------------
    workers: int = _opt(
        0, "worker processes; 0 = one per available CPU core, 1 = this process", "process"
    )
    cpu_affinity: bool = _opt(False, "pin worker i to core i", "process")
    graceful_timeout: float = _opt(
        30.0, "seconds in-flight requests get to finish at shutdown", "process"
    )
    max_requests: int = _opt(0, "recycle a worker after this many requests (0 = never)", "process")
    max_requests_jitter: int = _opt(
        0, "random extra requests added to max_requests per worker", "process"
    )
    loop: str = _opt(
        "auto", "event loop: auto (uvloop when installed), uvloop or asyncio", "process"
    )

    # --- timeouts (seconds) ------------------------------------------------------------------
    keep_alive_timeout: float = _opt(
        5.0, "close an idle keep-alive connection after this long", "timeouts"
    )
    header_timeout: float = _opt(
        10.0, "time to receive a complete request head (then 408)", "timeouts"
    )
    body_timeout: float = _opt(
        30.0, "longest gap between two parts of a request body (then 408)", "timeouts"
    )
    send_timeout: float = _opt(
        30.0, "close when a client reads nothing of our output for this long", "timeouts"
    )
    tls_handshake_timeout: float = _opt(10.0, "time allowed for a TLS handshake", "timeouts")

    # --- limits --------------------------------------------------------------------------------
    max_request_line: int = _opt(
        8 * KiB, "longest request target (URI) in bytes (then 414)", "limits"
    )
    max_header_size: int = _opt(32 * KiB, "largest request head in bytes (then 431)", "limits")
    max_header_count: int = _opt(100, "most header fields in a request (then 431)", "limits")
    max_body_size: int = _opt(1 * MiB, "largest request body in bytes (then 413)", "limits")
    max_connections: int = _opt(
        10000, "open connections per worker; beyond it new ones get 503", "limits"
    )
    max_pipelined: int = _opt(
        32, "parsed requests queued on one connection before reading pauses", "limits"
    )
    write_buffer_high: int = _opt(
        64 * KiB, "send buffer size above which streaming writes wait", "limits"
    )
    write_buffer_low: int = _opt(
        16 * KiB, "send buffer size below which streaming writes resume", "limits"
    )

    # --- TLS -----------------------------------------------------------------------------------
    ssl_certfile: str | None = _opt(None, "PEM certificate chain; enables HTTPS", "tls")
    ssl_keyfile: str | None = _opt(None, "PEM private key (defaults to the certfile)", "tls")
    ssl_keyfile_password: str | None = _opt(None, "password of an encrypted private key", "tls")
    ssl_ca_certs: str | None = _opt(None, "CA bundle used to verify client certificates", "tls")
    ssl_cert_reqs: str = _opt("none", "client certificates: none, optional or required", "tls")
    ssl_min_version: str = _opt("1.2", "lowest TLS version accepted: 1.2 or 1.3", "tls")

    # --- proxies -------------------------------------------------------------------------------
    forwarded_allow_ips: str | None = _opt(
        None,
        "comma-separated addresses/CIDRs trusted to set X-Forwarded-For/-Proto and Forwarded ('*' = all)",
        "proxy",
    )
    forwarded_headers: str = _opt(
        "auto",
        "which proxy headers to believe: auto (X-Forwarded-* when present, else Forwarded), "
        "x-forwarded or forwarded (the other family is ignored)",
        "proxy",
    )

    # --- WebSocket -----------------------------------------------------------------------------
    ws_max_message_size: int = _opt(
        16 * MiB, "largest WebSocket message after decompression (then 1009)", "websocket"
    )
    ws_ping_interval: float = _opt(20.0, "seconds between keepalive pings (0 = off)", "websocket")
    ws_ping_timeout: float = _opt(
        20.0, "close when a pong does not arrive within this long", "websocket"
    )
    ws_write_limit: int = _opt(
        1 * MiB,
        "send buffer above which a client that does not read is closed (checked before each send)",
        "websocket",
    )
    ws_close_timeout: float = _opt(5.0, "time the peer gets to answer our close frame", "websocket")
    ws_compression: bool = _opt(
        True, "offer permessage-deflate compression to clients that ask", "websocket"
    )
    ws_compression_window_bits: int = _opt(
        12,
        "deflate window (9-15 bits) per direction; smaller saves memory per connection",
        "websocket",
    )
    ws_compression_level: int = _opt(
        6, "zlib compression level of outgoing messages (1-9)", "websocket"
    )

    # --- responses and logging -----------------------------------------------------------------
    server_header: bool = _opt(True, "send 'Server: peregrine'", "logging")
    access_log: bool = _opt(False, "log one line per request, with its duration", "logging")
    log_level: str = _opt("info", "debug, info, warning, error or critical", "logging")

    def __post_init__(self) -> None:
        positive_ints = (
            "backlog",
            "max_request_line",
            "max_header_size",
            "max_header_count",
            "max_connections",
            "max_pipelined",
            "write_buffer_high",
            "ws_max_message_size",
            "ws_write_limit",
            "ws_compression_window_bits",
            "ws_compression_level",
        )
        non_negative = (
            "port",
            "workers",
            "max_requests",
            "max_requests_jitter",
            "max_body_size",
            "write_buffer_low",
            "graceful_timeout",
            "ws_ping_interval",
        )
        positive_floats = (
            "keep_alive_timeout",
            "header_timeout",
            "body_timeout",
            "send_timeout",
            "tls_handshake_timeout",
            "ws_ping_timeout",
            "ws_close_timeout",
        )
        for name in (*positive_ints, *non_negative, *positive_floats):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Config.{name} must be a number, got {value!r}")
        for name in positive_ints:
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(
                    f"Config.{name} must be a positive integer, got {getattr(self, name)!r}"
                )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"Config.{name} must not be negative, got {getattr(self, name)!r}")
        for name in positive_floats:
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"Config.{name} must be greater than 0, got {getattr(self, name)!r}"
                )
        if self.port > 65535:
            raise ValueError(f"Config.port must be at most 65535, got {self.port!r}")
        if not 9 <= self.ws_compression_window_bits <= 15:
            raise ValueError(
                f"Config.ws_compression_window_bits must be 9 to 15, got {self.ws_compression_window_bits!r}"
            )
        if not 1 <= self.ws_compression_level <= 9:
            raise ValueError(
                f"Config.ws_compression_level must be 1 to 9, got {self.ws_compression_level!r}"
            )
        if self.write_buffer_low > self.write_buffer_high:
            raise ValueError("Config.write_buffer_low must not exceed Config.write_buffer_high")
        self._check_choice("loop", ("auto", "uvloop", "asyncio"))
        self._check_choice("interface", ("auto", "native", "asgi", "wsgi"))
        self._check_choice("lifespan", ("auto", "on", "off"))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"Config.threads must be a whole number >= 0, got {self.threads!r}")
        if not isinstance(self.root_path, str) or (
            self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/"))
        ):
            raise ValueError(
                f"Config.root_path must be empty or a path like '/api' (a leading slash, no "
                f"trailing one), got {self.root_path!r}"
            )
        self._check_choice("log_level", ("debug", "info", "warning", "error", "critical"))
        self._check_choice("ssl_cert_reqs", ("none", "optional", "required"))
        self._check_choice("ssl_min_version", ("1.2", "1.3"))
        from .http.forwarded import FAMILIES  # the one list, kept with the code that reads it

        self._check_choice("forwarded_headers", FAMILIES)
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("Config.ssl_keyfile needs Config.ssl_certfile")
        if self.ssl_cert_reqs != "none" and not self.ssl_ca_certs:
            raise ValueError(
                "Config.ssl_cert_reqs needs Config.ssl_ca_certs to verify clients against"
            )
        if self.uds is not None and self.fd is not None:
            raise ValueError("Config.uds and Config.fd are exclusive: pick one listener")
        if self.forwarded_allow_ips is not None:
            if not isinstance(self.forwarded_allow_ips, str):
                raise ValueError(
                    f"Config.forwarded_allow_ips must be a string, got {self.forwarded_allow_ips!r}"
                )
            from .http.forwarded import TrustedProxies

            try:
                TrustedProxies(self.forwarded_allow_ips)
            except ValueError as exc:  # names the bad entry
                raise ValueError(f"Config.{exc}") from None

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        if getattr(self, name) not in choices:
            raise ValueError(
                f"Config.{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}"
            )

    @property
    def tls(self) -> bool:
        """True when the server speaks HTTPS."""
        return self.ssl_certfile is not None

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
