"""Per-loop store of awaitable values (mirror of ``aiomisc.context``)."""
import asyncio
from collections import defaultdict
from typing import Any, Dict, Optional

from .counters import Statistic

__all__ = ("Context", "get_context")


class ContextStatistic(Statistic):
    get: int
    set: int


class Context:
    """Key → future store bound to one event loop.

    ``ctx[key]`` returns the key's future (a pending one is made on demand),
    so ``await ctx[key]`` waits until somebody sets it.  ``ctx[key] = value``
    may be called from any thread: the update runs on the loop soon after.
    The newest context of a loop is *the* context of that loop
    (:func:`get_context`).
    """

    __slots__ = ("_loop", "_statistic", "_storage")

    # loop -> its current context (a newer context replaces an older one).
    _EVENT_OBJECTS: Dict[asyncio.AbstractEventLoop, "Context"] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop):
        if not callable(getattr(loop, "call_soon_threadsafe", None)):
            raise TypeError(
                f"Context(): 'loop' must be an event loop, "
                f"not {type(loop).__name__}",
            )
        self._loop = loop
        self._storage: "Dict[Any, asyncio.Future[Any]]" = defaultdict(loop.create_future)
        self._statistic = ContextStatistic()
        self._EVENT_OBJECTS[loop] = self

    def __getitem__(self, key: Any) -> "asyncio.Future[Any]":
        self._statistic.get += 1
        return self._storage[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._statistic.set += 1
        self._loop.call_soon_threadsafe(self._set_on_loop, key, value)

    def _set_on_loop(self, key: Any, value: Any) -> None:
        future = self._storage[key]
        if future.done():
            # Already resolved (or cancelled by an impatient reader):
            # later readers get a fresh future holding the new value.
            future = self._loop.create_future()
            self._storage[key] = future
        future.set_result(value)

    def close(self) -> None:
        self._storage.clear()
        # As in aiomisc 17.x: forgets whatever context the loop has now.
        self._EVENT_OBJECTS.pop(self._loop, None)


def get_context(loop: Optional[asyncio.AbstractEventLoop] = None) -> Context:
    """The context of ``loop`` (default: the current loop).

    ``RuntimeError`` if the loop is closed, ``KeyError`` if it has none.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.get_event_loop()
    if loop.is_closed():
        raise RuntimeError("event loop is closed")
    return Context._EVENT_OBJECTS[loop]
