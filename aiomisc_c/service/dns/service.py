"""DNS servers over UDP and TCP answering from a :class:`DNSStore`
(mirror of ``aiomisc.service.dns.service``).

A server faces untrusted input, so no packet can stop it: a query that
cannot be answered from the store gets ``NXDOMAIN``, one that fails while
being answered (an unknown query type, say) gets ``SERVFAIL``, and so does a
malformed query whose header is readable.  Packets shorter than a DNS
header, and malformed packets that claim to be responses, are dropped.
Each case is logged by the module logger.
"""
from __future__ import annotations

import asyncio
import logging
from asyncio import StreamReader, StreamWriter
from struct import Struct
from typing import Any, Optional, Tuple, cast

from ..tcp import TCPServer
from ..udp import UDPServer
from ._dnslib import dnslib
from ._wire import fast_reply
from .records import RecordType
from .store import DNSStore

__all__ = ("DNSServer", "TCPDNSServer", "TCP_HEADER_STRUCT", "UDPDNSServer")

log = logging.getLogger(__name__)

DNS_HEADER_SIZE = 12
# A reply longer than this gets the TC (truncated) flag.
MAX_UDP_REPLY_SIZE = 512
# The largest UDP payload over IPv4.
MAX_DATAGRAM_SIZE = 65507
TCP_HEADER_STRUCT: Struct = Struct("!H")
_HEADER_ID_AND_FLAGS = Struct("!HH")
_QR_FLAG = 0x8000


class DNSServer:
    """The protocol-independent part: one query in, one reply out."""

    store: DNSStore

    __proto__: str

    @staticmethod
    def get_edns_max_size(record: dnslib.DNSRecord) -> Optional[int]:
        """The UDP payload size of the query's EDNS0 OPT record, if any."""
        for rr in record.ar:
            if rr.rtype == dnslib.QTYPE.OPT:
                return cast(int, rr.edns_len)
        return None

    def handle_request(
        self, addr: tuple[Any, ...], data: bytes, should_truncate: bool = False,
    ) -> Tuple[bytes, tuple[Any, ...]]:
        """The reply to the query ``data`` from ``addr``: ``(reply, addr)``.

        The reply is ``b""`` when there is nothing to answer (a packet too
        short to hold a DNS header, or a malformed response).
        """
        if not log.isEnabledFor(logging.DEBUG):
            # Plain queries skip dnslib's objects (same bytes; the debug log
            # lines need the objects).
            try:
                fast = fast_reply(self.store, data)
            except Exception:
                fast = None         # dnslib's path answers (or SERVFAILs)
            if fast is not None:
                reply_body, edns_max_size = fast
                if should_truncate:
                    reply_body = reply_body[:edns_max_size]
                return reply_body, addr
        return self.reply_with_dnslib(addr, data, should_truncate)

    def reply_with_dnslib(
        self, addr: tuple[Any, ...], data: bytes, should_truncate: bool = False,
    ) -> Tuple[bytes, tuple[Any, ...]]:
        """:meth:`handle_request` through dnslib's objects, for any query."""
        try:
            record = dnslib.DNSRecord.parse(data)
        except Exception as exc:
            return self._reply_to_malformed(addr, data, exc), addr

        try:
            log.debug(
                "Processing %s request from %r:\n%s\n",
                self.__proto__, addr, record,
            )
            question: dnslib.DNSQuestion = record.get_q()
            reply = record.reply()
            query_name = str(question.get_qname())
            query_type = question.qtype

            edns_max_size = self.get_edns_max_size(record)
            if edns_max_size is not None:
                reply.add_ar(dnslib.EDNS0(udp_len=edns_max_size))

            records = self.store.query(query_name, RecordType(query_type))
            for rec in records:
                reply.add_answer(rec.rr(query_type))

            if not records:
                reply.header.rcode = dnslib.RCODE.NXDOMAIN

            log.debug(
                "Sending %s answer to %r:\n%s\n", self.__proto__, addr, reply,
            )
            reply_body = reply.pack()

            if len(reply_body) > MAX_UDP_REPLY_SIZE:
                reply.header.tc = 1
                reply_body = reply.pack()

            if should_truncate:
                reply_body = reply_body[:edns_max_size]
        except Exception as exc:
            log.exception(
                "Failed to process %s request from %r: %s",
                self.__proto__, addr, exc,
            )
            reply_body = self._server_failure(record)
        return reply_body, addr

    @staticmethod
    def _server_failure(record: dnslib.DNSRecord) -> bytes:
        reply = record.reply()
        reply.header.set_rcode(dnslib.RCODE.SERVFAIL)
        try:
            return cast(bytes, reply.pack())
        except Exception:
            # The question itself cannot be packed again: answer without it.
            reply.questions = []
            reply.set_header_qa()
            return cast(bytes, reply.pack())

    def _reply_to_malformed(
        self, addr: tuple[Any, ...], data: bytes, exc: Exception,
    ) -> bytes:
        if len(data) < DNS_HEADER_SIZE:
            log.warning(
                "Dropped %s packet from %r: %d bytes is too short for a DNS "
                "header", self.__proto__, addr, len(data),
            )
            return b""
        query_id, bitmap = _HEADER_ID_AND_FLAGS.unpack_from(data)
        if bitmap & _QR_FLAG:
            log.warning(
                "Dropped malformed %s response from %r: %s",
                self.__proto__, addr, exc,
            )
            return b""
        log.warning(
            "Malformed %s request from %r, answering SERVFAIL: %s",
            self.__proto__, addr, exc,
        )
        header = dnslib.DNSHeader(
            id=query_id, bitmap=bitmap, qr=1, ra=1, aa=1,
        )
        header.set_rcode(dnslib.RCODE.SERVFAIL)
        return cast(bytes, dnslib.DNSRecord(header).pack())


class UDPDNSServer(DNSServer, UDPServer):
    """DNS over UDP: replies over 512 bytes get the TC flag and are cut to
    the client's EDNS0 payload size when it sent one."""

    MAX_SIZE = 512

    store: DNSStore

    __required__ = ("store",)
    __proto__ = "UDP"

    async def handle_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.answer_datagram(data, addr)

    def answer_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        reply, addr = self.handle_request(
            data=data, addr=addr, should_truncate=True,
        )
        if len(reply) > MAX_DATAGRAM_SIZE:
            # It cannot be sent whole; its header has the TC flag already,
            # so the client asks again over TCP.
            log.warning(
                "UDP answer to %r is %d bytes, more than a datagram may "
                "hold: sending its first %d bytes", addr, len(reply),
                MAX_UDP_REPLY_SIZE,
            )
            reply = reply[:MAX_UDP_REPLY_SIZE]
        if reply:
            self.sendto(reply, addr)

    async def start(self) -> None:
        await super().start()
        transport = getattr(self, "_transport", None)
        protocol = getattr(self, "_protocol", None)
        # Unless a subclass handles datagrams its own way, answer each one
        # as it arrives: handle_request() never waits, so a task per query
        # would only add a trip through the loop.
        if (
            type(self).handle_datagram is UDPDNSServer.handle_datagram
            and transport is not None and protocol is not None
        ):
            transport.set_protocol(_AnsweringProtocol(self, protocol))


class _AnsweringProtocol(asyncio.DatagramProtocol):
    """Answers each datagram synchronously; everything else goes to the
    server's own protocol."""

    def __init__(
        self, server: UDPDNSServer, inner: asyncio.DatagramProtocol,
    ) -> None:
        self.server = server
        self.inner = inner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self.server.answer_datagram(data, addr)
        except Exception:
            log.exception("Error when answering a datagram from %r", addr)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.inner.connection_lost(exc)

    def error_received(self, exc: Exception) -> None:
        self.inner.error_received(exc)


class TCPDNSServer(DNSServer, TCPServer):
    """DNS over TCP: every message is preceded by its length (two bytes,
    big-endian); a connection serves queries until the client closes it."""

    store: DNSStore

    __required__ = ("store",)
    __proto__ = "TCP"

    async def handle_client(
        self, reader: StreamReader, writer: StreamWriter,
    ) -> None:
        addr = writer.get_extra_info("peername")
        try:
            while True:
                header = await reader.readexactly(TCP_HEADER_STRUCT.size)
                (length,) = TCP_HEADER_STRUCT.unpack(header)
                packet = await reader.readexactly(length)
                reply, _ = self.handle_request(data=packet, addr=addr)
                if not reply:
                    continue
                if len(reply) > 0xFFFF:
                    log.error(
                        "TCP answer to %r is %d bytes, more than a DNS "
                        "message may hold: answering SERVFAIL",
                        addr, len(reply),
                    )
                    reply = self._server_failure(dnslib.DNSRecord.parse(packet))
                writer.write(TCP_HEADER_STRUCT.pack(len(reply)) + reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass        # the client closed the connection (maybe mid-message)
        except ConnectionError as exc:
            log.debug("TCP connection with %r lost: %r", addr, exc)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


