"""Framing between a :class:`~aiomisc_c.WorkerPool` and its workers.

Two kinds of messages travel on a worker connection:

* the handshake, sent once by the worker: a fixed-size binary message
  (:data:`HANDSHAKE`: magic, kind, worker id, HMAC-SHA256 digest, pid).  The
  pool checks it with :func:`hmac.compare_digest` and reads nothing else from
  a peer that fails it: no pickle is ever loaded from an unauthenticated
  peer, and no length it announces is ever trusted;
* frames, after the pool answered ``AUTH_OK``: a 4-byte big-endian length
  (:attr:`Protocol.PACKET_HEADER`) and a payload of that many bytes.  Lengths
  above :data:`MAX_PACKET_SIZE` end the connection.  A reply's payload is a
  pickle; a request's is the 4-byte length of a pickle of the function, that
  pickle, then a pickle of ``(args, kwargs)`` (:func:`pack_request`): the
  function's pickle is computed once per function on the pool's side and
  unpickled once per function on the worker's side.

The supervisor's settings (sent by the pool over the supervisor's stdin, a
pipe only the two processes share) use the same frames.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import pickle
import platform
import socket
from abc import ABC, abstractmethod
from struct import Struct
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import IO, Any, BinaryIO, Dict, NamedTuple, Optional, Tuple, Union

__all__ = (
    "ADDRESS_FAMILY", "AsyncProtocol", "FileIOProtocol", "HANDSHAKE",
    "HANDSHAKE_MAGIC", "Handshake", "MAX_PACKET_SIZE", "PacketTooLarge",
    "Protocol", "SocketIOProtocol", "WORKER_ID_SIZE", "handshake_digest",
    "pack_handshake", "pack_request", "unpack_handshake", "unpack_request",
)

ADDRESS_FAMILY = (
    socket.AF_INET6 if platform.system() == "Windows" else socket.AF_UNIX
)

PACKET_HEADER = Struct("!L")
# Frames larger than this end the connection (both directions).
MAX_PACKET_SIZE = 1 << 30
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL

WORKER_ID_SIZE = 16
HANDSHAKE_MAGIC = b"AMCW"
# magic, kind (PacketTypes.AUTH or BAD_INITIALIZER), worker id, digest, pid
HANDSHAKE = Struct(f"!4sB{WORKER_ID_SIZE}s32sQ")
_SIGNED = Struct(f"!B{WORKER_ID_SIZE}sQ")


# A request frame: the frame's length, then the length of the function's
# pickle (both big-endian).
REQUEST_HEADER = Struct("!LL")
_FUNCTION_LENGTH = Struct("!L")
# Functions whose pickles (one side) or unpickled objects (other side) are
# remembered; the caches are emptied when they reach this size.
FUNCTION_CACHE_SIZE = 256
_function_pickles: Dict[Any, bytes] = {}
_unpickled_functions: Dict[bytes, Any] = {}


def _pickled_by_name(func: Any) -> bool:
    """``func`` pickles as a reference to a module attribute: its pickle
    never changes, and unpickling it twice gives the same object."""
    kind = type(func)
    if kind is FunctionType:
        return True
    return kind is BuiltinFunctionType and isinstance(func.__self__, ModuleType)


def _pickle_function(func: Any) -> bytes:
    # Only functions are looked up: equality is their identity.
    by_name = _pickled_by_name(func)
    if by_name:
        data = _function_pickles.get(func)
        if data is not None:
            return data
    data = pickle.dumps(func, protocol=PICKLE_PROTOCOL)
    if by_name:
        if len(_function_pickles) >= FUNCTION_CACHE_SIZE:
            _function_pickles.clear()
        _function_pickles[func] = data
    return data


def pack_request(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bytes:
    """One request frame (header included) for ``func(*args, **kwargs)``."""
    function = _pickle_function(func)
    arguments = pickle.dumps((args, kwargs), protocol=PICKLE_PROTOCOL)
    size = _FUNCTION_LENGTH.size + len(function) + len(arguments)
    return REQUEST_HEADER.pack(size, len(function)) + function + arguments


def unpack_request(payload: Any) -> Tuple[Any, Tuple[Any, ...], Dict[str, Any]]:
    """``(func, args, kwargs)`` from a request's payload (bytes-like)."""
    view = memoryview(payload)
    (length,) = _FUNCTION_LENGTH.unpack_from(view)
    start = _FUNCTION_LENGTH.size
    if length > len(view) - start:
        raise ValueError("Malformed request: the function overruns the frame")
    key = bytes(view[start:start + length])
    func = _unpickled_functions.get(key)
    if func is None:
        func = pickle.loads(key)
        if _pickled_by_name(func):
            if len(_unpickled_functions) >= FUNCTION_CACHE_SIZE:
                _unpickled_functions.clear()
            _unpickled_functions[key] = func
    args, kwargs = pickle.loads(view[start + length:])
    return func, args, kwargs


class PacketTooLarge(ConnectionError):
    """A peer announced a frame longer than :data:`MAX_PACKET_SIZE`."""


class Handshake(NamedTuple):
    kind: int
    worker_id: bytes
    digest: bytes
    pid: int


def handshake_digest(cookie: bytes, kind: int, worker_id: bytes, pid: int) -> bytes:
    """HMAC-SHA256 of the handshake's kind, worker id and pid."""
    return hmac.new(
        cookie, _SIGNED.pack(kind, worker_id, pid), hashlib.sha256,
    ).digest()


def pack_handshake(cookie: bytes, kind: int, worker_id: bytes, pid: int) -> bytes:
    if len(worker_id) != WORKER_ID_SIZE:
        raise ValueError(f"worker id must be {WORKER_ID_SIZE} bytes")
    digest = handshake_digest(cookie, kind, worker_id, pid)
    return HANDSHAKE.pack(HANDSHAKE_MAGIC, kind, worker_id, digest, pid)


def unpack_handshake(data: bytes) -> Optional[Handshake]:
    """The fields of a handshake, or ``None`` when ``data`` is not one."""
    if len(data) != HANDSHAKE.size:
        return None
    magic, kind, worker_id, digest, pid = HANDSHAKE.unpack(data)
    if magic != HANDSHAKE_MAGIC:
        return None
    return Handshake(kind, worker_id, digest, pid)


def _check_size(size: int) -> int:
    if size > MAX_PACKET_SIZE:
        raise PacketTooLarge(
            f"Packet of {size} bytes is larger than {MAX_PACKET_SIZE}",
        )
    return size


class Protocol(ABC):
    PACKET_HEADER = PACKET_HEADER

    @abstractmethod
    def _read(self, size: int) -> bytes:
        raise NotImplementedError

    @abstractmethod
    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _pack(self, payload: Any) -> bytes:
        data = pickle.dumps(payload, protocol=PICKLE_PROTOCOL)
        return self.PACKET_HEADER.pack(_check_size(len(data))) + data

    def send(self, payload: Any) -> None:
        self._write(self._pack(payload))

    def receive_bytes(self) -> bytes:
        """The payload of the next frame, not unpickled."""
        header = self._read(self.PACKET_HEADER.size)
        (size,) = self.PACKET_HEADER.unpack(header)
        return self._read(_check_size(size))

    def receive(self) -> Any:
        return pickle.loads(self.receive_bytes())


class FileIOProtocol(Protocol):
    fd: Union[BinaryIO, IO[bytes]]

    def __init__(self, fd: Union[BinaryIO, IO[bytes]]):
        self.fd = fd

    def _read(self, size: int) -> bytes:
        data = self.fd.read(size)
        if len(data) != size:
            raise ConnectionError("Remote didn't send any data")
        return data

    def _write(self, data: bytes) -> None:
        self.fd.write(data)


class SocketIOProtocol(Protocol):
    """Blocking frames over ``sock``.  Reads are buffered: a small frame
    usually costs one ``recv``."""

    sock: socket.socket

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = bytearray()

    def _read(self, size: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            chunk = self.sock.recv(max(size - len(buffer), 65536))
            if not chunk:
                raise ConnectionError("Remote didn't send any data")
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def _write(self, data: bytes) -> None:
        self.sock.sendall(data)


class AsyncProtocol:
    PACKET_HEADER = PACKET_HEADER

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def _pack(self, payload: Any) -> bytes:
        data = pickle.dumps(payload, protocol=PICKLE_PROTOCOL)
        return self.PACKET_HEADER.pack(_check_size(len(data))) + data

    async def send(self, payload: Any) -> None:
        self.writer.write(self._pack(payload))
        await self.writer.drain()

    async def receive(self) -> Any:
        header = await self.reader.readexactly(self.PACKET_HEADER.size)
        (size,) = self.PACKET_HEADER.unpack(header)
        return pickle.loads(await self.reader.readexactly(_check_size(size)))

    def close(self) -> None:
        if self.writer.can_write_eof():
            self.writer.write_eof()
