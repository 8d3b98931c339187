"""A DNS zone: the records of one domain (mirror of
``aiomisc.service.dns.zone``)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import DefaultDict, Set, Tuple

from .records import DNSRecord, RecordType

RecordsType = DefaultDict[Tuple[str, RecordType], Set[DNSRecord]]

__all__ = ("DNSZone", "RecordsType")


class DNSZone:
    """Records by ``(name, type)``; every record name ends with the zone
    name (a plain suffix test, as aiomisc does)."""

    __slots__ = ("name", "records")

    records: RecordsType
    name: str

    def __init__(self, name: str, *records: DNSRecord) -> None:
        if not name.endswith("."):
            name += "."
        self.name = name
        self.records = defaultdict(set)
        for record in records:
            self.add_record(record)

    def _checked(self, record: DNSRecord) -> DNSRecord:
        if not self.check_record(record):
            raise ValueError(
                f"Record {record.name} does not belong to zone {self.name}",
            )
        return record

    def add_record(self, record: DNSRecord) -> None:
        self._checked(record)
        self.records[(record.name, record.type)].add(record)

    def remove_record(self, record: DNSRecord) -> None:
        key = (record.name, record.type)
        records = self.records.get(key)
        if records is None:
            return
        records.discard(record)
        if not records:
            del self.records[key]

    def get_records(
        self, name: str, record_type: RecordType,
    ) -> Sequence[DNSRecord]:
        if not name.endswith("."):
            name += "."
        # .get: a miss must not create an empty entry in the defaultdict.
        return tuple(self.records.get((name, record_type), ()))

    def check_record(self, record: DNSRecord) -> bool:
        return record.name.endswith(self.name)

    def replace(self, records: Iterable[DNSRecord]) -> None:
        """Replace every record of the zone at once.

        All records are checked first: if one does not belong to the zone,
        ``ValueError`` is raised and the zone is left as it was.  Queries see
        either the old records or the new ones, never a mix.
        """
        new_records: RecordsType = defaultdict(set)
        for record in records:
            self._checked(record)
            new_records[(record.name, record.type)].add(record)
        self.records = new_records
