"""An authoritative DNS server (mirror of ``aiomisc.service.dns``).

Needs ``dnslib``: ``pip install 'aiomisc_c[dns]'``.
"""
from . import records
from .service import DNSServer, TCPDNSServer, UDPDNSServer
from .store import DNSStore
from .zone import DNSZone

__all__ = (
    "DNSServer",
    "DNSStore",
    "DNSZone",
    "TCPDNSServer",
    "UDPDNSServer",
    "records",
)
