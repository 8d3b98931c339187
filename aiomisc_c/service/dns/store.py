"""The zones a DNS server answers from (mirror of
``aiomisc.service.dns.store``)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Optional, Tuple

from .records import DNSRecord, RecordType
from .tree import RadixTree
from .zone import DNSZone

__all__ = ("DNSStore",)


class DNSStore:
    """Zones in a radix tree keyed by reversed labels (``example.com.`` is
    ``("com", "example")``); a name is answered by its longest zone."""

    __slots__ = ("zones",)

    zones: RadixTree[DNSZone]

    def __init__(self) -> None:
        self.zones = RadixTree()

    def add_zone(self, zone: DNSZone) -> None:
        zone_tuple = self.get_reverse_tuple(zone.name)
        if self.zones.search(zone_tuple):
            raise ValueError(f"Zone {zone.name} already exists.")
        self.zones.insert(zone_tuple, zone)

    def remove_zone(self, zone_name: str) -> None:
        zone_tuple = self.get_reverse_tuple(zone_name)
        if not self.zones.search(zone_tuple):
            raise ValueError(f"Zone {zone_name} does not exist.")
        # The node stays in the tree, without a zone.
        self.zones.insert(zone_tuple, None)

    def get_zone(self, zone_name: str) -> Optional[DNSZone]:
        return self.zones.search(self.get_reverse_tuple(zone_name))

    def query(self, name: str, record_type: RecordType) -> Sequence[DNSRecord]:
        if not name.endswith("."):
            name += "."
        # One read of self.zones: a concurrent replace() is seen whole or
        # not at all.
        found = self.zones.find_prefix(self.get_reverse_tuple(name))
        if found is None:
            return ()
        return found[1].get_records(name, record_type)

    def get_zone_for_name(self, name: str) -> Optional[Tuple[str, ...]]:
        found = self.zones.find_prefix(self.get_reverse_tuple(name))
        return found[0] if found else None

    @staticmethod
    def get_reverse_tuple(zone_name: str) -> Tuple[str, ...]:
        return tuple(zone_name.strip(".").split("."))[::-1]

    def replace(self, zones_data: Mapping[str, Iterable[DNSRecord]]) -> None:
        """Replace all zones at once with ``{zone name: records}``.

        The new tree is built aside and swapped in with one assignment, so a
        query sees either the old zones or the new ones.  If any zone or
        record is invalid, ``ValueError`` is raised and nothing changes.
        Handy to reload a configuration from a file or a database.
        """
        new_zones: RadixTree[DNSZone] = RadixTree()
        for zone_name, records in zones_data.items():
            zone = DNSZone(zone_name, *records)
            new_zones.insert(self.get_reverse_tuple(zone.name), zone)
        self.zones = new_zones
