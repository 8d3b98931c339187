"""The DNS servers' fast path answers byte for byte as dnslib's path does,
and leaves every query it does not cover to it."""
import random
import struct

import dnslib
import pytest
from test_dns_server import fuzz_packets, make_store, query
from test_dns_store import EVERY_RECORD

from aiomisc_c.service.dns import DNSServer, DNSZone, records
from aiomisc_c.service.dns._wire import fast_reply, read_query

ADDR = ("127.0.0.1", 5353)


class Server(DNSServer):
    __proto__ = "TEST"


@pytest.fixture(scope="module")
def server():
    server = Server()
    store = make_store()
    # Names in record data that compress against the question and each
    # other, several records per name, a name in capitals.
    store.add_zone(DNSZone(
        "mixed.test",
        records.MX.create("mixed.test.", "mail.mixed.test.", 10),
        records.MX.create("mixed.test.", "mail2.mixed.test.", 20),
        records.NS.create("mixed.test.", "ns.mixed.test."),
        records.NS.create("mixed.test.", "ns.other.test."),
        records.SOA.create("mixed.test.", "ns.mixed.test.", "admin.mixed.test.",
                           1, 2, 3, 4, 5),
        records.A.create("Upper.mixed.test.", "10.0.0.9"),
        records.CNAME.create("alias.mixed.test.", "mixed.test."),
    ))
    server.store = store
    return server


def queries():
    for type_name, record in sorted(EVERY_RECORD.items()):
        for edns in (None, 512, 4096):
            yield query(record.name, type_name, edns)
    for name, qtype in (
        ("mixed.test", "MX"), ("mixed.test", "NS"), ("mixed.test", "SOA"),
        ("Upper.mixed.test", "A"), ("upper.mixed.test", "A"),
        ("alias.mixed.test", "CNAME"), ("many.example.com", "A"),
        ("nothing.example.com", "A"), ("www.example.org", "AAAA"),
        ("www.example.com", "ANY"), ("www_1.example.com", "A"),
    ):
        for edns in (None, 600, 1232):
            yield query(name, qtype, edns)


@pytest.mark.parametrize("truncate", [False, True])
def test_same_bytes_as_dnslib(server, truncate):
    covered = 0
    for question in queries():
        packet = question.pack()
        fast = server.handle_request(ADDR, packet, truncate)
        slow = server.reply_with_dnslib(ADDR, packet, truncate)
        assert fast == slow, str(question)
        covered += fast_reply(server.store, packet) is not None
    assert covered > 80


def test_query_flags_are_carried_as_dnslib_does(server):
    question = query("www.example.com")
    for bitmap in (0x0000, 0x0100, 0x0110, 0x7B3F, 0x8000, 0x0203):
        question.header.bitmap = bitmap
        packet = question.pack()
        assert fast_reply(server.store, packet) is not None
        assert (
            server.handle_request(ADDR, packet)
            == server.reply_with_dnslib(ADDR, packet)
        )


def test_fuzzed_packets_get_the_same_answer(server):
    rng = random.Random(2024)
    for packet in fuzz_packets(rng, 3000):
        for truncate in (False, True):
            assert (
                server.handle_request(ADDR, packet, truncate)
                == server.reply_with_dnslib(ADDR, packet, truncate)
            ), packet


@pytest.mark.parametrize("packet", [
    b"",
    query("www.example.com").pack()[:-1],
    # two questions
    struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + query("a.b").pack()[12:] * 2,
    # a compression pointer in the question
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
    # a label with a byte dnslib escapes
    query("a.b").pack()[:13] + b"." + query("a.b").pack()[14:],
    # an additional record that is not OPT
    query("www.example.com", edns=512).pack()[:-10] + b"\x00\x01" + b"\x00" * 8,
])
def test_unusual_queries_take_dnslib_path(packet):
    assert read_query(packet) is None


def test_unknown_type_takes_dnslib_path(server):
    packet = dnslib.DNSRecord(q=dnslib.DNSQuestion("www.example.com", 999)).pack()
    assert read_query(packet) is not None
    assert fast_reply(server.store, packet) is None
    reply = dnslib.DNSRecord.parse(server.handle_request(ADDR, packet)[0])
    assert reply.header.rcode == dnslib.RCODE.SERVFAIL
