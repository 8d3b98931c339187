"""DNS server: queries answered per second over UDP from a 1,000-zone store.

* The store: 1,000 zones ``zone<i>.example.`` with an ``A`` and an ``AAAA``
  record for ``www.zone<i>.example.`` and a ``CNAME`` ``mail`` to it,
  served by ``UDPDNSServer`` on 127.0.0.1 (started on the benchmark's loop,
  without an entrypoint).
* The client runs on the same loop: a datagram endpoint that keeps
  ``WINDOW`` queries in flight and sends the next one as each reply
  arrives, cycling over pre-built query packets for the 1,000 zones; it does
  not parse the replies (it counts them).  Its cost, the loop's and the
  kernel's are shared by both subjects; the server's part is dnslib's
  parsing of the query (shared too) and the lookup and packing of the reply
  (each library's own).
* Cases: a name that exists (one ``A`` record, no EDNS0), the same with an
  EDNS0 OPT record, and a name of no zone (``NXDOMAIN``).

Run alone: ``python -m benchmarks --only dns``.
"""
import asyncio
import importlib
from typing import Any, Callable, Dict, List

from ._harness import (
    AIOMISC, AIOMISC_C, Case, Fixture, Subject, Unavailable, import_peer,
    loop_policy,
)

TITLE = "DNS server"

OURS = Subject(
    AIOMISC_C.name, "aiomisc_c", "aiomisc_c",
    note="aiomisc_c.service.dns.UDPDNSServer (pure Python)",
)
SUBJECTS = (OURS, AIOMISC)
BASELINE = AIOMISC.name
REFERENCES = ()
LOOPS = ("asyncio", "uvloop")

ZONES = 1000
WINDOW = 16

CASES = (
    Case("udp_a", "UDP query answered with one A record (1,000 zones)",
         iterations=4000, short="UDP A answer"),
    Case("udp_a_edns", "UDP A query with EDNS0 (1,000 zones)",
         iterations=4000, short="UDP A + EDNS0"),
    Case("udp_nxdomain", "UDP query of an unknown name: NXDOMAIN",
         iterations=4000, short="UDP NXDOMAIN"),
)


def build_store(package: str) -> Any:
    dns = importlib.import_module(f"{package}.service.dns")
    records = dns.records
    store = dns.DNSStore()
    for index in range(ZONES):
        zone = f"zone{index}.example."
        store.add_zone(dns.DNSZone(
            zone,
            records.A.create(f"www.{zone}", f"10.{index // 256}.{index % 256}.1"),
            records.AAAA.create(f"www.{zone}", f"2001:db8::{index:x}"),
            # (aiomisc 17 cannot hash MX and most other record types)
            records.CNAME.create(f"mail.{zone}", f"www.{zone}"),
        ))
    return store


def query_packets(dnslib: Any, kind: str) -> List[bytes]:
    packets = []
    for index in range(ZONES):
        if kind == "udp_nxdomain":
            name = f"www.zone{index}.missing."
        else:
            name = f"www.zone{index}.example."
        question = dnslib.DNSRecord.question(name, "A")
        question.header.id = index + 1
        if kind == "udp_a_edns":
            question.add_ar(dnslib.EDNS0(udp_len=1232))
        packets.append(question.pack())
    return packets


class Client(asyncio.DatagramProtocol):
    """Keeps WINDOW queries in flight until ``remaining`` replies came."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.packets: List[bytes] = []
        self.index = 0
        self.remaining = 0
        self.sent = 0
        self.done: "asyncio.Future[None] | None" = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send_next(self) -> None:
        packet = self.packets[self.index]
        self.index = (self.index + 1) % len(self.packets)
        self.sent += 1
        self.transport.sendto(packet)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            if self.done is not None and not self.done.done():
                self.done.set_result(None)
        elif self.sent < self.target:
            self.send_next()

    async def run(self, packets: List[bytes], count: int) -> None:
        self.packets = packets
        self.remaining = self.target = count
        self.sent = 0
        self.done = asyncio.get_running_loop().create_future()
        for _ in range(min(WINDOW, count)):
            self.send_next()
        await asyncio.wait_for(self.done, 60)


def setup(subject: str, loop_kind: str) -> Fixture:
    dnslib, dnslib_version = import_peer("dnslib")
    package = "aiomisc_c" if subject == OURS.name else "aiomisc"
    try:
        importlib.import_module(f"{package}.service.dns")
    except ImportError as exc:
        raise Unavailable(f"{package}.service.dns: {exc}") from None
    dns = importlib.import_module(f"{package}.service.dns")

    loop = loop_policy(loop_kind).new_event_loop()
    asyncio.set_event_loop(loop)
    store = build_store(package)
    server = dns.UDPDNSServer(address="127.0.0.1", port=0, store=store)

    async def start() -> Client:
        server.set_loop(loop)
        await server.start()
        port = server.socket.getsockname()[1]
        _, client = await loop.create_datagram_endpoint(
            Client, remote_addr=("127.0.0.1", port),
        )
        return client

    client = loop.run_until_complete(start())

    def body(kind: str) -> Callable[[int], Any]:
        packets = query_packets(dnslib, kind)

        async def run(iterations: int) -> None:
            await client.run(packets, iterations)

        return run

    def close() -> None:
        client.transport.close()
        loop.run_until_complete(server.stop())
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    bodies: Dict[str, Callable[[int], Any]] = {
        case.name: body(case.name) for case in CASES
    }
    package_module = importlib.import_module(package)
    return Fixture(
        loop=loop, bodies=bodies, close=close,
        facts={
            "dnslib": dnslib_version,
            "path": getattr(package_module, "__file__", ""),
            "zones": ZONES, "window": WINDOW,
        },
    )
