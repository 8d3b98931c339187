"""UDP server (mirror of ``aiomisc.service.udp``).

Every datagram goes to ``handle_datagram(data, addr)``, each in a task of
its own.  Beyond aiomisc 17: a failing handler is logged instead of being
left in an unretrieved task, and ``stop()`` returns once the socket is
closed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union

from ..utils import OptionsType, awaitable
from ._sockets import (
    CONNECTION_CLOSE_TIMEOUT,
    PickledArguments,
    close_quietly,
    server_arguments,
    socket_factory,
    split_sockname,
)
from .base import SimpleServer

__all__ = ("HandleDatagramType", "TransportType", "UDPServer")

log = logging.getLogger(__name__)

TransportType = Optional[asyncio.DatagramTransport]
HandleDatagramType = Callable[[bytes, tuple[Any, ...]], Union[Awaitable[None], None]]


class UDPServer(PickledArguments, SimpleServer):
    class UDPSimpleProtocol(asyncio.DatagramProtocol):
        def __init__(
            self,
            handle_datagram: HandleDatagramType,
            task_factory: Callable[..., asyncio.Task[Any]],
        ):
            super().__init__()
            self.task_factory = task_factory
            self.handler = awaitable(handle_datagram)
            self.transport: TransportType = None
            self.loop: asyncio.AbstractEventLoop | None = None
            self.closed: asyncio.Future[None] | None = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.loop = asyncio.get_running_loop()
            self.closed = self.loop.create_future()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.closed is not None and not self.closed.done():
                self.closed.set_result(None)

        def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
            try:
                # A plain function runs right here; a coroutine becomes a task.
                handling = self.handler(data, addr)
            except Exception:
                log.exception("Error when handling a datagram")
                return
            self.task_factory(handling)

    def __init__(
        self,
        address: str | None = None,
        port: int | None = None,
        options: OptionsType = (),
        sock: socket.socket | None = None,
        **kwargs: Any,
    ):
        family = socket.AF_INET6 if address and ":" in address else socket.AF_INET
        self.make_socket = socket_factory(
            address, port, options, sock, family, socket.SOCK_DGRAM,
            proto_name="udp",
        )
        self._pickled_arguments = server_arguments(address, port, options, sock)
        self._transport: TransportType = None
        self._protocol: asyncio.DatagramProtocol | None = None
        self._bound_name: Any = None
        self.socket: socket.socket | None = None
        super().__init__(**kwargs)

    def create_task(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = self.loop.create_task(coro)
        self.tasks.add(task)
        # One callback per datagram task: forget it, and report a failure
        # nobody else would see.
        task.add_done_callback(self.__task_done)
        return task

    def __task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "Error when handling a datagram", exc_info=task.exception(),
            )

    def sendto(self, data: bytes, addr: tuple[Any, ...]) -> Any:
        if self._transport is None:
            raise RuntimeError
        return self._transport.sendto(data, addr)

    @abstractmethod
    async def handle_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self.socket = sock = self.make_socket()
        try:
            self._bound_name = sock.getsockname()
            (
                self._transport,
                self._protocol,
            ) = await self.loop.create_datagram_endpoint(
                lambda: UDPServer.UDPSimpleProtocol(
                    self.handle_datagram, self.create_task,
                ),
                sock=sock,
            )
        except BaseException:
            close_quietly(sock)
            raise

    @property
    def address(self) -> Any:
        """The bound address (the path of a Unix socket); None before
        start."""
        return split_sockname(self._bound_name)[0]

    @property
    def port(self) -> int | None:
        """The bound port (None before start and for a Unix socket)."""
        return split_sockname(self._bound_name)[1]  # type: ignore[no-any-return]

    async def stop(self, exc: Exception | None = None) -> None:
        await super().stop(exc)
        transport, self._transport = self._transport, None
        if transport is None:
            return
        transport.close()
        closed = getattr(self._protocol, "closed", None)
        if closed is not None:
            await asyncio.wait((closed,), timeout=CONNECTION_CLOSE_TIMEOUT)
