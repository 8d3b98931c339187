"""Framing between a :class:`~aiomisc_c.WorkerPool` and its workers.

Two kinds of messages travel on a worker connection:

* the handshake, sent once by the worker: a fixed-size binary message
  (:data:`HANDSHAKE`: magic, kind, worker id, HMAC-SHA256 digest, pid).  The
  pool checks it with :func:`hmac.compare_digest` and reads nothing else from
  a peer that fails it: no pickle is ever loaded from an unauthenticated
  peer, and no length it announces is ever trusted;
* frames, after the pool answered ``AUTH_OK``: a 4-byte big-endian length
  (:attr:`Protocol.PACKET_HEADER`) and a pickle of that many bytes.  Lengths
  above :data:`MAX_PACKET_SIZE` end the connection.

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
from typing import IO, Any, BinaryIO, NamedTuple, Optional, Union

__all__ = (
    "ADDRESS_FAMILY", "AsyncProtocol", "FileIOProtocol", "HANDSHAKE",
    "HANDSHAKE_MAGIC", "Handshake", "MAX_PACKET_SIZE", "PacketTooLarge",
    "Protocol", "SocketIOProtocol", "WORKER_ID_SIZE", "handshake_digest",
    "pack_handshake", "unpack_handshake",
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
