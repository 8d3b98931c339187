"""``aiomisc_c.service.carbon.CarbonSender``: metrics reach a real carbon
listener over TCP, UDP and the pickle protocol."""
import asyncio
import pickle
import struct
import sys

import pytest

if sys.version_info < (3, 11):
    pytest.skip(
        "aiocarbon>=0.17 needs Python 3.11+ (older releases do not run on "
        "3.10)", allow_module_level=True,
    )

from aiocarbon import Counter, Meter  # noqa: E402
from aiocarbon.protocol.buffer import BufferClient  # noqa: E402
from aiocarbon.setup import set_client  # noqa: E402
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: E402,F401 - autouse
from helpers.waiting import wait_until  # noqa: E402

from aiomisc_c.service.carbon import (  # noqa: E402
    PROTOCOLS,
    CarbonSender,
    strip_carbon_ns,
)


@pytest.fixture(autouse=True)
def reset_carbon_client():
    yield
    set_client(BufferClient())


def test_strip_carbon_ns():
    assert strip_carbon_ns("My App") == "my_app"
    assert strip_carbon_ns("__a..b!!c__") == "a_b_c"
    assert strip_carbon_ns("host-1.example") == "host-1_example"
    assert strip_carbon_ns("") == ""
    assert set(PROTOCOLS) == {"udp", "tcp", "pickle"}


def test_defaults():
    sender = CarbonSender()
    assert (sender.host, sender.port, sender.send_interval, sender.protocol) == (
        "127.0.0.1", 2003, 5, "udp",
    )
    assert sender.name == "carbon-sender" and tuple(sender.namespace) == ("",)


def test_plaintext_over_tcp(plain_loop, policy):
    lines = []

    async def handle(reader, writer):
        lines.extend((await reader.read()).decode().splitlines())
        writer.close()

    async def body():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = CarbonSender(
            host="127.0.0.1", port=port, protocol="tcp", send_interval=0.1,
            namespace=("My App", "test!!"),
        )
        try:
            async with ep(sender, policy=policy):
                for _ in range(3):
                    with Counter("requests"):
                        pass
                await wait_until(lambda: lines, message="metrics")
        finally:
            server.close()
            await server.wait_closed()

    plain_loop.run_until_complete(body())
    name, value, timestamp = lines[0].split(" ")
    assert name == "my_app.test.requests.ok"
    assert value == "3"
    assert int(timestamp) > 1_600_000_000


def test_udp(plain_loop, policy):
    received = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            received.append(data.decode())

    async def body():
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            Receiver, local_addr=("127.0.0.1", 0),
        )
        port = transport.get_extra_info("sockname")[1]
        sender = CarbonSender(
            port=port, send_interval=0.1, namespace=("udp",),
        )
        try:
            async with ep(sender, policy=policy):
                Meter("gauge", 42).send()
                await wait_until(lambda: received, message="a datagram")
        finally:
            transport.close()

    plain_loop.run_until_complete(body())
    assert received[0].startswith("udp.gauge 42 ")


def test_pickle(plain_loop, policy):
    batches = []

    async def handle(reader, writer):
        (size,) = struct.unpack("!L", await reader.readexactly(4))
        batches.append(pickle.loads(await reader.readexactly(size)))
        writer.close()

    async def body():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = CarbonSender(
            port=port, protocol="pickle", send_interval=0.1, namespace=("p",),
        )
        try:
            async with ep(sender, policy=policy):
                Meter("value", 7).send()
                await wait_until(lambda: batches, message="a pickled batch")
        finally:
            server.close()
            await server.wait_closed()

    plain_loop.run_until_complete(body())
    ((name, (timestamp, value)),) = batches[0]
    assert (name, value) == ("p.value", 7)


def test_unreachable_carbon_does_not_stop_the_sender(plain_loop, policy, caplog):
    async def body():
        # A port nobody listens on: every send fails and is logged.
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        sender = CarbonSender(port=port, protocol="tcp", send_interval=0.05)
        async with ep(sender, policy=policy):
            Meter("x", 1).send()
            await wait_until(
                lambda: len(failures()) >= 2, message="two failed sends",
            )
            assert sender._handle._task is not None     # still scheduled

    def failures():
        return [r for r in caplog.records if r.exc_info and issubclass(
            r.exc_info[0], OSError,
        )]

    plain_loop.run_until_complete(body())
