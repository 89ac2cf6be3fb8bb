"""HTTPS with real certificates made at test time (trustme) and real TLS clients."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import ssl
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest
import trustme

from ..helpers import ROOT, run_peregrine
from .support import get

PID_APP = "tests.process.apps:Pid"

APP = "tests.apps:Echo"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    directory: Path = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client@example.com")
    paths = {
        "ca": directory / "ca.pem",
        "server": directory / "server.pem",
        "client": directory / "client.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(paths["server"]))
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    return {name: str(path) for name, path in paths.items()}


def client_context(
    pki: dict[str, str], maximum: ssl.TLSVersion | None = None, cert: bool = False
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    if maximum is not None:
        context.maximum_version = maximum
    if cert:
        context.load_cert_chain(pki["client"])
    return context


def https_get(server, context: ssl.SSLContext) -> httpx.Response:  # type: ignore[no-untyped-def]
    with httpx.Client(verify=context) as client:
        return client.get(
            f"https://127.0.0.1:{server.port}/", headers={"Connection": "close"}, timeout=10
        )


@pytest.mark.parametrize("workers", [1, 2])
def test_https_end_to_end(start_server, pki, workers: int) -> None:
    server = start_server(APP, "--ssl-certfile", pki["server"], workers=workers)
    assert server.url.startswith("https://")
    response = https_get(server, client_context(pki))
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.json()["scheme"] == "https"
    # a plain-HTTP request to the TLS port does not get an HTTP answer
    with pytest.raises(httpx.HTTPError):
        get(f"http://127.0.0.1:{server.port}/", timeout=5)
    assert server.stop() == 0


def test_alpn_advertises_http11_and_tls12_is_accepted(start_server, pki) -> None:
    # with HTTP/2 on, ALPN picks h2 (tests/aio/test_h2_e2e.py); off, http/1.1 is the only offer
    server = start_server(APP, "--ssl-certfile", pki["server"], "--no-http2")
    context = client_context(pki, maximum=ssl.TLSVersion.TLSv1_2)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            assert tls.version() == "TLSv1.2"


def test_tls13_only(start_server, pki) -> None:
    server = start_server(APP, "--ssl-certfile", pki["server"], "--ssl-min-version", "1.3")
    with pytest.raises(httpx.ConnectError):
        https_get(server, client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert https_get(server, client_context(pki)).status_code == 200


def test_client_certificates_required(start_server, pki) -> None:
    server = start_server(
        APP,
        "--ssl-certfile",
        pki["server"],
        "--ssl-ca-certs",
        pki["ca"],
        "--ssl-cert-reqs",
        "required",
        workers=2,
    )
    with pytest.raises(httpx.HTTPError):
        https_get(server, client_context(pki))  # no certificate: refused
    assert https_get(server, client_context(pki, cert=True)).status_code == 200
    assert "Traceback" not in server.output  # a refused client is routine, not an error


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_stalled_handshake_is_timed_out(start_server, pki, loop: str) -> None:
    server = start_server(
        APP, "--ssl-certfile", pki["server"], "--tls-handshake-timeout", "1", "--loop", loop
    )
    stalled = [socket.create_connection((server.host, server.port), timeout=10) for _ in range(3)]
    # Only the handshake timeout ends a stalled handshake (the HTTP timeouts start after it), and
    # without the configured 1 s the loop's own default (60 s) would: a close within the 6 s
    # below is the configured timeout firing. The 6 s only make a hang fail.
    for sock in stalled:
        sock.settimeout(6)
        try:
            assert sock.recv(100) == b""  # the server closed it
        except ConnectionResetError:
            pass  # or reset it: either way it is gone
        sock.close()
    # a stalled client sending half a hello is dropped the same way
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        sock.settimeout(6)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    assert https_get(server, client_context(pki)).status_code == 200


def test_bad_certificate_file_refuses_to_start(tmp_path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    for workers in ("1", "2"):
        proc = run_peregrine(
            "run",
            APP,
            "--port",
            "0",
            "--workers",
            workers,
            "--ssl-certfile",
            str(bad),
            timeout=30,
        )
        assert proc.returncode != 0
        assert "PEM" in proc.stderr or "SSL" in proc.stderr


def test_encrypted_key_without_password_fails_instead_of_prompting(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    from cryptography.hazmat.primitives import serialization

    cert = trustme.CA().issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    keyfile, certfile = tmp_path / "key.pem", tmp_path / "cert.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    with warnings.catch_warnings():
        # 3.12+ warns when a process with threads forks: under xdist this one has execnet's
        # receiver thread. The child only changes directory and execs, taking no lock.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid, fd = pty.fork()  # a controlling terminal, as when run by hand
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "peregrine",
                "run",
                PID_APP,
                "--port",
                "0",
                "--workers",
                "1",
                "--ssl-certfile",
                str(certfile),
                "--ssl-keyfile",
                str(keyfile),
            ],
        )
    output, status = b"", None
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    pass
            if b"pass phrase" in output:
                break  # waiting for someone to type the password
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert b"pass phrase" not in output, output.decode(errors="replace")
    assert status is not None and status != 0, "start-up hung instead of failing"
