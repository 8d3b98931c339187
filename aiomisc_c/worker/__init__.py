"""The worker side of :class:`aiomisc_c.WorkerPool` (mirror of
``aiomisc_worker``).

``python -m aiomisc_c.worker`` is the supervisor a pool starts: it reads its
settings from stdin, runs the pool's initializer once, forks one worker per
worker id and re-forks workers that die.  Each worker connects back to the
pool, authenticates with a fixed-size handshake (see
:mod:`aiomisc_c.worker.protocol`) and then runs one job at a time in its main
thread.
"""
import hashlib
import logging
import signal
import socket
import sys
from enum import IntEnum
from typing import Tuple, TypeVar, Union

__all__ = (
    "AddressType", "COOKIE_SIZE", "HASHER", "INET_AF", "INT_SIGNAL",
    "PacketTypes", "SALT_SIZE", "SIGNAL", "T", "log",
)

T = TypeVar("T")
AddressType = Union[str, Tuple[str, int]]

log = logging.getLogger(__name__)

SALT_SIZE = 64
COOKIE_SIZE = 128
HASHER = hashlib.sha256


class PacketTypes(IntEnum):
    REQUEST = 0
    EXCEPTION = 1
    RESULT = 2
    CANCELLED = 3
    AUTH = 50
    AUTH_FAIL = 58
    AUTH_OK = 59
    BAD_INITIALIZER = 60
    BAD_PACKET = 254


INET_AF = socket.AF_INET6

if sys.platform in ("win32", "cygwin"):  # pragma: no cover - not POSIX
    SIGNAL = signal.SIGBREAK  # type: ignore[attr-defined]
else:
    SIGNAL = signal.SIGUSR2
INT_SIGNAL = signal.SIGINT
