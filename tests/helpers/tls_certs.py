"""Certificates made at test time with ``trustme``: a CA, a server
certificate for localhost/127.0.0.1/::1, a client certificate signed by the
CA and one signed by an unrelated CA.  Import the ``certs`` fixture."""
import types

import pytest
import trustme


def _write_pair(cert, directory, name):
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    stranger_ca = trustme.CA()
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    stranger_ca_path = directory / "stranger-ca.pem"
    stranger_ca.cert_pem.write_to_path(str(stranger_ca_path))

    server_cert, server_key = _write_pair(
        ca.issue_cert("localhost", "127.0.0.1", "::1"), directory, "server",
    )
    client_cert, client_key = _write_pair(
        ca.issue_cert("client@example.com"), directory, "client",
    )
    stranger_cert, stranger_key = _write_pair(
        stranger_ca.issue_cert("stranger@example.com"), directory, "stranger",
    )
    return types.SimpleNamespace(
        ca=ca_path, stranger_ca=stranger_ca_path,
        server_cert=server_cert, server_key=server_key,
        client_cert=client_cert, client_key=client_key,
        stranger_cert=stranger_cert, stranger_key=stranger_key,
    )
