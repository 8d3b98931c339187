"""``aiomisc_c.service.tls``: SSLOptions and its contexts, the TLS server and
the TLS clients, with certificates made at test time (tests/helpers/tls_certs.py)."""
import asyncio
import dataclasses
import logging
import pickle
import socket
import ssl
from pathlib import Path

import pytest
from helpers.net_helpers import (
    close_writer,
    needs_ipv6,
    needs_unix,
    run_services,
    unix_path,  # noqa: F401 - fixture
)
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from helpers.tls_certs import certs  # noqa: F401 - fixture

import aiomisc_c
from aiomisc_c.service import (
    RobustTCPClient,
    RobustTLSClient,
    TCPClient,
    TCPServer,
    TLSClient,
    TLSServer,
)
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


# ------------------------------------------------------------- TLSServer


class LineServer(TLSServer):
    """Records the first line of every connection and answers ``ok``."""

    def __init__(self, **kwargs):
        self.lines = []
        self.peers = []
        super().__init__(**kwargs)

    async def handle_client(self, reader, writer):
        self.peers.append(writer.get_extra_info("peercert"))
        self.lines.append(await reader.readline())
        writer.write(b"ok\n")
        await writer.drain()
        await close_writer(writer)


def server_keywords(certs, **kwargs):
    keywords = dict(
        address="127.0.0.1", port=0,
        cert=certs.server_cert, key=certs.server_key, ca=certs.ca,
    )
    keywords.update(kwargs)
    return keywords


def client_context(certs, with_cert=True, stranger=False):
    context = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        if stranger:
            context.load_cert_chain(certs.stranger_cert, certs.stranger_key)
        else:
            context.load_cert_chain(certs.client_cert, certs.client_key)
    return context


async def tls_exchange(host, port, context, payload=b"hello\n", **kwargs):
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, **kwargs,
    )
    try:
        writer.write(payload)
        return await reader.readline()
    except (OSError, ssl.SSLError) as error:
        return error
    finally:
        try:
            await close_writer(writer)
        except ssl.SSLError:
            pass


def test_server_class_and_arguments(certs):
    assert TLSServer.PROTO_NAME == "tls"
    assert not issubclass(TLSServer, TCPServer)
    with pytest.raises(TypeError):
        LineServer("127.0.0.1", 0, cert=certs.server_cert,  # keyword-only
                   key=certs.server_key)
    with pytest.raises(TypeError):
        LineServer(address="127.0.0.1", port=0)   # cert and key required
    with pytest.raises(RuntimeError, match="socket instance"):
        LineServer(cert=certs.server_cert, key=certs.server_key)
    with pytest.raises(ValueError, match="sock must be socket instance"):
        LineServer(sock=1, cert=certs.server_cert, key=certs.server_key)
    server = LineServer(**server_keywords(certs), tag=1)
    assert server.address is None and server.port is None
    assert server.tag == 1


@pytest.mark.parametrize("require_client_cert", [False, True])
def test_server_with_trusted_client(
    implementation, policy, certs, require_client_cert,
):
    # ``implementation``: the context is built in the entrypoint's thread
    # pool, of either twin.
    server = LineServer(**server_keywords(
        certs, address="localhost", require_client_cert=require_client_cert,
    ))

    async def body():
        assert server.address == "127.0.0.1"
        return await tls_exchange(
            "127.0.0.1", server.port, client_context(certs),
            server_hostname="localhost",
        )

    assert run_services(policy, server, body=body) == b"ok\n"
    assert server.lines == [b"hello\n"]
    peer = server.peers[0]
    if require_client_cert:
        assert peer and "client@example.com" in str(peer["subjectAltName"])
    else:
        assert not peer


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
def test_server_refuses_unknown_client(policy, certs, who):
    server = LineServer(**server_keywords(certs, require_client_cert=True))

    async def body():
        context = client_context(
            certs, with_cert=who == "stranger", stranger=True,
        )
        answer = await tls_exchange("127.0.0.1", server.port, context,
                                    server_hostname="localhost")
        # The server keeps serving trusted clients.
        trusted = await tls_exchange(
            "127.0.0.1", server.port, client_context(certs),
            server_hostname="localhost",
        )
        return answer, trusted

    answer, trusted = run_services(policy, server, body=body)
    assert answer == b"" or isinstance(answer, (OSError, ssl.SSLError))
    assert trusted == b"ok\n"
    assert server.lines == [b"hello\n"]


def test_server_versions(policy, certs):
    # trustme keys are ECDSA ones.
    versions = []

    class Recording(LineServer):
        async def handle_client(self, reader, writer):
            ssl_object = writer.get_extra_info("ssl_object")
            versions.append((ssl_object.version(), ssl_object.cipher()[0]))
            await super().handle_client(reader, writer)

    server = Recording(**server_keywords(
        certs,
        minimum_version=ssl.TLSVersion.TLSv1_2,
        maximum_version=ssl.TLSVersion.TLSv1_2,
        ciphers=("ECDHE-ECDSA-AES128-GCM-SHA256",),
    ))

    async def body():
        return await tls_exchange(
            "127.0.0.1", server.port, client_context(certs, with_cert=False),
            server_hostname="localhost",
        )

    assert run_services(policy, server, body=body) == b"ok\n"
    assert versions == [("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")]


@needs_ipv6
def test_server_ipv6(policy, certs):
    server = LineServer(**server_keywords(certs, address="::1"))

    async def body():
        return await tls_exchange(
            "::1", server.port, client_context(certs, with_cert=False),
            server_hostname="localhost",
        )

    assert run_services(policy, server, body=body) == b"ok\n"


@needs_unix
def test_server_unix_socket(policy, certs, unix_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(unix_path)
    server = LineServer(**server_keywords(
        certs, address=None, port=None, sock=sock,
    ))

    async def body():
        assert server.address == unix_path
        reader, writer = await asyncio.open_unix_connection(
            unix_path, ssl=client_context(certs, with_cert=False),
            server_hostname="localhost",
        )
        writer.write(b"unix\n")
        answer = await reader.readline()
        await close_writer(writer)
        return answer

    assert run_services(policy, server, body=body) == b"ok\n"


def test_server_missing_cert_fails_start(policy, certs, tmp_path):
    server = LineServer(**server_keywords(certs, cert=tmp_path / "none.pem"))
    with pytest.raises(OSError):
        with ep(server, policy=policy):
            pass  # pragma: no cover - never reached


def test_server_closes_connections_on_stop(policy, certs):
    class Holding(TLSServer):
        async def handle_client(self, reader, writer):
            self.connected.set()
            await asyncio.sleep(3600)

    server = Holding(**server_keywords(certs))
    loop = policy.new_event_loop()

    async def outer():
        server.connected = asyncio.Event()
        async with ep(server, policy=policy, loop=loop):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port,
                ssl=client_context(certs, with_cert=False),
                server_hostname="localhost",
            )
            writer.write(b"x")
            await asyncio.wait_for(server.connected.wait(), 10)
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""
        except (OSError, ssl.SSLError):
            pass
        await close_writer(writer)

    try:
        loop.run_until_complete(outer())
    finally:
        loop.close()
    assert not server.tasks


def test_server_pickle_round_trip(policy, certs):
    copy = pickle.loads(pickle.dumps(LineServer(**server_keywords(certs))))

    async def body():
        return await tls_exchange(
            "127.0.0.1", copy.port, client_context(certs, with_cert=False),
            server_hostname="localhost",
        )

    assert run_services(policy, copy, body=body) == b"ok\n"


# ------------------------------------------------------------- clients


def test_client_classes():
    assert issubclass(TLSClient, TCPClient)
    assert issubclass(RobustTLSClient, RobustTCPClient)
    assert TLSClient.PROTO_NAME == RobustTLSClient.PROTO_NAME == "tcp"
    assert TLSClient.connect_attempts == RobustTLSClient.connect_attempts == 5
    assert TLSClient.connect_retry_timeout == 3
    assert RobustTLSClient.reconnect_timeout == 5


class PicklableTLSClient(TLSClient):
    async def handle_connection(self, reader, writer):
        pass  # pragma: no cover


def test_client_arguments(certs):
    with pytest.raises(TypeError):
        PicklableTLSClient("127.0.0.1", 1)  # cert and key are required
    with pytest.raises(RuntimeError, match='"address" and "port" couple'):
        PicklableTLSClient("127.0.0.1", 0, cert=certs.client_cert,
                           key=certs.client_key)
    client = PicklableTLSClient("127.0.0.1", 443, cert=certs.client_cert,
                                key=certs.client_key, ca=certs.ca, x=1)
    copy = pickle.loads(pickle.dumps(client))
    assert (copy.address, copy.port, copy.x) == ("127.0.0.1", 443, 1)


@pytest.mark.parametrize("require_client_cert", [False, True])
def test_client_delivers_payload(
    implementation, policy, certs, require_client_cert,
):
    server = LineServer(**server_keywords(
        certs, require_client_cert=require_client_cert,
    ))
    answers = []

    class Client(TLSClient):
        async def handle_connection(self, reader, writer):
            writer.write(b"from tls client\n")
            answers.append(await reader.readline())
            await close_writer(writer)

    async def body():
        client = Client("127.0.0.1", server.port, cert=certs.client_cert,
                        key=certs.client_key, ca=certs.ca)
        entry = aiomisc_c.entrypoint.get_current()
        await entry.start_services(client)
        while not answers:
            await asyncio.sleep(0.01)
        await entry.stop_services(client)

    run_services(policy, server, body=body)
    assert answers == [b"ok\n"]
    assert server.lines == [b"from tls client\n"]


def test_robust_client_reconnects(policy, certs, caplog):
    class PayloadServer(TLSServer):
        async def handle_client(self, reader, writer):
            self.lines.append(await reader.readline())
            if len(self.lines) >= 3:
                self.enough.set()
            await close_writer(writer)

    class Client(RobustTLSClient):
        reconnect_timeout = 0.05

        async def handle_connection(self, reader, writer):
            writer.write(b"payload\n")
            await writer.drain()
            try:
                data = await reader.read()
            except (OSError, ssl.SSLError):
                data = b""
            if data == b"":
                raise ConnectionError("server hung up")

    server = PayloadServer(**server_keywords(certs, require_client_cert=True),
                           lines=[])

    async def body():
        server.enough = asyncio.Event()
        client = Client("127.0.0.1", server.port, cert=certs.client_cert,
                        key=certs.client_key, ca=certs.ca)
        await aiomisc_c.entrypoint.get_current().start_services(client)
        assert client.connected.is_set()
        await server.enough.wait()

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.tcp"):
        run_services(policy, server, body=body)
    assert server.lines[:3] == [b"payload\n"] * 3


def test_stop_with_a_client_stuck_before_the_handshake(policy, certs):
    """A peer that connects and never says hello must not hold up stop()
    nor leave a transport behind."""
    server = LineServer(**server_keywords(certs))
    loop = policy.new_event_loop()

    async def outer():
        async with ep(server, policy=policy, loop=loop):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port,
            )
            await asyncio.sleep(0.1)      # accepted, handshake pending
        await asyncio.wait_for(reader.read(), 10)
        await close_writer(writer)

    try:
        loop.run_until_complete(asyncio.wait_for(outer(), 30))
    finally:
        loop.close()
    import gc
    gc.collect()
