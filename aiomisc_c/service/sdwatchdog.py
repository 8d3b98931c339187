"""Adds SystemD watchdog support to the entrypoint."""
# The docstring above is the plugin's description (python -m
# aiomisc_c.plugins prints it): keep it one line, as aiomisc's.
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Optional

from .._compat import lazy_attributes

if TYPE_CHECKING:
    from ..utils import TimeoutType
    from ._sdwatchdog_service import SDWatchdogService
    from .base import Service

__all__ = ("SDWatchdogService",)

log = logging.getLogger(__name__)


def _get_watchdog_interval() -> Optional[TimeoutType]:
    """Seconds from ``WATCHDOG_USEC`` (set by systemd), or ``None``."""
    value = os.getenv("WATCHDOG_USEC")
    if value is None:
        return None
    return int(value) / 1000000.0


def _get_socket_addr() -> Optional[str]:
    """``NOTIFY_SOCKET`` (set by systemd); a leading ``@`` names a socket
    in the abstract namespace."""
    addr = os.getenv("NOTIFY_SOCKET")
    if addr is None:
        return None
    if addr[:1] == "@":
        addr = "\0" + addr[1:]
    return addr


WATCHDOG_INTERVAL: Optional[TimeoutType] = _get_watchdog_interval()


def filter_services(services: Iterable[Service]) -> Iterator[SDWatchdogService]:
    from ._sdwatchdog_service import SDWatchdogService

    for service in services:
        if isinstance(service, SDWatchdogService):
            yield service


async def _pre_start(*, services: tuple[Service, ...], **__: Any) -> None:
    for service in filter_services(services):
        if not service.socket_addr:
            log.debug(
                "NOTIFY_SOCKET not exported. Skipping service %r", service,
            )
            continue
        from ..compat import get_current_loop

        service.set_loop(get_current_loop())
        if await service.connect():
            await service.send(f"STATUS=Starting {len(services)} services")


async def _post_start(*, services: tuple[Service, ...], **__: Any) -> None:
    for service in filter_services(services):
        await service.send(f"STATUS=Started {len(services)} services")
        await service.send("READY=1")


async def _pre_stop(*, services: tuple[Service, ...], **__: Any) -> None:
    for service in filter_services(services):
        await service.send(f"STATUS=Stopping {len(services)} services")


async def _post_stop(*, services: tuple[Service, ...], **__: Any) -> None:
    for service in filter_services(services):
        await service.send("STOPPING=1")
        await service.disconnect()


def setup() -> None:
    """The plugin hook: notify systemd around the entrypoint's service
    starts and stops."""
    # Through the hooks module: `import aiomisc_c` sets plugins up, and
    # importing the entrypoint for them would slow every import down.
    from .._entrypoint_hooks import connect

    connect("PRE_START", _pre_start)
    connect("POST_START", _post_start)
    connect("PRE_STOP", _pre_stop)
    connect("POST_STOP", _post_stop)


# Every "import aiomisc_c" imports this module (it is a plugin): the service
# class, with the thread pool it needs, loads on first read.
lazy_attributes(globals(), {
    "SDWatchdogService": "aiomisc_c.service._sdwatchdog_service",
})
