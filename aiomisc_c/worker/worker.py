"""One worker process: connect to the pool, authenticate, run jobs.

Jobs run in the main thread, one at a time.  The pool kills (SIGKILL) a
worker whose job's caller was cancelled, and the supervisor forks a new
one.  :data:`~aiomisc_c.worker.SIGNAL` sent by anyone else still
interrupts the running job: the handler raises
:class:`asyncio.CancelledError` inside it (only while a job runs: a late
signal never breaks the worker between jobs), and the caller gets
:class:`asyncio.CancelledError`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import sys
import traceback
from types import TracebackType
from typing import Any, Optional, Type

from . import SIGNAL, AddressType, PacketTypes
from .protocol import (
    ADDRESS_FAMILY, MAX_PACKET_SIZE, PACKET_HEADER, PICKLE_PROTOCOL,
    PacketTooLarge, SocketIOProtocol, pack_handshake, unpack_request,
)

log = logging.getLogger(__name__)

RESULT = int(PacketTypes.RESULT)
EXCEPTION = int(PacketTypes.EXCEPTION)
CANCELLED = int(PacketTypes.CANCELLED)

# True while a job runs: the cancel signal interrupts jobs only.
_BUSY = False


def on_cancel_signal(*_: Any) -> None:
    if _BUSY:
        raise asyncio.CancelledError


def on_exception(
    exc_type: Optional[Type[BaseException]],
    exc_value: Optional[BaseException],
    exc_tb: Optional[TracebackType],
) -> None:
    if exc_type is None or exc_value is None or exc_tb is None:
        return
    pid = os.getpid()
    log.error(
        "Unhandled exception in worker PID: %d", pid,
        exc_info=(exc_type, exc_value, exc_tb), extra={"pid": pid},
    )


def _exception_payload(exc: BaseException, func: Any) -> bytes:
    """A pickled ``(EXCEPTION, exc, traceback text)``; an exception that
    can not be pickled is replaced by a ``RuntimeError`` naming it."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        return pickle.dumps((EXCEPTION, exc, text), protocol=PICKLE_PROTOCOL)
    except Exception as pickle_error:
        substitute = RuntimeError(
            f"{func!r} raised {type(exc).__qualname__}: {exc} "
            f"(which can not be pickled: {pickle_error})",
        )
        return pickle.dumps((EXCEPTION, substitute, text), protocol=PICKLE_PROTOCOL)


def _run_job(payload: Any) -> bytes:
    """Run one request (see :func:`~.protocol.pack_request`); the pickled
    reply."""
    global _BUSY
    func: Any = None
    try:
        func, args, kwargs = unpack_request(payload)
        _BUSY = True
        try:
            result = func(*args, **kwargs)
        finally:
            _BUSY = False
    except asyncio.CancelledError:
        return pickle.dumps((CANCELLED, None), protocol=PICKLE_PROTOCOL)
    except Exception as e:
        return _exception_payload(e, func)
    try:
        return pickle.dumps((RESULT, result), protocol=PICKLE_PROTOCOL)
    except Exception as e:
        error = pickle.PicklingError(
            f"Can not pickle the result of {func!r} "
            f"({type(result).__qualname__}): {e}",
        )
        error.__cause__ = e
        return _exception_payload(error, func)


def execute(protocol: SocketIOProtocol) -> None:
    """Receive one request, run it, send ``RESULT``, ``EXCEPTION`` or
    ``CANCELLED``."""
    reply = _run_job(protocol.receive_bytes())
    protocol._write(protocol.PACKET_HEADER.pack(len(reply)) + reply)


_HEADER_SIZE = PACKET_HEADER.size
_unpack_header = PACKET_HEADER.unpack_from
_pack_header = PACKET_HEADER.pack
_BUFFER_SIZE = 65536


def serve(sock: socket.socket) -> None:
    """Run requests from ``sock`` until the pool closes it: what
    :func:`execute` does, with one ``recv_into`` a preallocated buffer and
    one ``sendall`` per small job (no copy of the request)."""
    buffer = bytearray(_BUFFER_SIZE)
    view = memoryview(buffer)
    recv_into = sock.recv_into
    sendall = sock.sendall
    filled = 0
    while True:
        while filled < _HEADER_SIZE:
            received = recv_into(view[filled:])
            if not received:
                return
            filled += received
        (size,) = _unpack_header(buffer)
        if size > MAX_PACKET_SIZE:
            raise PacketTooLarge(f"Request of {size} bytes, limit {MAX_PACKET_SIZE}")
        end = _HEADER_SIZE + size
        if end > len(buffer):
            # A big request: a buffer of its size, for this one only.
            large = bytearray(end)
            large[:filled] = view[:filled]
            buffer, view = large, memoryview(large)
        while filled < end:
            received = recv_into(view[filled:end])
            if not received:
                return
            filled += received
        reply = _run_job(view[_HEADER_SIZE:end])
        filled -= end
        if filled:   # the pool sends one request at a time: never so far
            buffer[:filled] = buffer[end:end + filled]
        elif len(buffer) > _BUFFER_SIZE:
            buffer = bytearray(_BUFFER_SIZE)
            view = memoryview(buffer)
        sendall(_pack_header(len(reply)) + reply)


def _connect(address: AddressType, cookie: bytes, worker_id: bytes, kind: int) -> socket.socket:
    sock = socket.socket(ADDRESS_FAMILY, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        sock.sendall(pack_handshake(cookie, kind, worker_id, os.getpid()))
        answer = sock.recv(1)
        if answer != bytes((PacketTypes.AUTH_OK,)):
            raise RuntimeError(f"Failed to authorize worker on {address!r}")
    except BaseException:
        sock.close()
        raise
    return sock


def worker(address: AddressType, cookie: bytes, worker_id: bytes) -> None:
    """Serve jobs until the pool closes the connection."""
    sys.excepthook = on_exception
    signal.signal(SIGNAL, on_cancel_signal)
    try:
        sock = _connect(address, cookie, worker_id, PacketTypes.AUTH)
    except ConnectionError:
        return
    with sock:
        try:
            serve(sock)
        except ConnectionError:
            return


def bad_initializer(
    address: AddressType, cookie: bytes, worker_id: bytes, exc: BaseException,
) -> None:
    """Report the initializer's exception to the pool."""
    with _connect(address, cookie, worker_id, PacketTypes.BAD_INITIALIZER) as sock:
        sock.sendall(_with_header(_exception_payload(exc, None)))


def _with_header(payload: bytes) -> bytes:
    return SocketIOProtocol.PACKET_HEADER.pack(len(payload)) + payload
