"""``TCPProxy``: a TCP proxy for tests that delays, rewrites and drops
the traffic between a client and a server."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import (
    Any, Awaitable, Callable, Dict, Iterator, Optional, Set, Tuple, Type, Union,
)

from ..utils import awaitable
from ._ports import unused_port

log = logging.getLogger(__name__)

ProxyProcessorType = Callable[[bytes], Awaitable[bytes]]
TimeoutType = Union[int, float]


def delayed_future(timeout: TimeoutType, result: Any = True) -> asyncio.Future[Any]:
    """A future of the running loop resolved with ``result`` after
    ``timeout`` seconds (the timer is cancelled with the future)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(result)

    handle = loop.call_later(timeout, resolve)
    future.add_done_callback(lambda _: handle.cancel())
    return future


class Delay:
    """A pause before each chunk; setting ``timeout`` releases a chunk that
    waits already (so a shorter delay applies at once)."""

    __slots__ = ("_timeout", "future", "lock")

    def __init__(self) -> None:
        self._timeout: TimeoutType = 0
        self.future: Optional[asyncio.Future[Any]] = None
        self.lock = asyncio.Lock()

    @property
    def timeout(self) -> TimeoutType:
        return self._timeout

    @timeout.setter
    def timeout(self, value: TimeoutType) -> None:
        assert isinstance(value, (int, float)), value
        assert value >= 0, value
        self._timeout = value
        if self.future is not None and not self.future.done():
            self.future.set_result(True)

    async def wait(self) -> None:
        if self._timeout == 0:
            return
        async with self.lock:
            try:
                self.future = delayed_future(self._timeout)
                await self.future
            finally:
                self.future = None


async def _identity(body: bytes) -> bytes:
    return body


class TCPProxyClient:
    """One proxied connection: two pipes (client to server, server to
    client), each with its delay and content processor."""

    __slots__ = (
        "client_reader", "client_writer", "server_reader", "server_writer",
        "chunk_size", "tasks", "loop", "read_delay", "write_delay", "closing",
        "buffered", "_processors", "_client_repr", "_server_repr",
    )

    def __init__(
        self, client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        chunk_size: int = 64 * 1024, buffered: bool = False,
    ):
        self.loop = asyncio.get_running_loop()
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.server_reader: Optional[asyncio.StreamReader] = None
        self.server_writer: Optional[asyncio.StreamWriter] = None
        self.tasks: Tuple[asyncio.Task[Any], ...] = ()
        self.chunk_size = chunk_size
        self.read_delay = Delay()
        self.write_delay = Delay()
        self.closing: asyncio.Future[Any] = self.loop.create_future()
        self.buffered = bool(buffered)
        self._processors: Dict[str, ProxyProcessorType] = {
            "read": _identity, "write": _identity,
        }
        self._client_repr = ""
        self._server_repr = ""

    def _set_processor(self, name: str, value: Optional[Callable[..., Any]]) -> None:
        self._processors[name] = _identity if value is None else awaitable(value)

    @property
    def read_processor(self) -> ProxyProcessorType:
        """Applied to each chunk from the client to the server."""
        return self._processors["read"]

    @read_processor.setter
    def read_processor(self, value: Optional[Callable[..., Any]]) -> None:
        self._set_processor("read", value)

    @property
    def write_processor(self) -> ProxyProcessorType:
        """Applied to each chunk from the server to the client."""
        return self._processors["write"]

    @write_processor.setter
    def write_processor(self, value: Optional[Callable[..., Any]]) -> None:
        self._set_processor("write", value)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}[{id(self):x}]: "
            f"{self._client_repr} => {self._server_repr}>"
        )

    async def pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        processor_name: str, delay: Delay,
    ) -> None:
        try:
            while not reader.at_eof():
                chunk = await reader.read(self.chunk_size)
                if not chunk:
                    break
                if delay.timeout > 0:
                    log.debug(
                        "%r sleeping %.3f seconds on %s",
                        self, delay.timeout, processor_name,
                    )
                    await delay.wait()
                writer.write(await self._processors[processor_name](chunk))
                if not self.buffered:
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def connect(self, target_host: str, target_port: int) -> None:
        log.debug("Establishing connection for %r", self)
        self.server_reader, self.server_writer = await asyncio.open_connection(
            host=target_host, port=target_port,
        )
        self._client_repr = _peer(self.client_writer)
        self._server_repr = _peer(self.server_writer)
        self.tasks = (
            self.loop.create_task(self.pipe(
                self.server_reader, self.client_writer, "write",
                self.write_delay,
            )),
            self.loop.create_task(self.pipe(
                self.client_reader, self.server_writer, "read",
                self.read_delay,
            )),
        )

    async def close(self) -> None:
        log.debug("Closing %r", self)
        if self.closing.done():
            return
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Sockets the pipes never reached (e.g. the upstream connect failed).
        for writer in (self.client_writer, self.server_writer):
            if writer is not None:
                writer.close()
        if not self.closing.done():
            self.closing.set_result(True)


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername") or ("?", 0)
    return ":".join(map(str, peer[:2]))


class TCPProxy:
    """A TCP proxy on ``listen_host:proxy_port`` to
    ``target_host:target_port``.

    ``set_delay``/``slowdown`` delay each chunk, ``set_content_processors``
    rewrites them, ``disconnect_all`` drops every connection; settings apply
    to current and future connections.
    """

    DEFAULT_TIMEOUT = 30

    __slots__ = (
        "proxy_port", "clients", "server", "proxy_host", "target_port",
        "target_host", "listen_host", "read_delay", "write_delay",
        "read_processor", "write_processor", "buffered",
    )

    ClientType = Tuple[asyncio.StreamReader, asyncio.StreamWriter]

    def __init__(
        self, target_host: str, target_port: int,
        listen_host: str = "127.0.0.1", buffered: bool = True,
    ):
        self.target_host = target_host
        self.target_port = target_port
        self.proxy_host = listen_host
        self.listen_host = listen_host
        self.proxy_port = unused_port()
        self.read_delay: TimeoutType = 0
        self.write_delay: TimeoutType = 0
        self.buffered = buffered
        self.clients: Set[TCPProxyClient] = set()
        self.server: Optional[asyncio.AbstractServer] = None
        self.read_processor: Optional[Callable[..., Any]] = None
        self.write_processor: Optional[Callable[..., Any]] = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}[{id(self):x}]: "
            f"tcp://{self.proxy_host}:{self.proxy_port} => "
            f"tcp://{self.target_host}:{self.target_port}>"
        )

    async def start(
        self, timeout: Optional[TimeoutType] = None,
    ) -> asyncio.AbstractServer:
        log.debug("Starting %r", self)
        self.server = await asyncio.wait_for(
            asyncio.start_server(
                self._handle_client, host=self.proxy_host, port=self.proxy_port,
            ),
            timeout=timeout,
        )
        return self.server

    async def create_client(self) -> "TCPProxy.ClientType":
        """A connection to the proxy: ``(reader, writer)``."""
        log.debug("Creating client for %r", self)
        return await asyncio.open_connection(self.proxy_host, self.proxy_port)

    async def __aenter__(self) -> "TCPProxy":
        if self.server is None:
            await self.start(timeout=self.DEFAULT_TIMEOUT)
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException], exc_tb: Any,
    ) -> None:
        await self.close(timeout=self.DEFAULT_TIMEOUT)

    async def close(self, timeout: Optional[TimeoutType] = None) -> None:
        async def close() -> None:
            await self.disconnect_all()
            if self.server is None:
                return
            self.server.close()
            await self.server.wait_closed()

        await asyncio.wait_for(close(), timeout=timeout)

    def set_delay(
        self, read_delay: TimeoutType, write_delay: TimeoutType = 0,
    ) -> None:
        """Delay each chunk to the server by ``read_delay`` seconds and each
        chunk to the client by ``write_delay``."""
        log.debug("Setting delay [R/W %f %f]", read_delay, write_delay)
        for client in self.clients:
            client.read_delay.timeout = read_delay
            client.write_delay.timeout = write_delay
        self.read_delay = read_delay
        self.write_delay = write_delay

    def set_content_processors(
        self, read: Optional[Callable[..., Any]], write: Optional[Callable[..., Any]],
    ) -> None:
        """``read`` rewrites chunks to the server, ``write`` chunks to the
        client (sync or async callables; ``None`` leaves them unchanged)."""
        log.debug(
            "Setting content processors for %r: read=%r write=%r",
            self, read, write,
        )
        for client in self.clients:
            client.read_processor = read
            client.write_processor = write
        self.read_processor = read
        self.write_processor = write

    def disconnect_all(self) -> asyncio.Future[Any]:
        """Close every proxied connection; the clients then read EOF."""
        log.debug("Disconnecting %s clients of %r", len(self.clients), self)
        return asyncio.ensure_future(asyncio.gather(
            *[client.close() for client in self.clients],
            return_exceptions=True,
        ))

    async def _handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        client = TCPProxyClient(reader, writer, buffered=self.buffered)
        self.clients.add(client)
        client.closing.add_done_callback(lambda _: self.clients.discard(client))
        client.read_delay.timeout = self.read_delay
        client.write_delay.timeout = self.write_delay
        client.read_processor = self.read_processor
        client.write_processor = self.write_processor
        try:
            await client.connect(self.target_host, self.target_port)
        except OSError:
            log.exception("%r cannot connect to the target", self)
            await client.close()

    @contextlib.contextmanager
    def slowdown(
        self, read_delay: TimeoutType = 0, write_delay: TimeoutType = 0,
    ) -> Iterator[None]:
        """Delays for the duration of the ``with`` block."""
        old_read_delay, old_write_delay = self.read_delay, self.write_delay
        self.set_delay(read_delay, write_delay)
        try:
            yield
        finally:
            self.set_delay(old_read_delay, old_write_delay)
