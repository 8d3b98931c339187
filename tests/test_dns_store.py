"""``aiomisc_c.service.dns``: records, the radix tree, zones and the store
(no sockets here; the servers are in test_dns_server.py)."""
import threading

import dnslib
import pytest

from aiomisc_c.service.dns import DNSStore, DNSZone, records
from aiomisc_c.service.dns.records import DNSClass, DNSRecord, RecordType
from aiomisc_c.service.dns.tree import RadixNode, RadixTree
from aiomisc_c.service.dns.zone import RecordsType  # noqa: F401 - public alias

# One record of every record-data class, as the servers are tested with.
EVERY_RECORD = {
    "A": records.A.create("x.example.com.", "10.0.0.1"),
    "AAAA": records.AAAA.create("x.example.com.", "2001:db8::1"),
    "CNAME": records.CNAME.create("x.example.com.", "y.example.com."),
    "NS": records.NS.create("x.example.com.", "ns1.example.com."),
    "PTR": records.PTR.create("x.example.com.", "host.example.com."),
    "DNAME": records.DNAME.create("x.example.com.", "other.example.org."),
    "MX": records.MX.create("x.example.com.", "mail.example.com.", 10),
    "TXT": records.TXT.create("x.example.com.", "v=spf1 -all"),
    "SOA": records.SOA.create(
        "x.example.com.", "ns1.example.com.", "admin.example.com.",
        2024010101, 3600, 600, 86400, 300,
    ),
    "SRV": records.SRV.create("x.example.com.", 10, 5, 5060, "sip.example.com."),
    "CAA": records.CAA.create("x.example.com.", 0, "issue", "letsencrypt.org"),
    "NAPTR": records.NAPTR.create(
        "x.example.com.", 100, 10, "S", "SIP+D2U", "", "_sip._udp.example.com.",
    ),
    "DS": records.DS.create("x.example.com.", 60485, 5, 1, "2BB183AF5F22588179A53B0A98631FAD1A292118"),
    "DNSKEY": records.DNSKEY.create("x.example.com.", 256, 3, 8, "AwEAAagAIKlVZrpC6Ia7gEzahOR+9W29euxhJhVVLOyQbSEW0O8gcCjF"),
    "RRSIG": records.RRSIG.create(
        "x.example.com.", 1, 8, 3, 3600, 1700000000, 1600000000, 60485,
        "example.com.", "c2lnbmF0dXJl",
    ),
    "NSEC": records.NSEC.create("x.example.com.", "z.example.com.", [1, 2, 6, 46, 47]),
    "HTTPS": records.HTTPS.create("x.example.com.", 1, ".", ["alpn=h2,h3"]),
    "LOC": records.LOC.create("x.example.com.", 52.37, 4.89, 10.0, 1.0, 10000.0, 10.0),
    "RP": records.RP.create("x.example.com.", "admin.example.com.", "info.example.com."),
    "TLSA": records.TLSA.create("x.example.com.", 3, 1, 1, "0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6"),
    "SSHFP": records.SSHFP.create("x.example.com.", 1, 1, "DC6BAD7DD08FB9DB8D2A5D4D8F6F15BE6D3E2B59"),
}


# ------------------------------------------------------------------ records


def test_record_type_codes():
    assert RecordType.A == 1
    assert RecordType.HIP_AC == 55
    assert RecordType.TA == 32768
    assert RecordType.DLV == 32769
    assert RecordType.CAA == 257
    assert RecordType.HTTPS == 65
    assert sorted(RecordType.__members__) == sorted(
        "A A6 AAAA AFSDB ANY APL AXFR CAA CDNSKEY CDS CERT CNAME CSYNC DHCID "
        "DLV DNAME DNSKEY DS EUI48 EUI64 HINFO HIP HIP_AC HTTPS IPSECKEY IXFR "
        "KEY KX LOC MX NAPTR NS NSEC NSEC3 NSEC3PARAM NULL OPENPGPKEY OPT PTR "
        "RP RRSIG SIG SOA SPF SRV SSHFP SVCB TA TKEY TLSA TSIG TXT URI ZONEMD"
        .split()
    )
    # The standard codes (the names are dnslib's QTYPE names).
    for member in RecordType:
        if member.name != "HIP_AC":
            assert dnslib.QTYPE.get(member.value) == member.name.replace("_", "-")
    assert DNSClass.IN == 1 and DNSClass.ASTERISK == 255 and DNSClass.Hesiod == 4


def test_every_record_class_is_covered():
    data_classes = {
        name for name in records.__all__
        if isinstance(getattr(records, name), type)
        and issubclass(getattr(records, name), records.RD)
        and name != "RD"
    }
    assert data_classes == set(EVERY_RECORD)


@pytest.mark.parametrize("type_name", sorted(EVERY_RECORD))
def test_every_record_is_hashable_and_deduplicated(type_name):
    record = EVERY_RECORD[type_name]
    assert record.type == RecordType[type_name]
    assert isinstance(record.data, getattr(dnslib, type_name))
    assert isinstance(record.data, records.RD)
    assert record.ttl == 3600 and record.cls == DNSClass.IN
    zone = DNSZone("example.com", record, record)
    assert zone.get_records("x.example.com", RecordType[type_name]) == (record,)
    rr = record.rr(RecordType[type_name])
    assert isinstance(rr, dnslib.RR)
    assert rr.rname == "x.example.com." and rr.ttl == 3600


def test_ttl_is_not_part_of_equality():
    first = records.A.create("a.example.com.", "10.0.0.1", ttl=10)
    second = records.A.create("a.example.com.", "10.0.0.1", ttl=20)
    assert first == second and hash(first) == hash(second)
    assert first != records.A.create("a.example.com.", "10.0.0.2")


def test_label_records_compare_without_case():
    first = records.CNAME.create("a.example.com.", "Target.example.com.")
    second = records.CNAME.create("a.example.com.", "target.example.com.")
    assert first == second and hash(first) == hash(second)


def test_rd_is_abstract():
    with pytest.raises(TypeError):
        records.RD()


# --------------------------------------------------------------------- tree


def test_radix_tree():
    tree = RadixTree()
    assert isinstance(tree.root, RadixNode)
    assert tree.root.children == {} and tree.root.value is None
    assert tree.find_prefix(("com", "example")) is None

    tree.insert(("com", "example"), "example")
    tree.insert(("com", "example", "sub"), "sub")
    assert tree.search(("com", "example")) == "example"
    assert tree.search(("com",)) is None
    assert tree.search(("org",)) is None
    assert tree.find_prefix(("com", "example", "www")) == (("com", "example"), "example")
    assert tree.find_prefix(("com", "example", "sub", "a")) == (
        ("com", "example", "sub"), "sub",
    )
    assert tree.find_prefix(("com", "other")) is None

    tree.insert((), "root")
    assert tree.find_prefix(("org", "x")) == ((), "root")

    tree.insert(("com", "example", "sub"), None)
    assert tree.search(("com", "example", "sub")) is None
    assert tree.find_prefix(("com", "example", "sub", "a"))[1] == "example"


# --------------------------------------------------------------------- zone


def test_zone_records():
    zone = DNSZone("example.com")
    assert zone.name == "example.com."
    record = records.A.create("www.example.com.", "10.0.0.1")
    zone.add_record(record)
    assert zone.get_records("www.example.com", RecordType.A) == (record,)
    assert zone.get_records("www.example.com.", RecordType.AAAA) == ()
    # A miss does not create an entry.
    assert list(zone.records) == [("www.example.com.", RecordType.A)]

    with pytest.raises(ValueError) as info:
        zone.add_record(records.A.create("www.example.org.", "10.0.0.1"))
    assert str(info.value) == (
        "Record www.example.org. does not belong to zone example.com."
    )

    zone.remove_record(record)
    assert zone.get_records("www.example.com.", RecordType.A) == ()
    assert dict(zone.records) == {}
    zone.remove_record(record)      # absent: nothing happens


def test_zone_replace_checks_everything_first():
    old = records.A.create("a.example.com.", "10.0.0.1")
    zone = DNSZone("example.com.", old)
    new = records.A.create("b.example.com.", "10.0.0.2")
    with pytest.raises(ValueError):
        zone.replace([new, records.A.create("b.example.org.", "10.0.0.2")])
    assert zone.get_records("a.example.com.", RecordType.A) == (old,)
    zone.replace([new])
    assert zone.get_records("a.example.com.", RecordType.A) == ()
    assert zone.get_records("b.example.com.", RecordType.A) == (new,)


# -------------------------------------------------------------------- store


def test_store_zones():
    store = DNSStore()
    zone = DNSZone("example.com.")
    store.add_zone(zone)
    with pytest.raises(ValueError) as info:
        store.add_zone(DNSZone("example.com"))
    assert str(info.value) == "Zone example.com. already exists."
    assert store.get_zone("example.com") is zone
    assert store.get_zone("example.org") is None

    store.remove_zone("example.com.")
    assert store.get_zone("example.com.") is None
    with pytest.raises(ValueError) as info:
        store.remove_zone("example.com.")
    assert str(info.value) == "Zone example.com. does not exist."
    with pytest.raises(ValueError):
        store.remove_zone("never.example.")
    # The node stays; another zone can take it.
    store.add_zone(DNSZone("example.com"))


def test_store_query_longest_zone():
    store = DNSStore()
    parent = records.A.create("www.example.com.", "10.0.0.1")
    child = records.A.create("www.sub.example.com.", "10.0.0.2")
    store.add_zone(DNSZone("example.com", parent))
    store.add_zone(DNSZone("sub.example.com", child))
    assert store.query("www.example.com", RecordType.A) == (parent,)
    assert store.query("www.sub.example.com.", RecordType.A) == (child,)
    assert store.query("www.other.com.", RecordType.A) == ()
    assert store.query("www.example.com.", RecordType.TXT) == ()
    assert store.get_zone_for_name("a.b.sub.example.com.") == ("com", "example", "sub")
    assert store.get_zone_for_name("example.org") is None
    assert DNSStore.get_reverse_tuple("www.example.com.") == ("com", "example", "www")


def test_store_replace_is_all_or_nothing():
    store = DNSStore()
    old = records.A.create("a.example.com.", "10.0.0.1")
    store.add_zone(DNSZone("example.com", old))
    with pytest.raises(ValueError):
        store.replace({
            "example.net": [records.A.create("a.example.net.", "10.0.0.3")],
            "example.org": [records.A.create("a.example.com.", "10.0.0.2")],
        })
    assert store.query("a.example.com.", RecordType.A) == (old,)
    assert store.query("a.example.net.", RecordType.A) == ()

    new = records.A.create("a.example.org.", "10.0.0.2")
    store.replace({"example.org": [new]})
    assert store.query("a.example.com.", RecordType.A) == ()
    assert store.query("a.example.org.", RecordType.A) == (new,)


def test_store_replace_from_another_thread_is_seen_whole():
    """Every query sees one generation's zones: never a mix, never none."""
    names = [f"h{i}.example.com." for i in range(20)]

    def generation(ip):
        return {"example.com": [records.A.create(n, ip) for n in names]}

    store = DNSStore()
    store.replace(generation("10.0.0.1"))
    stop = threading.Event()

    def replacer():
        flip = 0
        while not stop.is_set():
            flip ^= 1
            store.replace(generation(f"10.0.0.{1 + flip}"))

    thread = threading.Thread(target=replacer)
    thread.start()
    try:
        seen = set()
        for _ in range(3000):
            answers = [store.query(name, RecordType.A) for name in names[:1]]
            ips = {str(r.data) for a in answers for r in a}
            assert len(ips) == 1
            seen |= ips
    finally:
        stop.set()
        thread.join()
    assert seen <= {"10.0.0.1", "10.0.0.2"}
