"""``aiomisc_c.service.udp``: UDPServer over real datagram sockets
(127.0.0.1, ::1, Unix), on asyncio's loop and uvloop."""
import asyncio
import functools
import logging
import pickle
import socket
import typing

import pytest
from helpers.net_helpers import (
    needs_ipv6,
    needs_unix,
    run_services,
    unix_path,  # noqa: F401 - fixture
)
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse

import aiomisc_c
from aiomisc_c import utils
from aiomisc_c.service import SimpleServer, UDPServer
from aiomisc_c.service import udp

SOCKET_REQUIRED = (
    'You should pass socket instance or "address" and "port" couple'
)


class EchoServer(UDPServer):
    async def handle_datagram(self, data, addr):
        self.sendto(data.upper(), addr)


async def ask(family, address, payload):
    """Send ``payload`` from a fresh datagram socket; return the answer."""
    loop = asyncio.get_running_loop()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, payload)
        return await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)


def test_names():
    assert aiomisc_c.service.UDPServer is udp.UDPServer
    assert issubclass(UDPServer, SimpleServer)
    assert issubclass(UDPServer.UDPSimpleProtocol, asyncio.DatagramProtocol)
    assert udp.TransportType == typing.Optional[asyncio.DatagramTransport]
    assert typing.get_origin(udp.HandleDatagramType) is not None
    with pytest.raises(TypeError):
        UDPServer(address="127.0.0.1", port=0)  # abstract handle_datagram


def test_argument_errors():
    with pytest.raises(RuntimeError) as info:
        EchoServer()
    assert info.value.args == (SOCKET_REQUIRED,)
    with pytest.raises(RuntimeError):
        EchoServer(address="127.0.0.1")
    with pytest.raises(ValueError, match="^sock must be socket instance$"):
        EchoServer(sock=object())


def test_before_start():
    server = EchoServer("127.0.0.1", 0)
    assert isinstance(server.make_socket, functools.partial)
    assert server.make_socket.func is utils.bind_socket
    assert server.make_socket.args == (socket.AF_INET, socket.SOCK_DGRAM)
    assert server.make_socket.keywords["proto_name"] == "udp"
    assert server.address is None and server.port is None
    with pytest.raises(RuntimeError) as info:
        server.sendto(b"x", ("127.0.0.1", 9))
    assert info.value.args == ()


def test_echo(policy):
    server = EchoServer(address="127.0.0.1", port=0)

    async def body():
        assert server.address == "127.0.0.1" and server.port > 0
        return await asyncio.gather(*(
            ask(socket.AF_INET, ("127.0.0.1", server.port), b"hi %d" % i)
            for i in range(20)
        ))

    assert run_services(policy, server, body=body) == [
        b"HI %d" % i for i in range(20)
    ]
    assert server.socket.type == socket.SOCK_DGRAM
    assert server.port > 0


@needs_ipv6
def test_ipv6(policy):
    server = EchoServer(address="::1", port=0)

    async def body():
        assert server.address == "::1"
        return await ask(socket.AF_INET6, ("::1", server.port), b"six")

    assert run_services(policy, server, body=body) == b"SIX"
    assert server.make_socket.args[0] == socket.AF_INET6


def test_given_inet_socket(policy):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = EchoServer(sock=sock)

    async def body():
        assert server.port == port
        return await ask(socket.AF_INET, ("127.0.0.1", port), b"given")

    assert run_services(policy, server, body=body) == b"GIVEN"
    assert server.socket is sock


@needs_unix
def test_given_unix_socket(policy, unix_path):
    received = []

    class Recorder(UDPServer):
        async def handle_datagram(self, data, addr):
            received.append(data)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(unix_path)
    server = Recorder(sock=sock)

    async def body():
        assert server.address == unix_path and server.port is None
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"over unix", unix_path)
        while not received:
            await asyncio.sleep(0.01)

    run_services(policy, server, body=body)
    assert received == [b"over unix"]


def test_sync_handler(policy):
    class SyncEcho(UDPServer):
        def handle_datagram(self, data, addr):
            self.sendto(data[::-1], addr)

    server = SyncEcho(address="127.0.0.1", port=0)

    async def body():
        return await ask(socket.AF_INET, ("127.0.0.1", server.port), b"abc")

    assert run_services(policy, server, body=body) == b"cba"


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_failing_handler_is_logged(policy, caplog, kind):
    class Flaky(UDPServer):
        async def handle_datagram(self, data, addr):
            if data == b"boom":
                raise ValueError("boom")
            self.sendto(data, addr)

    class SyncFlaky(UDPServer):
        def handle_datagram(self, data, addr):
            if data == b"boom":
                raise ValueError("boom")
            self.sendto(data, addr)

    server = (Flaky if kind == "async" else SyncFlaky)(
        address="127.0.0.1", port=0,
    )

    async def body():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"boom", ("127.0.0.1", server.port))
        return await ask(socket.AF_INET, ("127.0.0.1", server.port), b"fine")

    with caplog.at_level(logging.ERROR, logger="aiomisc_c.service.udp"):
        assert run_services(policy, server, body=body) == b"fine"
    errors = [r for r in caplog.records if r.exc_info]
    assert [type(r.exc_info[1]) for r in errors] == [ValueError]


def test_stop_cancels_handlers_and_closes_the_socket(policy):
    events = []

    class Slow(UDPServer):
        async def handle_datagram(self, data, addr):
            events.append("received")
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

    server = Slow(address="127.0.0.1", port=0)

    async def body():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(3):
                sock.sendto(b"x", ("127.0.0.1", server.port))
        while len(events) < 3:
            await asyncio.sleep(0.01)
        await aiomisc_c.entrypoint.get_current().stop_services(server)
        assert not server.tasks
        with pytest.raises(RuntimeError):
            server.sendto(b"x", ("127.0.0.1", 9))

    run_services(policy, server, body=body)
    assert events.count("cancelled") == 3
    assert server.socket.fileno() == -1


def test_dynamic_start(policy):
    async def body():
        server = EchoServer(address="127.0.0.1", port=0)
        entry = aiomisc_c.entrypoint.get_current()
        await entry.start_services(server)
        answer = await ask(socket.AF_INET, ("127.0.0.1", server.port), b"dyn")
        await entry.stop_services(server)
        return answer

    assert run_services(policy, body=body) == b"DYN"


def test_port_in_use_fails_start(policy):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            with ep(EchoServer(address="127.0.0.1", port=port), policy=policy):
                pass  # pragma: no cover - never reached
    assert f"('127.0.0.1', {port})" in str(info.value)


def test_pickle_round_trip(policy):
    copy = pickle.loads(pickle.dumps(EchoServer("127.0.0.1", 0, tag="t")))
    assert copy.tag == "t"

    async def body():
        return await ask(socket.AF_INET, ("127.0.0.1", copy.port), b"copy")

    assert run_services(policy, copy, body=body) == b"COPY"
