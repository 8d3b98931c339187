"""The systemd watchdog service (:mod:`aiomisc_c.service.sdwatchdog` offers
it: that module is a plugin, imported by every ``import aiomisc_c``, and
loads this one on first use)."""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Optional

from ..thread_pool import threaded
from ..utils import TimeoutType
from . import sdwatchdog as _plugin
from .base import Service
from .sdwatchdog import _get_socket_addr, log

if TYPE_CHECKING:
    from ..periodic import PeriodicCallback

__all__ = ("SDWatchdogService",)


class SDWatchdogService(Service):
    """Tells systemd (through ``NOTIFY_SOCKET``) the state of the
    entrypoint's services, and pings its watchdog every half
    ``watchdog_interval``.

    Without ``NOTIFY_SOCKET`` it does nothing.  A notify socket that cannot
    be reached is logged and the application keeps running.
    """

    __module__ = "aiomisc_c.service.sdwatchdog"    # where it is offered

    socket: socket.socket
    socket_addr: Optional[str]
    watchdog_interval: Optional[TimeoutType] = None
    watchdog_timer: PeriodicCallback
    name: str = "systemd-watchdog"

    def __init__(
        self,
        watchdog_interval: Optional[TimeoutType] = _plugin.WATCHDOG_INTERVAL,
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

        if self.watchdog_interval != _plugin.WATCHDOG_INTERVAL:
            watchdog_usec = int(self.watchdog_interval * 1000000)
            await self.send(f"WATCHDOG_USEC={watchdog_usec}")

        self.start_event.set()
        # Twice per interval, so that one late ping is not fatal.
        self.watchdog_timer.start(self.watchdog_interval / 2)

    async def stop(self, exception: Optional[Exception] = None) -> None:
        timer = self.__dict__.get("watchdog_timer")
        if timer is not None:
            await timer.stop(return_exceptions=True)
