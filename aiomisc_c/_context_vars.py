"""Strict context variables and the current-loop variable ``EVENT_LOOP``."""
from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Generic, TypeVar

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


EVENT_LOOP: StrictContextVar[asyncio.AbstractEventLoop] = StrictContextVar(
    "EVENT_LOOP", RuntimeError("no current event loop is set"),
)


def set_current_loop(loop: asyncio.AbstractEventLoop) -> None:
    """18.x: make ``loop`` the value of :data:`EVENT_LOOP`."""
    EVENT_LOOP.set(loop)
