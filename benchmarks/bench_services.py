"""Socket services: a line's round trip through a ``TCPServer`` echo service
on one connection, a datagram's round trip through a ``UDPServer`` echo
service, and connections accepted by a ``TCPServer``.

* The services are started on the benchmark's loop as an entrypoint would
  (``set_loop`` then ``start()``) and stopped in ``close``; the handlers are
  the same code for every subject.
* TCP round trip: one client connection (asyncio streams); an iteration
  writes a 32-byte line and reads the echoed line.
* UDP round trip: a connected, non-blocking datagram socket driven with
  ``loop.sock_sendall``/``loop.sock_recv``; an iteration sends 32 bytes and
  reads the echo.
* Accept: an iteration opens a connection, reads the server's one-line
  greeting (so the handler task ran) and closes the client side.
* The peer: the same handlers on ``asyncio.start_server`` /
  ``loop.create_datagram_endpoint`` directly, without a service (the floor
  of what a service adds).

Run alone: ``python -m benchmarks --only services``.
"""
import asyncio
import socket
from typing import Any, Callable, Dict, List, Tuple

from ._harness import (
    AIOMISC, AIOMISC_C, Case, Fixture, Subject, aiomisc_c_facts,
    describe_loop, import_peer, install_loop,
)

TITLE = "Socket services"

STDLIB = Subject(
    "stdlib", "stdlib asyncio servers (peer, no service)", "asyncio",
    note="the same handlers on asyncio.start_server and "
         "loop.create_datagram_endpoint, without a service",
)
SUBJECTS = (AIOMISC_C, AIOMISC, STDLIB)
BASELINE = AIOMISC.name
REFERENCES = (STDLIB.name,)
LOOPS = ("asyncio", "uvloop")

LINE = b"x" * 31 + b"\n"
GREETING = b"hi\n"

CASES = (
    Case("tcp_echo", "TCPServer echo: write a line, read it back "
         "(one connection)", iterations=2000, short="TCP echo round trip"),
    Case("udp_echo", "UDPServer echo: send a datagram, receive it back",
         iterations=2000, short="UDP echo round trip"),
    Case("tcp_accept", "TCPServer: connect, read a greeting, close",
         iterations=300, short="TCP connection accepted"),
)


# --- handlers shared by every subject --------------------------------------

async def echo_lines(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
    finally:
        writer.close()


async def greet(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
) -> None:
    writer.write(GREETING)
    writer.close()


def make_udp_echo(send: Callable[[bytes, Any], Any]) -> Any:
    async def echo(data: bytes, addr: Any) -> None:
        send(data, addr)
    return echo


# --- the timed bodies --------------------------------------------------------

def tcp_echo_body(port: int) -> Callable[[int], Any]:
    streams: List[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def body(iterations: int) -> None:
        if not streams:
            streams.append(await asyncio.open_connection("127.0.0.1", port))
        reader, writer = streams[0]
        write, readline = writer.write, reader.readline
        for _ in range(iterations):
            write(LINE)
            await readline()

    async def close() -> None:
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()

    body.close = close  # type: ignore[attr-defined]
    return body


def udp_echo_body(port: int) -> Callable[[int], Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))

    async def body(iterations: int) -> None:
        loop = asyncio.get_running_loop()
        send, recv = loop.sock_sendall, loop.sock_recv
        for _ in range(iterations):
            await send(sock, LINE)
            await recv(sock, 1024)

    async def close() -> None:
        sock.close()

    body.close = close  # type: ignore[attr-defined]
    return body


def tcp_accept_body(port: int) -> Callable[[int], Any]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            writer.close()
            await writer.wait_closed()

    async def close() -> None:
        return None

    body.close = close  # type: ignore[attr-defined]
    return body


# --- per-subject wiring -------------------------------------------------------

def service_classes(service_module: Any) -> Dict[str, Any]:
    TCPServer = service_module.TCPServer
    UDPServer = service_module.UDPServer

    class EchoServer(TCPServer):
        async def handle_client(self, reader: Any, writer: Any) -> None:
            await echo_lines(reader, writer)

    class Greeter(TCPServer):
        async def handle_client(self, reader: Any, writer: Any) -> None:
            await greet(reader, writer)

    class UDPEcho(UDPServer):
        async def handle_datagram(self, data: bytes, addr: Any) -> None:
            self.sendto(data, addr)

    return {"tcp_echo": EchoServer, "tcp_accept": Greeter, "udp_echo": UDPEcho}


def start_services(
    loop: asyncio.AbstractEventLoop, classes: Dict[str, Any],
) -> Tuple[Dict[str, int], Callable[[], Any]]:
    services = {
        name: cls(address="127.0.0.1", port=0) for name, cls in classes.items()
    }
    for service in services.values():
        service.set_loop(loop)
        loop.run_until_complete(service.start())

    async def stop() -> None:
        for service in services.values():
            await service.stop(None)

    return {name: s.port for name, s in services.items()}, stop


def start_plain(
    loop: asyncio.AbstractEventLoop,
) -> Tuple[Dict[str, int], Callable[[], Any]]:
    tcp_echo = loop.run_until_complete(
        asyncio.start_server(echo_lines, "127.0.0.1", 0))
    tcp_accept = loop.run_until_complete(
        asyncio.start_server(greet, "127.0.0.1", 0))

    class Protocol(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.handle = make_udp_echo(transport.sendto)

        def datagram_received(self, data: bytes, addr: Any) -> None:
            loop.create_task(self.handle(data, addr))

    transport, _ = loop.run_until_complete(loop.create_datagram_endpoint(
        Protocol, local_addr=("127.0.0.1", 0)))

    async def stop() -> None:
        transport.close()
        for server in (tcp_echo, tcp_accept):
            server.close()
            await server.wait_closed()

    return {
        "tcp_echo": tcp_echo.sockets[0].getsockname()[1],
        "tcp_accept": tcp_accept.sockets[0].getsockname()[1],
        "udp_echo": transport.get_extra_info("sockname")[1],
    }, stop


def setup(subject: str, loop_kind: str) -> Fixture:
    facts: Dict[str, Any] = {"loop_kind": loop_kind}
    loop = install_loop(loop_kind)

    if subject == AIOMISC_C.name:
        from aiomisc_c import service

        facts.update(aiomisc_c_facts("loop"))
        ports, stop = start_services(loop, service_classes(service))
    elif subject == AIOMISC.name:
        service, facts["version"] = import_peer("aiomisc.service")
        ports, stop = start_services(loop, service_classes(service))
    elif subject == STDLIB.name:
        ports, stop = start_plain(loop)
    else:
        raise ValueError(f"unknown subject {subject!r}")
    facts["loop_class"] = describe_loop(loop)

    bodies = {
        "tcp_echo": tcp_echo_body(ports["tcp_echo"]),
        "udp_echo": udp_echo_body(ports["udp_echo"]),
        "tcp_accept": tcp_accept_body(ports["tcp_accept"]),
    }

    def close() -> None:
        for body in bodies.values():
            loop.run_until_complete(body.close())  # type: ignore[attr-defined]
        loop.run_until_complete(stop())
        loop.close()

    return Fixture(loop=loop, bodies=bodies, close=close, facts=facts)


if __name__ == "__main__":
    from .run import main
    main(["--only", "services"])
