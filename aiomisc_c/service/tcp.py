"""TCP server and clients (mirror of ``aiomisc.service.tcp``).

Beyond aiomisc 17: ``stop()`` also closes the connections that handlers
left open (so no transport outlives its service), a handler's exception is
logged instead of being left in an unretrieved task, and a robust client
closes a connection whose handler failed before it reconnects.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from ..utils import OptionsType, TimeoutType, awaitable
from ._sockets import (
    ConnectionTracker,
    PickledArguments,
    close_quietly,
    server_arguments,
    socket_factory,
    split_sockname,
    tls_protocol_factory,
    wait_server_closed,
)
from .base import SimpleClient, SimpleServer

__all__ = ("RobustTCPClient", "TCPClient", "TCPServer")

log = logging.getLogger(__name__)

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class StreamServerBase(PickledArguments, SimpleServer):
    """What the TCP and TLS servers share: the socket, the address
    properties, the handler tasks and the connections to close on stop."""

    PROTO_NAME = "tcp"

    def __init__(
        self,
        address: str | None = None,
        port: int | None = None,
        options: OptionsType = (),
        sock: socket.socket | None = None,
        **kwargs: Any,
    ):
        self.make_socket = socket_factory(address, port, options, sock)
        self._pickled_arguments = server_arguments(address, port, options, sock)
        self.socket: socket.socket | None = None
        self._bound_name: Any = None
        self._connections = ConnectionTracker()
        super().__init__(**kwargs)

    @abstractmethod
    async def handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> Any:
        raise NotImplementedError

    async def __client_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> Any:
        try:
            return await awaitable(self.handle_client)(  # type: ignore[no-untyped-call]
                reader, writer,
            )
        except Exception:
            # Nobody awaits this task: say what went wrong here.
            log.exception("Error when handling a %s client", self.PROTO_NAME)
            return None
        finally:
            # A connection its handler closed needs nothing from stop().
            if writer.transport.is_closing():
                self._connections.writers.discard(writer)

    def make_client_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> Any:
        connections = self._connections
        if connections.closed:
            # Accepted while the service was stopping.
            writer.transport.abort()
            return None
        connections.writers.add(writer)
        return self.create_task(self.__client_handler(reader, writer))

    async def _serve(self, ssl_context: Any = None) -> None:
        self._connections = connections = ConnectionTracker()
        self.socket = sock = self.make_socket()
        try:
            self._bound_name = sock.getsockname()
            if ssl_context is None:
                self.server = await asyncio.start_server(
                    self.make_client_handler, sock=sock,
                )
            else:
                # The TLS layer is set up here rather than by the loop, so
                # that stop() can reach connections still in the handshake.
                self.server = await self.loop.create_server(
                    tls_protocol_factory(
                        self.loop, ssl_context, self.make_client_handler,
                        connections.handshaking,
                    ),
                    sock=sock,
                )
        except BaseException:
            close_quietly(sock)
            raise

    async def stop(self, exc: Exception | None = None) -> None:
        # Refuse new connections first, then end the handlers, then close
        # what they left open.
        self._connections.closed = True
        if self.server:
            self.server.close()
        await super().stop(exc)
        await self._connections.close_all()
        if self.server:
            await wait_server_closed(self.server)

    @property
    def address(self) -> Any:
        """The bound address (the path of a Unix socket); None before
        start."""
        return split_sockname(self._bound_name)[0]

    @property
    def port(self) -> int | None:
        """The bound port (None before start and for a Unix socket)."""
        return split_sockname(self._bound_name)[1]  # type: ignore[no-any-return]


class TCPServer(StreamServerBase):
    """Calls ``handle_client(reader, writer)`` for every connection, each
    in a task of its own."""

    PROTO_NAME = "tcp"

    async def start(self) -> None:
        await self._serve()


class TCPClient(PickledArguments, SimpleClient, ABC):
    """Connects on start and runs ``handle_connection(reader, writer)``."""

    PROTO_NAME = "tcp"

    address: str
    port: int
    path: Path

    connect_attempts: int = 5
    connect_retry_timeout: TimeoutType = 3

    def __init__(
        self, address: str | None = None, port: int | None = None,
        **kwargs: Any,
    ):
        if not (address and port):
            raise RuntimeError('You should pass "address" and "port" couple')
        self.address = address
        self.port = port
        self._pickled_arguments = {"address": address, "port": port}
        self._connections = ConnectionTracker()
        self._start_task: asyncio.Task[Any] | None = None
        super().__init__(**kwargs)

    async def _open_connection(self) -> StreamPair:
        return await asyncio.open_connection(self.address, self.port)

    async def connect(self) -> StreamPair:
        """Up to ``connect_attempts`` tries, ``connect_retry_timeout``
        seconds apart; then the last ``ConnectionError`` is raised."""
        last_error: Exception | None = None
        for _ in range(self.connect_attempts):
            try:
                reader, writer = await self.__connect_once()
            except ConnectionError as e:
                last_error = e
                await asyncio.sleep(self.connect_retry_timeout)
                continue
            log.info(
                "Connected to %s://%s:%d",
                self.PROTO_NAME, self.address, self.port,
            )
            return reader, writer
        raise last_error or RuntimeError("Unknown exception occurred")

    async def __connect_once(self) -> StreamPair:
        # In a tracked task, so that stop() cancels a pending connect.
        task = self.create_task(self._open_connection())
        try:
            return await task
        except asyncio.CancelledError:
            # Cancelled just as the connection came up: do not leak it.
            if task.done() and not task.cancelled() and not task.exception():
                task.result()[1].transport.abort()
            raise

    @abstractmethod
    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        raise NotImplementedError

    def _track(self, writer: asyncio.StreamWriter) -> None:
        if self._connections.closed:
            self._connections = ConnectionTracker()
        self._connections.add_client_writer(writer)

    def _running_start(self) -> None:
        # stop() ends a start() still running (a robust client's reconnect
        # loop): the entrypoint cancels it only at shutdown.
        self._start_task = asyncio.current_task()

    async def start(self) -> None:
        self._running_start()
        reader, writer = await self.connect()
        self._track(writer)
        self.loop.call_soon(self.start_event.set)
        try:
            await self.create_task(self.handle_connection(reader, writer))
        except Exception:
            log.exception("Error when handle TCP connection")
            writer.close()
        else:
            log.info("Client %r communication has been ended", self)

    async def stop(self, exc: Exception | None = None) -> None:
        start_task, self._start_task = self._start_task, None
        if start_task is not None and start_task is not asyncio.current_task():
            start_task.cancel()
            await asyncio.wait((start_task,))
        await super().stop(exc)
        await self._connections.close_all()


class RobustTCPClient(TCPClient, ABC):
    """A client that reconnects after its handler fails.

    As in aiomisc 17: the handler raising means "reconnect after
    ``reconnect_timeout``"; the handler returning ends ``start()``; if
    ``connect()`` gives up, ``start()`` ends too, unless an earlier handler
    run failed (then it keeps trying).  ``connected`` is set while a
    connection is up.
    """

    reconnect_timeout: TimeoutType = 5
    connected: asyncio.Event

    async def start(self) -> None:
        self._running_start()
        self.connected = asyncio.Event()

        while True:
            try:
                reader, writer = await self.connect()
                self._track(writer)
                self.connected.set()

                if not self.start_event.is_set():
                    self.start_event.set()

                try:
                    await self.create_task(
                        self.handle_connection(reader, writer),
                    )
                except Exception:
                    # The connection is in an unknown state: drop it.
                    writer.close()
                    raise
                self.connected.clear()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "Error when handle TCP connection, "
                    "reconnecting after %.3f seconds",
                    self.reconnect_timeout,
                )

            if not self.connected.is_set():
                return
            await asyncio.sleep(self.reconnect_timeout)
