"""The TLS context made from the ``ssl_*`` options (standard ``ssl`` module, OpenSSL underneath)."""

from __future__ import annotations

import errno
import os
import ssl

from ..config import Config

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def make_ssl_context(config: Config) -> ssl.SSLContext:
    """A server context: TLS 1.2+ (or 1.3 only), ALPN ``h2`` and ``http/1.1``, optional client certificates.

    Raises ``OSError`` for a missing file, ``ssl.SSLError`` for a certificate, key or password
    that does not load, and ``ValueError`` for an encrypted key without a password, so the
    server can refuse to start with the reason.
    """
    assert config.ssl_certfile is not None
    _check_files(config)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if config.ssl_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    # No TLS compression (CRIME) and no client-initiated renegotiation (a cheap way for a client
    # to make the server do expensive handshakes over and over on one connection).
    context.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    # Without a password, OpenSSL would prompt on the terminal (and hang a server with none):
    # a callback that refuses makes an encrypted key fail to load with the reason instead.
    password = (
        config.ssl_keyfile_password if config.ssl_keyfile_password is not None else _no_password
    )
    context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password)
    if config.ssl_ca_certs:
        context.load_verify_locations(config.ssl_ca_certs)
    context.verify_mode = _CERT_REQS[config.ssl_cert_reqs]
    # h2 first when HTTP/2 is on (the client picks from its own list, most prefer h2); without
    # it, saying http/1.1 makes clients that offer h2 fall back cleanly.
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return context


def _no_password() -> str:
    raise ValueError(
        "the private key is encrypted: give its password with ssl_keyfile_password "
        "(--ssl-keyfile-password)"
    )


def _check_files(config: Config) -> None:
    """Refuse, naming the option, a file that cannot be read or a certificate without its key.

    OpenSSL's own errors ("[SSL] PEM lib (_ssl.c:3900)") name neither the file nor the fix.
    """
    for option, path in (
        ("--ssl-certfile", config.ssl_certfile),
        ("--ssl-keyfile", config.ssl_keyfile),
        ("--ssl-ca-certs", config.ssl_ca_certs),
    ):
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                file.read(1)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"cannot read {option} {path!r}: no such file") from None
        except IsADirectoryError:
            raise OSError(errno.EISDIR, f"cannot read {option} {path!r}: a directory") from None
        except PermissionError:
            raise OSError(
                errno.EACCES, f"cannot read {option} {path!r}: permission denied"
            ) from None
    certfile = str(config.ssl_certfile)
    if os.path.getsize(certfile) > 1 << 20:
        return  # not a PEM bundle worth reading whole here: let OpenSSL judge
    with open(certfile, "rb") as file:
        pem = file.read()
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError(
            f"cannot load --ssl-certfile {certfile!r}: not a PEM certificate "
            "(no -----BEGIN CERTIFICATE----- line)"
        )
    if config.ssl_keyfile is None and b"PRIVATE KEY-----" not in pem:
        raise ValueError(f"--ssl-keyfile missing for --ssl-certfile {certfile!r}")
