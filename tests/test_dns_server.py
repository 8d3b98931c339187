"""``aiomisc_c.service.dns``: UDP and TCP DNS servers answering real
queries over 127.0.0.1, built and parsed with dnslib, on both loops."""
import asyncio
import logging
import random
import socket
import struct
import threading

import dnslib
import pytest
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from test_dns_store import EVERY_RECORD

from aiomisc_c.service.dns import (
    DNSServer,
    DNSStore,
    DNSZone,
    TCPDNSServer,
    UDPDNSServer,
    records,
)
from aiomisc_c.service.dns import service as dns_service
from aiomisc_c.service.dns.records import RecordType, rdata_wire

TIMEOUT = 10


class UDPClient:
    """An async UDP DNS client on its own socket."""

    def __init__(self, port):
        self.address = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Connected: uvloop has no sock_sendto.
        self.sock.connect(self.address)
        self.sock.setblocking(False)

    def send(self, packet):
        try:
            self.sock.send(packet)
        except BlockingIOError:
            pass        # a full send buffer drops it, as the network may

    async def ask(self, packet):
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, packet)
        return await asyncio.wait_for(loop.sock_recv(self.sock, 65536), TIMEOUT)

    def close(self):
        self.sock.close()


async def ask_udp(port, packet):
    client = UDPClient(port)
    try:
        return await client.ask(packet)
    finally:
        client.close()


async def ask_tcp(port, *packets):
    """Send every packet on one connection; the list of replies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        replies = []
        for packet in packets:
            writer.write(struct.pack("!H", len(packet)) + packet)
            await writer.drain()
            (length,) = struct.unpack("!H", await asyncio.wait_for(
                reader.readexactly(2), TIMEOUT,
            ))
            replies.append(await reader.readexactly(length))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


def query(name, qtype="A", edns=None):
    question = dnslib.DNSRecord.question(name, qtype)
    if edns is not None:
        question.add_ar(dnslib.EDNS0(udp_len=edns))
    return question


def make_store():
    store = DNSStore()
    zone = DNSZone("example.com.")
    for record in EVERY_RECORD.values():
        zone.add_record(record)
    zone.add_record(records.A.create("www.example.com.", "192.0.2.1"))
    zone.add_record(records.AAAA.create("www.example.com.", "2001:db8::80"))
    zone.add_record(records.CNAME.create("alias.example.com.", "www.example.com."))
    for index in range(100):
        zone.add_record(records.A.create("many.example.com.", f"10.1.0.{index}"))
    store.add_zone(zone)
    return store


@pytest.fixture
def store():
    return make_store()


@pytest.fixture
def servers(store, policy):
    """A running UDP and TCP server on the same store: (loop, udp, tcp)."""
    udp = UDPDNSServer(address="127.0.0.1", port=0, store=store)
    tcp = TCPDNSServer(address="127.0.0.1", port=0, store=store)
    with ep(udp, tcp, policy=policy) as loop:
        yield loop, udp, tcp


def answers(reply):
    return [(str(rr.rname), rr.rtype, rdata_wire(rr.rdata)) for rr in reply.rr]


# ----------------------------------------------------------------- basics


def test_names_and_requirements():
    assert dns_service.TCP_HEADER_STRUCT.format == "!H"
    assert UDPDNSServer.MAX_SIZE == 512
    assert UDPDNSServer.__proto__ == "UDP" and TCPDNSServer.__proto__ == "TCP"
    assert UDPDNSServer.__required__ == frozenset({"store"})
    assert TCPDNSServer.__required__ == frozenset({"store"})
    assert issubclass(UDPDNSServer, DNSServer)
    with pytest.raises(AttributeError):
        UDPDNSServer(address="127.0.0.1", port=0)
    with pytest.raises(AttributeError):
        TCPDNSServer(address="127.0.0.1", port=0)


@pytest.mark.parametrize("type_name", sorted(EVERY_RECORD))
def test_every_record_type_over_udp_and_tcp(servers, type_name):
    loop, udp, tcp = servers
    record = EVERY_RECORD[type_name]
    packet = query(record.name, type_name).pack()

    async def go():
        return await ask_udp(udp.port, packet), (await ask_tcp(tcp.port, packet))[0]

    for raw in loop.run_until_complete(go()):
        reply = dnslib.DNSRecord.parse(raw)
        assert reply.header.rcode == dnslib.RCODE.NOERROR
        assert reply.header.qr == 1 and reply.header.aa == 1
        assert reply.header.id == dnslib.DNSRecord.parse(packet).header.id
        assert str(reply.q.qname) == record.name
        assert answers(reply) == [
            (record.name, RecordType[type_name], rdata_wire(record.data)),
        ]
        assert reply.rr[0].ttl == 3600


def test_a_aaaa_cname(servers):
    loop, udp, _ = servers

    async def go():
        return [
            dnslib.DNSRecord.parse(await ask_udp(udp.port, query(*q).pack()))
            for q in (
                ("www.example.com", "A"),
                ("www.example.com", "AAAA"),
                ("alias.example.com", "CNAME"),
            )
        ]

    a, aaaa, cname = loop.run_until_complete(go())
    assert [str(rr.rdata) for rr in a.rr] == ["192.0.2.1"]
    assert [str(rr.rdata) for rr in aaaa.rr] == ["2001:db8::80"]
    assert [str(rr.rdata) for rr in cname.rr] == ["www.example.com."]


def test_nxdomain(servers):
    loop, udp, tcp = servers

    async def go():
        return [
            await ask_udp(udp.port, query("nothing.example.com").pack()),
            await ask_udp(udp.port, query("www.example.org").pack()),
            await ask_udp(udp.port, query("www.example.com", "TXT").pack()),
            (await ask_tcp(tcp.port, query("nothing.example.com").pack()))[0],
        ]

    for raw in loop.run_until_complete(go()):
        reply = dnslib.DNSRecord.parse(raw)
        assert reply.header.rcode == dnslib.RCODE.NXDOMAIN
        assert reply.rr == []


def test_record_removed_at_runtime(servers, store):
    loop, udp, _ = servers
    packet = query("www.example.com").pack()
    first = dnslib.DNSRecord.parse(loop.run_until_complete(ask_udp(udp.port, packet)))
    assert len(first.rr) == 1
    store.get_zone("example.com").remove_record(
        records.A.create("www.example.com.", "192.0.2.1"),
    )
    second = dnslib.DNSRecord.parse(loop.run_until_complete(ask_udp(udp.port, packet)))
    assert second.header.rcode == dnslib.RCODE.NXDOMAIN


# ------------------------------------------------------- EDNS0, truncation


@pytest.mark.parametrize("size", [512, 1232, 4096])
def test_edns0_size_is_echoed(servers, size):
    loop, udp, tcp = servers
    packet = query("www.example.com", edns=size).pack()

    async def go():
        return await ask_udp(udp.port, packet), (await ask_tcp(tcp.port, packet))[0]

    for raw in loop.run_until_complete(go()):
        reply = dnslib.DNSRecord.parse(raw)
        (opt,) = reply.ar
        assert opt.rtype == dnslib.QTYPE.OPT
        assert opt.edns_len == size
        assert len(reply.rr) == 1


def test_no_edns0_no_opt(servers):
    loop, udp, _ = servers
    reply = dnslib.DNSRecord.parse(
        loop.run_until_complete(ask_udp(udp.port, query("www.example.com").pack())),
    )
    assert reply.ar == []


def test_truncation_over_udp_all_over_tcp(servers):
    loop, udp, tcp = servers
    packet = query("many.example.com").pack()

    async def go():
        return await ask_udp(udp.port, packet), (await ask_tcp(tcp.port, packet))[0]

    over_udp, over_tcp = loop.run_until_complete(go())
    # Without EDNS0 the reply keeps every record but says it is truncated.
    udp_reply = dnslib.DNSRecord.parse(over_udp)
    assert udp_reply.header.tc == 1
    tcp_reply = dnslib.DNSRecord.parse(over_tcp)
    assert len(tcp_reply.rr) == 100
    assert {str(rr.rdata) for rr in tcp_reply.rr} == {
        f"10.1.0.{i}" for i in range(100)
    }


@pytest.mark.parametrize("size", [600, 1000])
def test_udp_reply_is_cut_to_the_edns0_size(servers, size):
    loop, udp, tcp = servers
    packet = query("many.example.com", edns=size).pack()

    async def go():
        return await ask_udp(udp.port, packet), (await ask_tcp(tcp.port, packet))[0]

    over_udp, over_tcp = loop.run_until_complete(go())
    assert len(over_udp) == size
    assert over_udp[4:] == over_tcp[4:size]     # the same bytes, cut
    header = dnslib.DNSHeader.parse(dnslib.DNSBuffer(over_udp))
    assert header.tc == 1 and header.id == dnslib.DNSRecord.parse(packet).header.id
    assert len(over_tcp) > size


# -------------------------------------------------------------- SERVFAIL


def test_unknown_query_type_is_servfail(servers, caplog):
    loop, udp, tcp = servers
    question = dnslib.DNSRecord(q=dnslib.DNSQuestion("www.example.com", 999))
    packet = question.pack()

    async def go():
        return await ask_udp(udp.port, packet), (await ask_tcp(tcp.port, packet))[0]

    with caplog.at_level(logging.ERROR, logger=dns_service.__name__):
        for raw in loop.run_until_complete(go()):
            reply = dnslib.DNSRecord.parse(raw)
            assert reply.header.rcode == dnslib.RCODE.SERVFAIL
            assert reply.header.id == question.header.id
    assert any(
        m.startswith("Failed to process UDP request") for m in caplog.messages
    )


def test_malformed_query_is_servfail(servers, caplog):
    loop, udp, tcp = servers
    good = query("www.example.com").pack()
    # The header promises a question that is cut in the middle.
    malformed = good[:20]

    async def go():
        return (
            await ask_udp(udp.port, malformed),
            (await ask_tcp(tcp.port, malformed, good)),
        )

    with caplog.at_level(logging.WARNING, logger=dns_service.__name__):
        over_udp, (over_tcp, then_good) = loop.run_until_complete(go())
    for raw in (over_udp, over_tcp):
        header = dnslib.DNSRecord.parse(raw).header
        assert header.rcode == dnslib.RCODE.SERVFAIL
        assert header.id == struct.unpack("!H", good[:2])[0]
        assert header.qr == 1
    # The same TCP connection goes on serving.
    assert len(dnslib.DNSRecord.parse(then_good).rr) == 1
    assert any("Malformed UDP request" in m for m in caplog.messages)
    assert any("Malformed TCP request" in m for m in caplog.messages)


def test_short_packet_and_malformed_response_are_dropped(servers, caplog):
    loop, udp, _ = servers
    good = query("www.example.com").pack()
    response_flag = bytearray(good[:20])
    response_flag[2] |= 0x80

    async def go():
        client = UDPClient(udp.port)
        try:
            client.send(b"\x12\x34")
            client.send(bytes(response_flag))
            # Only the good query is answered.
            reply = await client.ask(good)
            return reply
        finally:
            client.close()

    with caplog.at_level(logging.WARNING, logger=dns_service.__name__):
        reply = loop.run_until_complete(go())
    assert reply[:2] == good[:2]
    assert any("too short for a DNS header" in m for m in caplog.messages)
    assert any("Dropped malformed UDP response" in m for m in caplog.messages)


def test_handle_request_directly(store):
    class Server(DNSServer):
        __proto__ = "TEST"

    server = Server()
    server.store = store
    reply, addr = server.handle_request(("h", 1), query("www.example.com").pack())
    assert addr == ("h", 1)
    assert len(dnslib.DNSRecord.parse(reply).rr) == 1
    assert server.handle_request(("h", 1), b"")[0] == b""
    assert Server.get_edns_max_size(query("x", edns=1400)) == 1400
    assert Server.get_edns_max_size(query("x")) is None


# ------------------------------------------------ replacement under load


def test_zone_replacement_under_concurrent_queries(servers, store):
    """A thread swaps the whole store between two generations while
    clients query over UDP and TCP: every reply is one generation, whole."""
    loop, udp, tcp = servers
    names = [f"h{i}.example.net." for i in range(8)]

    def generation(ip):
        return {
            "example.net": [
                records.A.create(name, ip) for name in names
            ] + [records.A.create("all.example.net.", ip)] * 3,
        }

    store.replace(generation("10.9.0.1"))
    stop = threading.Event()
    swaps = 0

    def replacer():
        nonlocal swaps
        while not stop.is_set():
            store.replace(generation(f"10.9.0.{1 + swaps % 2}"))
            swaps += 1

    async def clients():
        seen = set()
        udp_client = UDPClient(udp.port)
        try:
            for index in range(300):
                packet = query(names[index % len(names)]).pack()
                for raw in (
                    await udp_client.ask(packet),
                    *(await ask_tcp(tcp.port, packet, packet)),
                ):
                    reply = dnslib.DNSRecord.parse(raw)
                    assert reply.header.rcode == dnslib.RCODE.NOERROR
                    ips = {str(rr.rdata) for rr in reply.rr}
                    assert len(reply.rr) == 1 and len(ips) == 1
                    seen |= ips
        finally:
            udp_client.close()
        return seen

    thread = threading.Thread(target=replacer)
    thread.start()
    try:
        seen = loop.run_until_complete(clients())
    finally:
        stop.set()
        thread.join()
    assert swaps > 10
    assert seen <= {"10.9.0.1", "10.9.0.2"}


# ------------------------------------------------------------------- fuzz


def fuzz_packets(rng, count):
    """Random, truncated, bit-flipped and oversized packets."""
    valid = [
        query(name, qtype, edns).pack()
        for name, qtype, edns in (
            ("www.example.com", "A", None), ("many.example.com", "A", 700),
            ("x.example.com", "TXT", 4096), ("alias.example.com", "CNAME", None),
        )
    ]
    for index in range(count):
        kind = index % 5
        base = rng.choice(valid)
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 600))
        elif kind == 1:
            yield base[:rng.randrange(0, len(base))]
        elif kind == 2:
            mutated = bytearray(base)
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            yield bytes(mutated)
        elif kind == 3:
            yield base[:12] + rng.randbytes(rng.randrange(1000, 9000))
        else:
            # A header that promises many records, followed by garbage.
            yield struct.pack("!HHHHHH", index & 0xFFFF, 0x0100, 0xFFFF,
                              0xFFFF, 0xFFFF, 0xFFFF) + rng.randbytes(50)


def server_tasks(server):
    return {task for task in server.tasks if not task.done()}


def test_fuzz_udp(servers, caplog):
    loop, udp, _ = servers
    rng = random.Random(12345)
    baseline = len(asyncio.all_tasks(loop))

    async def flood():
        client = UDPClient(udp.port)
        replies = 0
        try:
            for index, packet in enumerate(fuzz_packets(rng, 3000)):
                client.send(packet)
                if index % 50 == 49:
                    await asyncio.sleep(0.005)
                    while True:
                        try:
                            data = client.sock.recv(65536)
                        except BlockingIOError:
                            break
                        replies += 1
                        assert len(data) >= 2
        finally:
            client.close()
        return replies

    with caplog.at_level(logging.CRITICAL, logger=dns_service.__name__):
        replies = loop.run_until_complete(flood())
        assert replies > 100
        reply = dnslib.DNSRecord.parse(loop.run_until_complete(
            ask_udp(udp.port, query("www.example.com").pack()),
        ))
    assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1"]

    async def settle():
        for _ in range(200):
            if not server_tasks(udp) and len(asyncio.all_tasks()) <= baseline + 1:
                return
            await asyncio.sleep(0.01)

    loop.run_until_complete(settle())
    assert not server_tasks(udp)
    assert len(asyncio.all_tasks(loop)) <= baseline


def test_fuzz_tcp(servers, caplog):
    loop, _, tcp = servers
    rng = random.Random(54321)

    async def lying_connection(packet):
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
        try:
            claimed = rng.choice([
                len(packet), max(len(packet) - 5, 0), len(packet) + 10,
                0, 0xFFFF, rng.randrange(0x10000),
            ])
            writer.write(struct.pack("!H", claimed) + packet)
            if rng.random() < 0.5:
                writer.write(rng.randbytes(rng.randrange(0, 40)))
            await writer.drain()
            if rng.random() < 0.5:
                writer.write_eof()
            # Read whatever comes back until the server closes or we give up.
            try:
                await asyncio.wait_for(reader.read(), 0.05)
            except asyncio.TimeoutError:
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def flood():
        packets = list(fuzz_packets(rng, 600))
        for start in range(0, len(packets), 50):
            await asyncio.gather(*(
                lying_connection(p) for p in packets[start:start + 50]
            ))

    with caplog.at_level(logging.CRITICAL, logger=dns_service.__name__):
        loop.run_until_complete(flood())
        (raw,) = loop.run_until_complete(
            ask_tcp(tcp.port, query("www.example.com").pack()),
        )
    assert [str(rr.rdata) for rr in dnslib.DNSRecord.parse(raw).rr] == ["192.0.2.1"]

    async def settle():
        for _ in range(500):
            if not server_tasks(tcp):
                return
            await asyncio.sleep(0.01)

    loop.run_until_complete(settle())
    assert not server_tasks(tcp)


def test_subclass_handle_datagram_is_still_called(store, policy):
    seen = []

    class Logged(UDPDNSServer):
        async def handle_datagram(self, data, addr):
            seen.append(len(data))
            await super().handle_datagram(data, addr)

    server = Logged(address="127.0.0.1", port=0, store=store)
    with ep(server, policy=policy) as loop:
        raw = loop.run_until_complete(
            ask_udp(server.port, query("www.example.com").pack()),
        )
    assert len(dnslib.DNSRecord.parse(raw).rr) == 1
    assert len(seen) == 1


def test_sendto_failure_is_logged_and_serving_goes_on(servers, caplog):
    loop, udp, _ = servers
    original = udp.sendto
    calls = []

    def failing_sendto(data, addr):
        calls.append(addr)
        if len(calls) == 1:
            raise OSError("simulated send failure")
        return original(data, addr)

    udp.sendto = failing_sendto
    packet = query("www.example.com").pack()

    async def go():
        client = UDPClient(udp.port)
        try:
            client.send(packet)                 # its answer is lost
            return await client.ask(packet)
        finally:
            client.close()

    with caplog.at_level(logging.ERROR, logger=dns_service.__name__):
        raw = loop.run_until_complete(go())
    assert len(dnslib.DNSRecord.parse(raw).rr) == 1
    assert any("Error when answering a datagram" in m for m in caplog.messages)


def test_answer_too_big_for_a_message(policy, caplog):
    """Over TCP: SERVFAIL.  Over UDP: its first 512 bytes, flagged TC."""
    store = DNSStore()
    store.add_zone(DNSZone("big.test", *(
        records.A.create("huge.big.test.", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        for i in range(4200)
    )))
    tcp = TCPDNSServer(address="127.0.0.1", port=0, store=store)
    udp = UDPDNSServer(address="127.0.0.1", port=0, store=store)
    packet = query("huge.big.test").pack()
    query_id = dnslib.DNSRecord.parse(packet).header.id

    async def go():
        return await ask_tcp(tcp.port, packet), await ask_udp(udp.port, packet)

    with caplog.at_level(logging.WARNING, logger=dns_service.__name__):
        with ep(tcp, udp, policy=policy) as loop:
            (over_tcp,), over_udp = loop.run_until_complete(go())
    reply = dnslib.DNSRecord.parse(over_tcp)
    assert reply.header.rcode == dnslib.RCODE.SERVFAIL
    assert reply.header.id == query_id
    assert any("more than a DNS message may hold" in m for m in caplog.messages)

    assert len(over_udp) == 512
    header = dnslib.DNSHeader.parse(dnslib.DNSBuffer(over_udp))
    assert header.tc == 1 and header.id == query_id
    assert any("more than a datagram may hold" in m for m in caplog.messages)
