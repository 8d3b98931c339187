"""Pieces shared by the socket services (TCP, TLS, UDP): the socket factory
chosen from the constructor arguments, the bound-address properties, the
pickled constructor arguments, and the bookkeeping that lets a stream server
close every connection it accepted."""
from __future__ import annotations

import asyncio
import logging
import socket
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


def socket_given(make_socket: Callable[[], socket.socket]) -> bool:
    return isinstance(make_socket, partial) and make_socket.func is _given


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
        state = dict(super().__getstate__())  # type: ignore[misc]
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


class ConnectionTracker:
    """The stream writers of the connections a server accepted, so that
    stop() can close those its handlers left open."""

    __slots__ = ("writers", "closed")

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()
        self.closed = False

    def add(
        self, writer: asyncio.StreamWriter, task: asyncio.Task | None,
    ) -> None:
        if task is None:
            # Nothing tells when such a writer is done with: forget the
            # closed ones now (a client keeps one or two at a time).
            self.writers = {
                known for known in self.writers
                if not known.transport.is_closing()
            }
        else:
            task.add_done_callback(partial(self._handler_done, writer))
        self.writers.add(writer)

    def _handler_done(self, writer: asyncio.StreamWriter, _: Any) -> None:
        # A writer the handler closed needs nothing more from stop().
        if writer.transport.is_closing():
            self.writers.discard(writer)

    async def close_all(self, timeout: float = CONNECTION_CLOSE_TIMEOUT) -> None:
        self.closed = True
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
