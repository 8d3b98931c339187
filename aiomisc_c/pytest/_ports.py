"""Free ports for tests: probed, or reserved until the test ends."""
from __future__ import annotations

import abc
import os
import platform
import socket
import warnings
from typing import Any, NamedTuple, Tuple, Type

from ..compat import sock_set_reuseport


def unused_port(*args: Any) -> int:
    """A port that was free a moment ago (``socket.socket(*args)`` bound
    to port 0, then closed)."""
    with socket.socket(*args) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


def get_unused_port(*args: Any) -> int:
    warnings.warn(
        "Do not use get_unused_port directly, use fixture "
        "'aiomisc_unused_port_factory'",
        DeprecationWarning, stacklevel=2,
    )
    return unused_port(*args)


class PortSocket(NamedTuple):
    port: int
    socket: socket.socket


class SocketWrapper(abc.ABC):
    """Holds a port for a test; ``prepare(address)`` chooses it."""

    address: str
    port: int

    def __init__(self, *args: Any):
        self._socket_args: Tuple[Any, ...] = args
        self.address = ""
        self.port = 0

    @abc.abstractmethod
    def prepare(self, address: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SocketWrapperUnix(SocketWrapper):
    """Keeps the descriptor of a socket bound to the port (with
    ``SO_REUSEADDR``/``SO_REUSEPORT``) open until ``close()``: the kernel
    does not hand the port out again, and the test can still bind it."""

    socket: socket.socket
    fd: int

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.socket = socket.socket(*args)
        self.fd = -1

    def prepare(self, address: str) -> None:
        self.socket.bind((address, 0))
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock_set_reuseport(self.socket, True)
        self.address, self.port = self.socket.getsockname()[:2]
        self.fd = self.socket.detach()

    def close(self) -> None:
        self.socket.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SocketWrapperWindows(SocketWrapper):
    """Only probes for a free port (a bound socket cannot be shared)."""

    def prepare(self, address: str) -> None:
        self.address = address
        self.port = unused_port(*self._socket_args)


socket_wrapper: Type[SocketWrapper] = (
    SocketWrapperWindows if platform.system() == "Windows" else SocketWrapperUnix
)
