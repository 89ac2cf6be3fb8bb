"""The suite's own helpers (tests/helpers.py) do what the tests rely on."""

from __future__ import annotations

import ssl

import httpx

from .helpers import share_httpx_default_tls_context


def _context_of(client: httpx.Client) -> ssl.SSLContext:
    context: ssl.SSLContext = client._transport._pool._ssl_context  # type: ignore[attr-defined]
    return context


def test_httpx_clients_that_verify_by_default_share_one_verifying_context() -> None:
    share_httpx_default_tls_context()  # done by tests/conftest.py already: a second call keeps it
    with httpx.Client() as first, httpx.Client(http2=True) as second:
        shared = _context_of(first)
        assert _context_of(second) is shared, "httpx no longer builds it in create_ssl_context"
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    assert shared.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_httpx_clients_with_their_own_verification_get_their_own_context() -> None:
    mine = ssl.create_default_context()
    with httpx.Client() as default, httpx.Client(verify=False) as unverified:
        with httpx.Client(verify=mine) as own:
            assert _context_of(own) is mine
        assert _context_of(unverified) is not _context_of(default)
        assert _context_of(unverified).verify_mode == ssl.CERT_NONE
