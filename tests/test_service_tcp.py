"""``aiomisc_c.service.tcp``: TCPServer, TCPClient and RobustTCPClient over
real sockets (127.0.0.1, ::1, Unix), on asyncio's loop and uvloop."""
import asyncio
import errno
import functools
import logging
import pickle
import socket
import struct

import pytest
from helpers.net_helpers import (
    close_writer,
    needs_ipv6,
    needs_unix,
    run_services,
    unix_path,  # noqa: F401 - fixture
)
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse

import aiomisc_c
from aiomisc_c import utils
from aiomisc_c.service import (
    RobustTCPClient,
    Service,
    SimpleServer,
    TCPClient,
    TCPServer,
)
from aiomisc_c.service import tcp

SOCKET_REQUIRED = (
    'You should pass socket instance or "address" and "port" couple'
)


class LineServer(TCPServer):
    """Records the first line of every connection and answers ``ok``."""

    def __init__(self, *args, **kwargs):
        self.lines = []
        super().__init__(*args, **kwargs)

    async def handle_client(self, reader, writer):
        self.lines.append(await reader.readline())
        writer.write(b"ok\n")
        await writer.drain()
        await close_writer(writer)


class EchoServer(TCPServer):
    async def handle_client(self, reader, writer):
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        await close_writer(writer)


async def exchange(host, port, payload=b"hello server\n"):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        return await reader.readline()
    finally:
        await close_writer(writer)


# ------------------------------------------------------------- the names


def test_module_and_class_attributes():
    assert aiomisc_c.service.TCPServer is tcp.TCPServer
    assert issubclass(TCPServer, SimpleServer)
    assert issubclass(TCPClient, Service)
    assert issubclass(RobustTCPClient, TCPClient)
    assert TCPServer.PROTO_NAME == TCPClient.PROTO_NAME == "tcp"
    assert TCPClient.connect_attempts == 5
    assert TCPClient.connect_retry_timeout == 3
    assert RobustTCPClient.reconnect_timeout == 5
    with pytest.raises(TypeError):
        TCPServer(address="127.0.0.1", port=0)  # abstract handle_client


def test_server_argument_errors():
    with pytest.raises(RuntimeError) as info:
        LineServer()
    assert info.value.args == (SOCKET_REQUIRED,)
    with pytest.raises(RuntimeError):
        LineServer(address="127.0.0.1")
    with pytest.raises(RuntimeError):
        LineServer(port=0)
    with pytest.raises(ValueError, match="^sock must be socket instance$"):
        LineServer(sock="127.0.0.1:80")


def test_client_argument_errors():
    class Client(TCPClient):
        async def handle_connection(self, reader, writer):
            pass

    message = 'You should pass "address" and "port" couple'
    for args in [(), ("127.0.0.1",), ("127.0.0.1", 0), ("", 80)]:
        with pytest.raises(RuntimeError) as info:
            Client(*args)
        assert info.value.args == (message,)
    client = Client("127.0.0.1", 80, connect_attempts=1)
    assert (client.address, client.port) == ("127.0.0.1", 80)
    assert client.connect_attempts == 1


def test_make_socket_and_properties_before_start():
    server = LineServer("127.0.0.1", 0, options=[(1, 2, 3)], extra="x")
    assert isinstance(server.make_socket, functools.partial)
    assert server.make_socket.func is utils.bind_socket
    assert server.make_socket.keywords == {
        "address": "127.0.0.1", "port": 0, "options": [(1, 2, 3)],
    }
    assert server.socket is None and server.server is None
    assert server.address is None and server.port is None
    assert server.extra == "x"


# ------------------------------------------------------------- the server


def test_positional_address_and_port(policy):
    server = LineServer("127.0.0.1", 0)

    async def body():
        assert server.port > 0
        assert server.address == "127.0.0.1"
        return await exchange("127.0.0.1", server.port)

    assert run_services(policy, server, body=body) == b"ok\n"
    assert server.lines == [b"hello server\n"]
    # The bound address is still known after stop; the socket is closed.
    assert server.port > 0
    assert server.socket.fileno() == -1


def test_many_lines_and_connections(policy):
    server = EchoServer(address="127.0.0.1", port=0)

    async def client(index):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        answers = []
        for line in range(20):
            writer.write(f"{index}:{line}\n".encode())
            answers.append(await reader.readline())
        await close_writer(writer)
        return answers

    async def body():
        return await asyncio.gather(*(client(i) for i in range(10)))

    results = run_services(policy, server, body=body)
    assert results == [
        [f"{i}:{n}\n".encode() for n in range(20)] for i in range(10)
    ]


def test_given_socket(policy):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = LineServer(sock=sock)

    async def body():
        assert server.socket is sock
        assert (server.address, server.port) == ("127.0.0.1", port)
        return await exchange("127.0.0.1", port)

    assert run_services(policy, server, body=body) == b"ok\n"
    assert server.make_socket() is sock
    assert sock.fileno() == -1


@needs_ipv6
def test_ipv6(policy):
    server = LineServer(address="::1", port=0)

    async def body():
        assert server.address == "::1"
        return await exchange("::1", server.port)

    assert run_services(policy, server, body=body) == b"ok\n"
    assert server.socket.family == socket.AF_INET6


@needs_unix
def test_unix_socket(policy, unix_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(unix_path)
    server = LineServer(sock=sock)

    async def body():
        assert server.address == unix_path
        assert server.port is None
        reader, writer = await asyncio.open_unix_connection(unix_path)
        writer.write(b"over unix\n")
        answer = await reader.readline()
        await close_writer(writer)
        return answer

    assert run_services(policy, server, body=body) == b"ok\n"
    assert server.lines == [b"over unix\n"]


def test_sync_handler(policy):
    class SyncServer(TCPServer):
        def handle_client(self, reader, writer):
            writer.write(b"sync hello\n")
            writer.close()

    server = SyncServer(address="127.0.0.1", port=0)

    async def body():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        answer = await reader.readline()
        await close_writer(writer)
        return answer

    assert run_services(policy, server, body=body) == b"sync hello\n"


def test_handler_error_is_logged_and_server_keeps_serving(policy, caplog):
    class Flaky(LineServer):
        async def handle_client(self, reader, writer):
            if not self.lines:
                self.lines.append(None)
                writer.close()
                raise ZeroDivisionError("first client")
            await super().handle_client(reader, writer)

    server = Flaky(address="127.0.0.1", port=0)

    async def body():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await reader.read() == b""
        await close_writer(writer)
        return await exchange("127.0.0.1", server.port)

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.tcp"):
        assert run_services(policy, server, body=body) == b"ok\n"
    errors = [r for r in caplog.records if r.exc_info]
    assert len(errors) == 1
    assert isinstance(errors[0].exc_info[1], ZeroDivisionError)


def test_stop_cancels_handlers_and_closes_their_connections(policy):
    events = []

    class Holding(TCPServer):
        async def handle_client(self, reader, writer):
            events.append("connected")
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

    class Returning(TCPServer):
        async def handle_client(self, reader, writer):
            # Returns without closing: stop() must close the connection.
            events.append("returned")

    holding = Holding(address="127.0.0.1", port=0)
    returning = Returning(address="127.0.0.1", port=0)

    async def body():
        clients = [
            await asyncio.open_connection("127.0.0.1", server.port)
            for server in (holding, returning)
        ]
        while len(events) < 2:
            await asyncio.sleep(0.01)
        return clients

    policy_loop = policy.new_event_loop()

    async def outer():
        async with ep(holding, returning, policy=policy, loop=policy_loop):
            clients = await asyncio.wait_for(body(), 30)
        # The services stopped: both connections were closed by them.
        for reader, writer in clients:
            assert await asyncio.wait_for(reader.read(), 10) == b""
            await close_writer(writer)

    try:
        policy_loop.run_until_complete(outer())
    finally:
        policy_loop.close()
    assert sorted(events) == ["cancelled", "connected", "returned"]
    assert not holding.tasks and not returning.tasks


def test_dynamic_start_and_stop(policy):
    server = LineServer(address="127.0.0.1", port=0)

    async def body():
        entry = aiomisc_c.entrypoint.get_current()
        await entry.start_services(server)
        assert server in entry.services
        answer = await exchange("127.0.0.1", server.port)
        await entry.stop_services(server)
        assert server not in entry.services
        with pytest.raises(ConnectionRefusedError):
            await exchange("127.0.0.1", server.port)
        return answer

    assert run_services(policy, body=body) == b"ok\n"


def test_port_in_use_fails_start_and_stops_the_others(policy):
    events = []

    class Recorder(Service):
        async def start(self):
            events.append("start")

        async def stop(self, exc=None):
            events.append("stop")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LineServer(address="127.0.0.1", port=port)
        with pytest.raises(OSError) as info:
            with ep(Recorder(), server, policy=policy):
                pass  # pragma: no cover - never reached
    assert info.value.errno == errno.EADDRINUSE
    assert f"('127.0.0.1', {port})" in str(info.value)
    assert events == ["start", "stop"]


def test_pickle_round_trip(policy):
    server = LineServer("127.0.0.1", 0, marker=7)
    copy = pickle.loads(pickle.dumps(server))
    assert type(copy) is LineServer
    assert copy.marker == 7 and copy.lines == []
    assert copy.make_socket.keywords == server.make_socket.keywords

    async def body():
        return await exchange("127.0.0.1", copy.port)

    assert run_services(policy, copy, body=body) == b"ok\n"


def test_pickled_server_built_on_a_socket_fails_at_start(policy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        copy = pickle.loads(pickle.dumps(LineServer(sock=sock)))
    with pytest.raises(RuntimeError, match="not pickled"):
        with ep(copy, policy=policy):
            pass  # pragma: no cover - never reached


# ------------------------------------------------------------- the clients


def test_client_delivers_payload(policy):
    server = LineServer(address="127.0.0.1", port=0)
    answers = []

    class Client(TCPClient):
        async def handle_connection(self, reader, writer):
            writer.write(b"from client\n")
            answers.append(await reader.readline())
            await close_writer(writer)

    async def body():
        client = Client("127.0.0.1", server.port)
        entry = aiomisc_c.entrypoint.get_current()
        await entry.start_services(client)
        while not answers:
            await asyncio.sleep(0.01)
        await entry.stop_services(client)

    run_services(policy, server, body=body)
    assert server.lines == [b"from client\n"]
    assert answers == [b"ok\n"]


def test_client_start_fails_without_server(policy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Client(TCPClient):
        connect_attempts = 2
        connect_retry_timeout = 0.01

        async def handle_connection(self, reader, writer):
            raise AssertionError("never connected")  # pragma: no cover

    with pytest.raises(ConnectionRefusedError):
        with ep(Client("127.0.0.1", port), policy=policy):
            pass  # pragma: no cover - never reached


def test_client_handler_error_is_logged(policy, caplog):
    server = LineServer(address="127.0.0.1", port=0)
    done = []

    class Client(TCPClient):
        async def handle_connection(self, reader, writer):
            writer.write(b"then fail\n")
            await reader.readline()
            done.append(True)
            raise KeyError("handler")

    async def body():
        await aiomisc_c.entrypoint.get_current().start_services(
            Client("127.0.0.1", server.port),
        )
        while not done:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.tcp"):
        run_services(policy, server, body=body)
    assert any(
        r.getMessage() == "Error when handle TCP connection"
        and isinstance(r.exc_info[1], KeyError) for r in caplog.records
    )


def test_client_connection_left_open_is_closed_on_stop(policy):
    server = EchoServer(address="127.0.0.1", port=0)

    class Client(TCPClient):
        async def handle_connection(self, reader, writer):
            self.kept = (reader, writer)  # used after the hook returns

    async def body():
        client = Client("127.0.0.1", server.port)
        await aiomisc_c.entrypoint.get_current().start_services(client)
        reader, writer = client.kept
        writer.write(b"still open\n")
        assert await reader.readline() == b"still open\n"
        return client

    client = run_services(policy, server, body=body)
    assert client.kept[1].transport.is_closing()


class PicklableClient(RobustTCPClient):
    async def handle_connection(self, reader, writer):
        pass  # pragma: no cover


def test_client_pickle_round_trip():
    copy = pickle.loads(pickle.dumps(PicklableClient("127.0.0.1", 1234, x=1)))
    assert (copy.address, copy.port, copy.x) == ("127.0.0.1", 1234, 1)
    assert copy.tasks == set()


class PayloadServer(TCPServer):
    """Reads one line per connection, then hangs up."""

    def __init__(self, *args, **kwargs):
        self.lines = []
        self.enough = asyncio.Event()
        super().__init__(*args, **kwargs)

    async def handle_client(self, reader, writer):
        self.lines.append(await reader.readline())
        if len(self.lines) >= 3:
            self.enough.set()
        await close_writer(writer)


class ReconnectingClient(RobustTCPClient):
    """Sends a payload; fails when the server hangs up."""

    reconnect_timeout = 0.05
    connect_retry_timeout = 0.05

    async def handle_connection(self, reader, writer):
        writer.write(b"payload\n")
        await writer.drain()
        if await reader.read() == b"":
            raise ConnectionError("server hung up")


def test_robust_client_reconnects(policy, caplog):
    server = PayloadServer(address="127.0.0.1", port=0)

    async def body():
        server.enough = asyncio.Event()
        client = ReconnectingClient("127.0.0.1", server.port)
        await aiomisc_c.entrypoint.get_current().start_services(client)
        await server.enough.wait()
        return client

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.tcp"):
        run_services(policy, server, body=body)
    assert server.lines[:3] == [b"payload\n"] * 3
    assert any("reconnecting after 0.050 seconds" in r.getMessage()
               for r in caplog.records)


def test_robust_client_survives_server_restart(policy):
    first = PayloadServer(address="127.0.0.1", port=0)

    class Client(RobustTCPClient):
        reconnect_timeout = 0.05
        connect_retry_timeout = 0.05
        connect_attempts = 200

        async def handle_connection(self, reader, writer):
            self.sessions += 1
            writer.write(b"hello\n")
            await writer.drain()
            await reader.read()
            raise ConnectionError("server went away")

    async def body():
        first.enough = asyncio.Event()
        entry = aiomisc_c.entrypoint.get_current()
        client = Client("127.0.0.1", first.port, sessions=0)
        await entry.start_services(client)
        assert client.connected.is_set()
        while not first.lines:
            await asyncio.sleep(0.01)
        await entry.stop_services(first)
        # Refused a few times meanwhile; "connected" stays set while the
        # client keeps trying (as in aiomisc 17).
        await asyncio.sleep(0.2)
        assert client.connected.is_set() and client.sessions == 1

        second = PayloadServer(address="127.0.0.1", port=first.port)
        second.enough = asyncio.Event()
        await entry.start_services(second)
        while not second.lines:
            await asyncio.sleep(0.01)
        assert client.connected.is_set()
        await entry.stop_services(client, second)
        return second

    second = run_services(policy, first, body=body)
    assert first.lines[0] == b"hello\n"
    assert second.lines[0] == b"hello\n"


def test_robust_client_stops_after_normal_return(policy):
    server = LineServer(address="127.0.0.1", port=0)

    class Client(RobustTCPClient):
        async def handle_connection(self, reader, writer):
            writer.write(b"once\n")
            await reader.readline()
            await close_writer(writer)

    async def body():
        client = Client("127.0.0.1", server.port)
        entry = aiomisc_c.entrypoint.get_current()
        await entry.start_services(client)
        while client.tasks:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return client

    client = run_services(policy, server, body=body)
    assert server.lines == [b"once\n"]
    assert not client.connected.is_set()


def test_robust_client_gives_up_when_never_connected(policy, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Client(RobustTCPClient):
        connect_attempts = 2
        connect_retry_timeout = 0.01

        async def handle_connection(self, reader, writer):
            raise AssertionError("never connected")  # pragma: no cover

    client = Client("127.0.0.1", port)

    async def body():
        return client.connected.is_set()

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.tcp"):
        # start() returned after logging: the entrypoint starts anyway.
        assert run_services(policy, client, body=body) is False
    assert any(isinstance(r.exc_info[1], ConnectionRefusedError)
               for r in caplog.records if r.exc_info)


def test_robust_client_stop_while_reconnecting(policy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = PayloadServer(address="127.0.0.1", port=port)

    class Client(RobustTCPClient):
        reconnect_timeout = 3600
        connect_retry_timeout = 3600

        async def handle_connection(self, reader, writer):
            await reader.read()
            raise ConnectionError("gone")

    async def body():
        entry = aiomisc_c.entrypoint.get_current()
        client = Client("127.0.0.1", port)
        await entry.start_services(client)
        await entry.stop_services(server)
        while client.tasks:
            await asyncio.sleep(0.01)
        # Now sleeping for an hour before reconnecting: stop must not wait.
        await asyncio.wait_for(entry.stop_services(client), 10)

    run_services(policy, server, body=body)


def test_peer_reset_while_handler_writes(policy, caplog):
    """A client that vanishes (RST) mid-stream: the handler's error is
    logged by the service, the loop reports nothing, the server serves on."""
    class Flood(LineServer):
        async def handle_client(self, reader, writer):
            line = await reader.readline()
            if line == b"flood\n":
                self.flooding.set()
                while True:
                    writer.write(b"x" * 65536)
                    await writer.drain()
            self.lines.append(line)
            writer.write(b"ok\n")
            await close_writer(writer)

    server = Flood(address="127.0.0.1", port=0)

    async def body():
        server.flooding = asyncio.Event()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"flood\n")
        await server.flooding.wait()
        # SO_LINGER 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        sock.close()
        while server.tasks:
            await asyncio.sleep(0.01)
        return await exchange("127.0.0.1", server.port)

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.tcp"):
        assert run_services(policy, server, body=body) == b"ok\n"
    assert any(isinstance(r.exc_info[1], ConnectionError)
               for r in caplog.records if r.exc_info)


def test_stop_with_many_open_connections(policy):
    class Idle(TCPServer):
        async def handle_client(self, reader, writer):
            await reader.read()

    server = Idle(address="127.0.0.1", port=0)
    loop = policy.new_event_loop()

    async def outer():
        async with ep(server, policy=policy, loop=loop):
            clients = await asyncio.gather(*(
                asyncio.open_connection("127.0.0.1", server.port)
                for _ in range(50)
            ))
            while len(server.tasks) < 50:
                await asyncio.sleep(0.01)
        assert not server.tasks
        for reader, writer in clients:
            assert await asyncio.wait_for(reader.read(), 10) == b""
            await close_writer(writer)

    try:
        loop.run_until_complete(asyncio.wait_for(outer(), 60))
    finally:
        loop.close()
