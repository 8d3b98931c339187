"""Pieces shared by the socket services (TCP, TLS, UDP): the socket factory
chosen from the constructor arguments, the bound-address properties, the
pickled constructor arguments, and the bookkeeping that lets a stream server
close every connection it accepted."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from asyncio import sslproto
from collections.abc import Callable
from functools import partial
from typing import Any

from ..utils import OptionsType, bind_socket

log = logging.getLogger(__name__)

SOCKET_REQUIRED = (
    'You should pass socket instance or "address" and "port" couple'
)
SOCK_NOT_A_SOCKET = "sock must be socket instance"

# Key of the constructor arguments in a pickled service's state.
_ARGUMENTS_KEY = "__aiomisc_c_arguments__"

# How long stop() lets an accepted connection close gracefully (flush its
# buffer, the TLS close_notify exchange) before aborting it.
CONNECTION_CLOSE_TIMEOUT = 1.0


def socket_factory(
    address: str | None,
    port: int | None,
    options: OptionsType,
    sock: socket.socket | None,
    *bind_args: Any,
    **bind_kwargs: Any,
) -> Callable[[], socket.socket]:
    """``make_socket`` of a server: a ``bind_socket`` partial, or a function
    returning the given socket."""
    if not sock:
        if address is None or port is None:
            raise RuntimeError(SOCKET_REQUIRED)
        return partial(
            bind_socket, *bind_args, address=address, port=port,
            options=options, **bind_kwargs,
        )
    if not isinstance(sock, socket.socket):
        raise ValueError(SOCK_NOT_A_SOCKET)
    return partial(_given, sock)


def _given(sock: socket.socket) -> socket.socket:
    return sock


def split_sockname(name: Any) -> tuple[Any, Any]:
    """``(address, port)`` of a ``getsockname()`` result; a Unix socket
    has its path as address and no port."""
    if name is None:
        return None, None
    if isinstance(name, (str, bytes)):
        return name, None
    return name[0], name[1]


def close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()


def server_arguments(
    address: str | None, port: int | None, options: OptionsType,
    sock: socket.socket | None,
) -> dict[str, Any]:
    """What a pickled server keeps of its socket arguments: a given socket
    does not travel (see :class:`PickledArguments`)."""
    if sock:
        return {"options": options, _SOCKET_GIVEN: True}
    return {"address": address, "port": port, "options": options}


_SOCKET_GIVEN = "socket_given"


def _socket_not_pickled() -> socket.socket:
    raise RuntimeError(
        f"{SOCKET_REQUIRED}: the socket this server was built with is not "
        "pickled",
    )


class PickledArguments:
    """Pickling for services whose constructor takes more than keywords.

    ``Service`` pickles only the extra keywords; the address, port and
    friends of a socket service travel beside them, and unpickling runs
    ``__init__`` again so that the copy is complete.  A server built from a
    ``sock`` is copied without it: its copy fails at start.
    """

    _pickled_arguments: dict[str, Any]

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(
            super().__getstate__(),  # type: ignore[misc, call-overload, unused-ignore]
        )
        state[_ARGUMENTS_KEY] = self._pickled_arguments
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        keywords = dict(state)
        arguments = keywords.pop(_ARGUMENTS_KEY, None)
        if arguments is None:
            super().__setstate__(keywords)  # type: ignore[misc]
            return
        arguments = dict(arguments)
        socket_was_given = arguments.pop(_SOCKET_GIVEN, False)
        if socket_was_given:
            arguments.update(address="", port=0)
        self.__init__(**arguments, **keywords)  # type: ignore[misc]
        if socket_was_given:
            self.make_socket = _socket_not_pickled
            self._pickled_arguments = {**arguments, _SOCKET_GIVEN: True}


async def wait_server_closed(
    server: asyncio.AbstractServer,
    timeout: float = CONNECTION_CLOSE_TIMEOUT,
) -> None:
    """``server.wait_closed()``, bounded: from Python 3.12 on it also waits
    for every connection, and one this module does not know of (or one
    that ignores close) must not hold up a stop."""
    waiting = asyncio.ensure_future(server.wait_closed())
    done, _ = await asyncio.wait((waiting,), timeout=timeout)
    if done:
        waiting.result()
        return
    abort_clients = getattr(server, "abort_clients", None)   # Python 3.13
    if abort_clients is not None:
        abort_clients()
        done, _ = await asyncio.wait((waiting,), timeout=timeout)
    if not done:
        waiting.cancel()
        log.warning("%r still has connections after stop", server)


class HandshakingTLS(sslproto.SSLProtocol):
    """The TLS layer of one accepted connection, known to the server from
    accept on: until the handshake is over, the connection has no stream
    writer, and stop() aborts it through this."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, app_protocol: Any,
        context: ssl.SSLContext, handshaking: set[HandshakingTLS],
    ):
        super().__init__(
            loop, app_protocol, context,
            None,  # type: ignore[arg-type]  # no waiter
            server_side=True,
        )
        self.handshaking = handshaking
        self.raw_transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.raw_transport = transport
        self.handshaking.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.handshaking.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        super().connection_lost(exc)


def tls_protocol_factory(
    loop: asyncio.AbstractEventLoop,
    context: ssl.SSLContext,
    client_connected: Callable[..., Any],
    handshaking: set[HandshakingTLS],
) -> Callable[[], HandshakingTLS]:
    """What ``asyncio.start_server(..., ssl=context)`` builds for every
    connection (a stream protocol under a TLS layer), with the TLS layer
    tracked in ``handshaking`` until the streams are handed over."""

    def factory() -> HandshakingTLS:
        def connected(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        ) -> Any:
            handshaking.discard(tls)
            return client_connected(reader, writer)

        reader = asyncio.StreamReader(loop=loop)
        streams = asyncio.StreamReaderProtocol(reader, connected, loop=loop)
        tls = HandshakingTLS(loop, streams, context, handshaking)
        return tls

    return factory


class ConnectionTracker:
    """The stream writers of the connections a service opened or accepted,
    so that stop() can close those its handlers left open.  A server adds
    a writer when it accepts the connection and drops it when the handler
    ends with the connection closed."""

    __slots__ = ("writers", "handshaking", "closed")

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()
        self.handshaking: set[HandshakingTLS] = set()
        self.closed = False

    def add_client_writer(self, writer: asyncio.StreamWriter) -> None:
        # Nothing tells when a client's writer is done with: forget the
        # closed ones now (a client keeps one or two at a time).
        self.writers = {
            known for known in self.writers
            if not known.transport.is_closing()
        }
        self.writers.add(writer)

    async def close_all(self, timeout: float = CONNECTION_CLOSE_TIMEOUT) -> None:
        self.closed = True
        await self._abort_handshakes(timeout)
        writers = list(self.writers)
        self.writers.clear()
        if not writers:
            return
        for writer in writers:
            if not writer.transport.is_closing():
                writer.close()
        closing = asyncio.ensure_future(asyncio.gather(
            *(writer.wait_closed() for writer in writers),
            return_exceptions=True,
        ))
        done, _ = await asyncio.wait((closing,), timeout=timeout)
        if done:
            return
        for writer in writers:
            writer.transport.abort()
        done, _ = await asyncio.wait((closing,), timeout=timeout)
        if not done:  # pragma: no cover - a transport that ignores abort()
            closing.cancel()
            log.warning("%d connection(s) did not close", len(writers))

    async def _abort_handshakes(self, timeout: float) -> None:
        # Nothing to say to a peer that is still shaking hands.
        pending = list(self.handshaking)
        self.handshaking.clear()
        for tls in pending:
            if tls.raw_transport is not None:
                tls.raw_transport.abort()
        if pending:
            await asyncio.wait([tls.lost for tls in pending], timeout=timeout)
