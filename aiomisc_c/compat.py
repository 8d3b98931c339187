"""Compatibility helpers shared by the whole package (mirror of ``aiomisc.compat``).

The default event-loop policy is chosen once, on first use of
``event_loop_policy``: uvloop's policy when ``uvloop`` imports and
``AIOMISC_USE_UVLOOP`` (default ``"1"``) is true, asyncio's default policy
otherwise.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from time import time_ns
from typing import Any, Concatenate, ParamSpec, Protocol, TypeAlias, final

from . import _compat
from ._context_vars import EVENT_LOOP

log = logging.getLogger(__name__)

__all__ = (
    "Concatenate",
    "EntrypointProtocol",
    "EventLoopMixin",
    "ParamSpec",
    "Protocol",
    "TypeAlias",
    "default_loop_factory",
    "entry_pont_iterator",
    "event_loop_policy",
    "final",
    "get_current_loop",
    "set_current_loop",
    "sock_set_nodelay",
    "sock_set_reuseport",
    "time_ns",
)


class EntrypointProtocol(Protocol):
    @property
    def name(self) -> str: ...

    def load(self) -> Any: ...


def entry_pont_iterator(entry_point: str) -> Iterator[EntrypointProtocol]:
    """Yield every installed entry point of the group ``entry_point`` (sic)."""
    # Imported here: importlib.metadata costs tens of milliseconds to import.
    from importlib.metadata import Distribution

    for dist in Distribution.discover():
        for ep in dist.entry_points:
            if ep.group == entry_point:
                yield ep


class EventLoopMixin:
    """Binds ``self.loop`` lazily to the running loop on first access."""

    __slots__ = ("_loop",)

    _loop: asyncio.AbstractEventLoop | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if not getattr(self, "_loop", None):
            self._loop = asyncio.get_running_loop()
        return self._loop  # type: ignore[return-value]


def _uvloop_if_enabled() -> Any:
    """The ``uvloop`` module when it imports and is not switched off."""
    if not _compat.env_bool("AIOMISC_USE_UVLOOP", "1"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def _chosen_uvloop() -> Any:
    namespace = globals()
    if "_uvloop" not in namespace:
        namespace["_uvloop"] = _uvloop_if_enabled()
    return namespace["_uvloop"]


def __getattr__(name: str) -> Any:
    # Both are decided once, on first use rather than at import: importing
    # uvloop costs ~7 ms, a tenth of the package's import time, and a program
    # that never makes a loop through the package need not pay it.
    if name == "_uvloop":
        return _chosen_uvloop()
    if name == "event_loop_policy":
        uvloop = _chosen_uvloop()
        policy = (
            uvloop.EventLoopPolicy() if uvloop is not None
            else asyncio.DefaultEventLoopPolicy()
        )
        globals()["event_loop_policy"] = policy
        return policy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_loop_factory() -> asyncio.AbstractEventLoop:
    """18.x spelling: a new loop of the kind ``event_loop_policy`` makes,
    without touching the process-wide policy."""
    uvloop = _chosen_uvloop()
    if uvloop is not None:
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


if hasattr(socket, "TCP_NODELAY"):
    def sock_set_nodelay(sock: socket.socket) -> None:
        # Quirk kept from 17.x: protocol-0 sockets are left untouched.
        if sock.proto != socket.IPPROTO_TCP:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
else:  # pragma: no cover - every supported platform has TCP_NODELAY
    def sock_set_nodelay(sock: socket.socket) -> None:
        return None


if hasattr(socket, "SO_REUSEPORT"):
    def sock_set_reuseport(sock: socket.socket, reuse_port: bool) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, reuse_port.real)
else:  # pragma: no cover - platform dependent
    def sock_set_reuseport(sock: socket.socket, reuse_port: bool) -> None:
        log.debug(
            "SO_REUSEPORT is not implemented by underlying library. Skipping.",
        )


# 16.x compatibility
set_current_loop = EVENT_LOOP.set
get_current_loop = EVENT_LOOP.get
