"""``aiomisc_c.service.tls``: SSLOptions and its contexts, the TLS server and
the TLS clients, with certificates made at test time (tests/tls_certs.py)."""
import asyncio
import dataclasses
import ssl
from pathlib import Path

import pytest
from tls_certs import certs  # noqa: F401 - fixture

from aiomisc_c.service import tls
from aiomisc_c.service.tls import (
    DEFAULT_SSL_CIPHERS,
    DEFAULT_SSL_MAX_VERSION,
    DEFAULT_SSL_MIN_VERSION,
    SSLOptions,
    SSLOptionsBase,
    get_ssl_context,
)


@pytest.fixture
def loop(plain_loop):
    return plain_loop


# ------------------------------------------------------------- SSLOptions


def test_defaults():
    assert DEFAULT_SSL_MIN_VERSION is ssl.TLSVersion.TLSv1_3
    assert DEFAULT_SSL_MAX_VERSION is ssl.TLSVersion.TLSv1_3
    assert DEFAULT_SSL_CIPHERS == (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    )
    assert tls.PathOrStr == Path | str


def test_options_convert_paths_and_are_frozen():
    options = SSLOptions("a.pem", Path("a.key"), "", True, False,
                         ssl.Purpose.CLIENT_AUTH)
    assert isinstance(options, SSLOptionsBase)
    assert options.cert == Path("a.pem")
    assert options.key == Path("a.key")
    assert options.ca is None
    assert options.minimum_version is DEFAULT_SSL_MIN_VERSION
    assert options.maximum_version is DEFAULT_SSL_MAX_VERSION
    assert options.ciphers == DEFAULT_SSL_CIPHERS
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.verify = False
    assert options == SSLOptions(Path("a.pem"), "a.key", None, True, False,
                                 ssl.Purpose.CLIENT_AUTH)
    assert [f.name for f in dataclasses.fields(SSLOptionsBase)] == [
        "cert", "key", "ca", "verify", "require_client_cert", "purpose",
        "minimum_version", "maximum_version", "ciphers",
    ]


def test_server_context(certs):
    options = SSLOptions(certs.server_cert, certs.server_key, certs.ca,
                         True, False, ssl.Purpose.CLIENT_AUTH)
    context = options.create_context()
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert context.maximum_version is ssl.TLSVersion.TLSv1_3
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False
    names = {cipher["name"] for cipher in context.get_ciphers()}
    assert "ECDHE-RSA-AES256-GCM-SHA384" in names
    assert "AES256-SHA" not in names
    # The CA was loaded.
    assert context.cert_store_stats()["x509_ca"] == 1


def test_require_client_cert_context(certs):
    context = SSLOptions(
        certs.server_cert, certs.server_key, certs.ca, True, True,
        ssl.Purpose.CLIENT_AUTH,
    ).create_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    # Post-handshake auth would defer the request and admit anyone.
    assert context.post_handshake_auth is False


def test_client_context_without_verify(certs):
    context = SSLOptions(None, None, None, False, True,
                         ssl.Purpose.SERVER_AUTH).create_context()
    assert context.check_hostname is False
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.post_handshake_auth is True


def test_versions_and_ciphers_are_applied():
    context = SSLOptions(
        None, None, None, True, False, ssl.Purpose.SERVER_AUTH,
        minimum_version=ssl.TLSVersion.TLSv1_2,
        maximum_version=ssl.TLSVersion.TLSv1_2,
        ciphers=("ECDHE-RSA-AES128-GCM-SHA256",),
    ).create_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.maximum_version is ssl.TLSVersion.TLSv1_2
    tls12 = {c["name"] for c in context.get_ciphers()
             if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES128-GCM-SHA256"}


def test_missing_ca(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(FileNotFoundError) as info:
        SSLOptions(None, None, missing, True, False,
                   ssl.Purpose.CLIENT_AUTH).create_context()
    assert info.value.args == ("CA file doesn't exists", str(missing.resolve()))


def test_bad_cipher_list():
    with pytest.raises(ssl.SSLError):
        SSLOptions(None, None, None, True, False, ssl.Purpose.CLIENT_AUTH,
                   ciphers=("NOT-A-CIPHER",)).create_context()


def test_cert_without_key_is_not_loaded(certs):
    context = SSLOptions(certs.server_cert, None, None, True, False,
                         ssl.Purpose.CLIENT_AUTH).create_context()
    assert context.cert_store_stats()["x509_ca"] == 0


def test_get_ssl_context(certs):
    context = get_ssl_context(certs.server_cert, certs.server_key, certs.ca,
                              True, True, ssl.Purpose.CLIENT_AUTH)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is DEFAULT_SSL_MIN_VERSION


async def _handshake(server_options, client_options):
    """One TLS exchange over 127.0.0.1 with contexts from the options:
    the line the server read (None if its handler never ran) and what the
    client read back (or the exception it got)."""
    seen = []

    async def handle(reader, writer):
        seen.append(await reader.readline())
        writer.write(b"pong\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=server_options.create_context(),
    )
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_options.create_context(),
        )
        try:
            writer.write(b"ping\n")
            answer = await reader.readline()
        except (OSError, ssl.SSLError) as error:
            answer = error
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass
    finally:
        server.close()
        await server.wait_closed()
    return (seen[0] if seen else None), answer


def test_contexts_talk(loop, certs):
    server = SSLOptions(certs.server_cert, certs.server_key, certs.ca,
                        True, False, ssl.Purpose.CLIENT_AUTH)
    client = SSLOptions(None, None, certs.ca, True, False,
                        ssl.Purpose.SERVER_AUTH)
    assert loop.run_until_complete(_handshake(server, client)) == (
        b"ping\n", b"pong\n",
    )


def test_client_cert_required_and_trusted(loop, certs):
    server = SSLOptions(certs.server_cert, certs.server_key, certs.ca,
                        True, True, ssl.Purpose.CLIENT_AUTH)
    client = SSLOptions(certs.client_cert, certs.client_key, certs.ca,
                        True, False, ssl.Purpose.SERVER_AUTH)
    assert loop.run_until_complete(_handshake(server, client)) == (
        b"ping\n", b"pong\n",
    )


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
def test_client_cert_required_and_refused(loop, certs, who):
    server = SSLOptions(certs.server_cert, certs.server_key, certs.ca,
                        True, True, ssl.Purpose.CLIENT_AUTH)
    if who == "stranger":
        client = SSLOptions(certs.stranger_cert, certs.stranger_key, None,
                            True, False, ssl.Purpose.SERVER_AUTH)
    else:
        client = SSLOptions(None, None, None, True, False,
                            ssl.Purpose.SERVER_AUTH)
    seen, answer = loop.run_until_complete(_handshake(server, client))
    assert seen is None
    assert answer == b"" or isinstance(answer, (OSError, ssl.SSLError))
