"""Adds SystemD watchdog support to the entrypoint."""
# The docstring above is the plugin's description (python -m
# aiomisc_c.plugins prints it): keep it one line, as aiomisc's.
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Optional

from ..compat import get_current_loop
from ..thread_pool import threaded
from ..utils import TimeoutType
from .base import Service

if TYPE_CHECKING:
    from ..periodic import PeriodicCallback

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


class SDWatchdogService(Service):
    """Tells systemd (through ``NOTIFY_SOCKET``) the state of the
    entrypoint's services, and pings its watchdog every half
    ``watchdog_interval``.

    Without ``NOTIFY_SOCKET`` it does nothing.  A notify socket that cannot
    be reached is logged and the application keeps running.
    """

    socket: socket.socket
    socket_addr: Optional[str]
    watchdog_interval: Optional[TimeoutType] = None
    watchdog_timer: PeriodicCallback
    name: str = "systemd-watchdog"

    def __init__(
        self,
        watchdog_interval: Optional[TimeoutType] = WATCHDOG_INTERVAL,
        **kwargs: Any,
    ):
        self.watchdog_interval = watchdog_interval
        self.socket_addr = _get_socket_addr()
        super().__init__(**kwargs)

    @property
    def is_connected(self) -> bool:
        return "socket" in self.__dict__

    async def send(self, payload: str) -> None:
        if not self.is_connected:
            return
        try:
            await self.loop.sock_sendall(self.socket, payload.encode())
        except (ConnectionError, OSError) as e:
            log.warning("SystemD notify socket communication problem: %r", e)

    @threaded
    def connect(self) -> bool:
        if self.socket_addr is None:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.connect(self.socket_addr)
        except OSError as e:
            sock.close()
            log.warning(
                "SystemD notify socket %r is not reachable: %r",
                self.socket_addr, e,
            )
            return False
        sock.setblocking(False)
        self.socket = sock
        return True

    @threaded
    def disconnect(self) -> None:
        if not self.is_connected:
            return
        sock = self.__dict__.pop("socket")
        self.socket_addr = None
        sock.close()

    async def start(self) -> None:
        from ..periodic import PeriodicCallback

        self.watchdog_timer = PeriodicCallback(
            self.send, "WATCHDOG=1", name=self.name,
        )
        if not self.is_connected or self.watchdog_interval is None:
            return

        if self.watchdog_interval != WATCHDOG_INTERVAL:
            watchdog_usec = int(self.watchdog_interval * 1000000)
            await self.send(f"WATCHDOG_USEC={watchdog_usec}")

        self.start_event.set()
        # Twice per interval, so that one late ping is not fatal.
        self.watchdog_timer.start(self.watchdog_interval / 2)

    async def stop(self, exception: Optional[Exception] = None) -> None:
        timer = self.__dict__.get("watchdog_timer")
        if timer is not None:
            await timer.stop(return_exceptions=True)


def filter_services(services: Iterable[Service]) -> Iterator[SDWatchdogService]:
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
