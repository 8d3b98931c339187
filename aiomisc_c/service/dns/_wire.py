"""The fast path of the DNS servers: a plain query read and its reply packed
without building dnslib objects.

It covers what nearly every query is: one question whose name is plain
ASCII labels, no answer or authority records, at most one EDNS0 OPT record.
Anything else returns ``None`` and the caller takes dnslib's path.  The bytes
produced are exactly those dnslib's path produces (``tests/test_dns_wire.py``
checks it): the same header flags, the question copied as sent, each answer
name compressed to a pointer at the question name, record data packed by
dnslib (cached per record when it holds no compressible name), then the OPT
record.
"""
from __future__ import annotations

import re
from struct import Struct
from typing import Any, Dict, Optional, Tuple

from ._dnslib import dnslib
from .records import RecordType, rdata_wire

HEADER = Struct("!HHHHHH")
QUESTION_TAIL = Struct("!HH")
RR_FIXED = Struct("!HHIH")          # type, class, TTL, data length
RDLENGTH = Struct("!H")
OPT_FIXED = Struct("!HHIH")

HEADER_SIZE = 12
MAX_UDP_SIZE = 512
NAME_AT_QUESTION = b"\xc0\x0c"     # a pointer to offset 12
OPT_TYPE = 41

# Reply flags dnslib's DNSRecord.reply() sets on top of the query's.
QR, AA, TC, RA = 0x8000, 0x0400, 0x0200, 0x0080
RCODE_MASK = 0x000F
NXDOMAIN = 3

# Labels dnslib reads and writes back unchanged (no escaping, no IDNA).
SAFE_LABEL = re.compile(rb"[A-Za-z0-9_-]{1,63}").fullmatch

RECORD_TYPES: Dict[int, RecordType] = {int(t): t for t in RecordType}

# dnslib classes whose packing never writes a compressible name, so their
# wire form does not depend on where they land in a message.
_POSITION_FREE_NAMES = (
    "A", "AAAA", "TXT", "CAA", "DS", "DNSKEY", "TLSA", "SSHFP", "LOC",
    "SRV", "RRSIG", "NSEC", "HTTPS",
)
POSITION_FREE = tuple(
    getattr(dnslib, name) for name in _POSITION_FREE_NAMES
    if hasattr(dnslib, name)
)


# id, flags, question bytes, name, type, EDNS0 size, labels
Query = Tuple[int, int, bytes, str, int, Optional[int], tuple[Any, ...]]


def read_query(data: bytes) -> Optional[Query]:
    """``(id, flags, question bytes, name, type, EDNS0 size, labels)`` of a
    plain query, or ``None``."""
    if type(data) is not bytes:
        data = bytes(data)      # labels must be hashable
    if len(data) < HEADER_SIZE + 5:
        return None
    query_id, flags, questions, answers, authority, additional = (
        HEADER.unpack_from(data)
    )
    if questions != 1 or answers or authority or additional > 1:
        return None

    labels = []
    offset = HEADER_SIZE
    size = len(data)
    while True:
        if offset >= size:
            return None
        length = data[offset]
        if length == 0:
            offset += 1
            break
        end = offset + 1 + length
        label = data[offset + 1:end]
        if length > 63 or len(label) != length or not SAFE_LABEL(label):
            return None
        labels.append(label)
        offset = end
    if not labels or offset + 4 > size:
        return None
    dotted = b".".join(labels)
    if len(dotted) > 253:
        return None
    qtype = QUESTION_TAIL.unpack_from(data, offset)[0]
    offset += 4
    question = data[HEADER_SIZE:offset]

    edns_size = None
    if additional:
        # Only an OPT record with the root name and well-formed options.
        if offset + 11 > size or data[offset] != 0:
            return None
        rtype, edns_size, _, rdlength = OPT_FIXED.unpack_from(data, offset + 1)
        options = offset + 11
        offset = options + rdlength
        if rtype != OPT_TYPE or offset > size:
            return None
        while offset - options > 4:
            option_length = RDLENGTH.unpack_from(data, options + 2)[0]
            options += 4 + option_length
            if options > offset:
                return None
    return (
        query_id, flags, question, dotted.decode("ascii") + ".", qtype,
        edns_size, tuple(labels),
    )


def _question_names(labels: tuple[Any, ...]) -> Dict[tuple[Any, ...], int]:
    """dnslib's compression table after it wrote the question name."""
    names = {}
    offset = HEADER_SIZE
    for index in range(len(labels)):
        names[labels[index:]] = offset
        offset += 1 + len(labels[index])
    return names


def pack_answers(
    out: bytearray, records: Any, name: str, qtype: int, labels: tuple[Any, ...],
) -> bool:
    """Append the answer records to ``out``; False when one is not of the
    plain kind (another name than the question's)."""
    names: Optional[Dict[tuple[Any, ...], int]] = None
    for record in records:
        if record.name != name:
            return False
        data = record.data
        if isinstance(data, POSITION_FREE):
            wire = rdata_wire(data)
            out += NAME_AT_QUESTION
            out += RR_FIXED.pack(qtype, record.cls, record.ttl, len(wire))
            out += wire
            continue
        # Names in the data compress against what the message holds so far:
        # let dnslib pack it into the message itself.
        if names is None:
            names = _question_names(labels)
        out += NAME_AT_QUESTION
        out += RR_FIXED.pack(qtype, record.cls, record.ttl, 0)
        start = len(out)
        buffer = dnslib.DNSBuffer()
        buffer.data = out
        buffer.offset = start
        buffer.names = names
        data.pack(buffer)
        RDLENGTH.pack_into(out, start - 2, len(out) - start)
    return True


def fast_reply(
    store: Any, data: bytes,
) -> Optional[Tuple[bytes, Optional[int]]]:
    """``(reply, EDNS0 size)`` for a plain query, or ``None``."""
    query = read_query(data)
    if query is None:
        return None
    query_id, flags, question, name, qtype, edns_size, labels = query
    record_type = RECORD_TYPES.get(qtype)
    if record_type is None or qtype == OPT_TYPE:
        return None

    records = store.query(name, record_type)
    flags |= QR | AA | RA
    if not records:
        flags = (flags & ~RCODE_MASK) | NXDOMAIN

    out = bytearray(HEADER_SIZE)
    out += question
    if records and not pack_answers(out, records, name, qtype, labels):
        return None
    if edns_size is not None:
        out += b"\x00"
        out += OPT_FIXED.pack(OPT_TYPE, edns_size, 0, 0)
    if len(out) > MAX_UDP_SIZE:
        flags |= TC
    HEADER.pack_into(
        out, 0, query_id, flags, 1, len(records), 0,
        0 if edns_size is None else 1,
    )
    return bytes(out), edns_size
