"""Services (mirror of ``aiomisc.service``).

Importing this package never requires an optional dependency: services that
need one live only in their own submodules.
"""
from __future__ import annotations

import importlib
import importlib.util

from .base import Service, ServiceMeta, SimpleServer  # noqa: F401 - re-exported

# The dependency-free service submodules re-exported here, by name; each is
# imported when present (they are written separately from the base).
_REEXPORTED = {
    "process": ("ProcessService", "RespawningProcessService"),
    "profiler": ("Profiler",),
    "tcp": ("RobustTCPClient", "TCPClient", "TCPServer"),
    "tls": ("RobustTLSClient", "TLSClient", "TLSServer"),
    "tracer": ("MemoryTracer",),
    "udp": ("UDPServer",),
}


def _reexport() -> list[str]:
    names = []
    for module_name, attributes in _REEXPORTED.items():
        if importlib.util.find_spec(f"{__name__}.{module_name}") is None:
            continue
        module = importlib.import_module(f"{__name__}.{module_name}")
        for attribute in attributes:
            globals()[attribute] = getattr(module, attribute)
            names.append(attribute)
    return names


__all__ = tuple(sorted(["Service", "ServiceMeta", "SimpleServer", *_reexport()]))
