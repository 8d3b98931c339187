"""Sends the ``aiocarbon`` metrics to Graphite/carbon periodically (mirror
of ``aiomisc.service.carbon``).  Needs ``pip install 'aiomisc_c[carbon]'``."""
from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable
from types import MappingProxyType
from typing import Optional

try:
    from aiocarbon.protocol.pickle import PickleClient
    from aiocarbon.protocol.tcp import TCPClient
    from aiocarbon.protocol.udp import UDPClient
    from aiocarbon.setup import set_client
    from aiocarbon.storage import TotalStorage
except ImportError as exc:  # pragma: no cover - aiocarbon is in the test extra
    raise ImportError(
        "aiomisc_c.service.carbon needs aiocarbon>=0.17 (Python 3.11+): "
        "pip install 'aiomisc_c[carbon]'",
        name=exc.name,
    ) from exc

from aiocarbon.protocol.base import BaseClient

# aiocarbon before 0.17 passes loop= to asyncio.Lock() and asyncio.sleep(),
# which Python 3.10 removed: its clients fail on first use.
if "loop" in inspect.signature(BaseClient.__init__).parameters:
    raise ImportError(
        "aiomisc_c.service.carbon needs aiocarbon>=0.17 (Python 3.11+; "
        "older releases do not run on Python 3.10+): "
        "pip install 'aiomisc_c[carbon]'",
        name="aiocarbon",
    )

from ..periodic import PeriodicCallback  # noqa: E402
from .base import Service  # noqa: E402

__all__ = ("PROTOCOLS", "CarbonSender", "strip_carbon_ns")

log = logging.getLogger(__name__)


def strip_carbon_ns(string: str) -> str:
    """One namespace part: runs of characters carbon does not accept become
    ``_``, outer ``_`` are dropped, the rest is lower-cased."""
    return re.sub(r"[^\w\d\-]+", "_", string).strip("_").lower()


PROTOCOLS = MappingProxyType(
    {"udp": UDPClient, "tcp": TCPClient, "pickle": PickleClient},
)


class CarbonSender(Service):
    """Creates the ``aiocarbon`` client of ``protocol`` for
    ``host``:``port``, makes it the global client (``aiocarbon`` metrics go
    to it) and sends what was collected every ``send_interval`` seconds."""

    host: str = "127.0.0.1"
    port: int = 2003
    send_interval: int = 5
    protocol: str = "udp"
    namespace: Iterable[str] = ("",)
    storage = TotalStorage
    name: str = "carbon-sender"
    _handle: PeriodicCallback

    async def start(self) -> None:
        namespace = ".".join(strip_carbon_ns(item) for item in self.namespace)

        client = PROTOCOLS[self.protocol](
            self.host, self.port, namespace=namespace, storage=self.storage(),
        )
        set_client(client)
        self._client = client

        self._handle = PeriodicCallback(client.send, name=self.name)
        self._handle.start(self.send_interval, loop=self.loop)
        log.info(
            "Periodic carbon metrics sender started. Send to %s://%s:%d with "
            "interval %rs",
            self.protocol, self.host, self.port, self.send_interval,
        )

    async def stop(self, exc: Optional[Exception] = None) -> None:
        await self._handle.stop(return_exceptions=True)
        # aiocarbon's UDP client keeps a socket it never closes itself.
        sock = getattr(self.__dict__.get("_client"), "socket", None)
        if sock is not None and not getattr(sock, "closed", True):
            sock.close()
