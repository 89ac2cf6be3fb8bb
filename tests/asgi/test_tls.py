"""ASGI over TLS: the scheme and the ``tls`` extension with a client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from ..helpers import ServerProcess


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory: Path = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    paths = {
        "ca": directory / "ca.pem",
        "server": directory / "server.pem",
        "client": directory / "client.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(paths["server"]))
    ca.issue_cert("client@example.com").private_key_and_cert_chain_pem.write_to_path(
        str(paths["client"])
    )
    return {name: str(path) for name, path in paths.items()}


def test_tls_extension_carries_the_client_certificate(pki: dict[str, str]) -> None:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.load_cert_chain(pki["client"])
    with ServerProcess(
        "tests.asgi.apps:raw",
        "--ssl-certfile",
        pki["server"],
        "--ssl-ca-certs",
        pki["ca"],
        "--ssl-cert-reqs",
        "optional",
    ) as server:
        with httpx.Client(verify=context) as client:
            scope = client.get(f"https://127.0.0.1:{server.port}/tls").json()
    assert scope["scheme"] == "https"
    assert scope["tls_version"] in (0x0303, 0x0304)
    assert len(scope["client_cert_chain"]) == 1
    assert scope["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert "organizationName=trustme" in scope["client_cert_name"]  # the subject DN
