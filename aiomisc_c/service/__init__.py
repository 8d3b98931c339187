"""Services (mirror of ``aiomisc.service``).

Importing this package never requires an optional dependency: services that
need one live only in their own submodules.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# "as" marks explicit re-exports for type checkers.
from .base import (
    Service as Service, ServiceMeta as ServiceMeta, SimpleServer as SimpleServer,
)

if TYPE_CHECKING:  # imported on first access at run time (see __getattr__)
    from .tcp import (
        RobustTCPClient as RobustTCPClient, TCPClient as TCPClient,
        TCPServer as TCPServer,
    )
    from .tls import (
        RobustTLSClient as RobustTLSClient, TLSClient as TLSClient,
        TLSServer as TLSServer,
    )
    from .udp import UDPServer as UDPServer

# The dependency-free service submodules re-exported here, by name.  Each is
# imported on first access of one of its names (never by importing this
# package), and only when it is present: they are written separately from
# the base.
_REEXPORTED = {
    "process": ("ProcessService", "RespawningProcessService"),
    "profiler": ("Profiler",),
    "tcp": ("RobustTCPClient", "TCPClient", "TCPServer"),
    "tls": ("RobustTLSClient", "TLSClient", "TLSServer"),
    "tracer": ("MemoryTracer",),
    "udp": ("UDPServer",),
}
_MODULE_OF = {
    attribute: module_name
    for module_name, attributes in _REEXPORTED.items()
    for attribute in attributes
}
_BASE_NAMES = ("Service", "ServiceMeta", "SimpleServer")


def _present(module_name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(f"{__name__}.{module_name}") is not None


def __getattr__(name: str) -> Any:
    if name == "__all__":
        names = list(_BASE_NAMES)
        for module_name, attributes in _REEXPORTED.items():
            if _present(module_name):
                names.extend(attributes)
        globals()["__all__"] = value = tuple(sorted(names))
        return value
    module_name = _MODULE_OF.get(name)  # type: ignore[assignment]
    if module_name is None or not _present(module_name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    globals()[name] = value = getattr(module, name)
    return value
