"""Strict context variables and the current-loop variable ``EVENT_LOOP``."""
from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any, Callable, Generic, List, Optional, TypeVar

T = TypeVar("T")

__all__ = ("EVENT_LOOP", "StrictContextVar", "set_current_loop")


class StrictContextVar(Generic[T]):
    """A context variable whose ``get()`` raises ``exc`` while it is unset
    or holds ``None``."""

    # No __slots__ (17.x has none): instances stay patchable, e.g.
    # ``mock.patch.object(EVENT_LOOP, "get")``.

    def __init__(self, name: str, exc: Exception):
        self.exc = exc
        self.context_var: ContextVar[T] = ContextVar(name)

    def get(self) -> T:
        value = self.context_var.get(None)
        if value is None:
            raise self.exc
        return value

    def set(self, value: T) -> None:
        self.context_var.set(value)


ItemLoopLookup = Callable[[Any], Optional[asyncio.AbstractEventLoop]]

# Asked by EVENT_LOOP.get(), in turn; each thread pool implementation adds
# its own (see add_item_loop_lookup).
_item_loop_lookups: List[ItemLoopLookup] = []


def add_item_loop_lookup(lookup: ItemLoopLookup) -> None:
    """Let ``EVENT_LOOP.get()`` ask ``lookup(value)`` first.

    ``value`` is what the variable holds now (``None`` when unset).  A pool
    whose worker thread is running an item answers the item's loop as long
    as ``value`` is what the variable held when the item started, and
    ``None`` otherwise: an item sees its submitting loop without a write to
    its context, and a value the item sets itself wins.
    """
    if lookup not in _item_loop_lookups:
        _item_loop_lookups.append(lookup)


class _EventLoopVar(StrictContextVar[asyncio.AbstractEventLoop]):
    """``EVENT_LOOP``: in a worker of this package's thread pools, ``get()``
    answers the loop that submitted the running item."""

    def get(self) -> asyncio.AbstractEventLoop:
        value = self.context_var.get(None)
        for lookup in _item_loop_lookups:
            loop = lookup(value)
            if loop is not None:
                return loop
        if value is None:
            raise self.exc
        return value


EVENT_LOOP: StrictContextVar[asyncio.AbstractEventLoop] = _EventLoopVar(
    "EVENT_LOOP", RuntimeError("no current event loop is set"),
)


def set_current_loop(loop: asyncio.AbstractEventLoop) -> None:
    """18.x: make ``loop`` the value of :data:`EVENT_LOOP`."""
    EVENT_LOOP.set(loop)
