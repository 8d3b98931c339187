"""A generic pool of asynchronously made resources (mirror of
``aiomisc.pool``).

Subclasses say how to create, check and destroy an instance.  The pool keeps
the idle instances in a FIFO ``deque`` and the acquirers waiting for one in
another; a released instance (or a freed creation slot) goes straight to the
first waiter.  There are never more than ``maxsize`` live instances, whatever
the order of acquisitions, cancellations and releases.

Differences from aiomisc 17.x, where its behaviour loses instances or waits
forever: an instance whose check raises is replaced like one whose check
returns false (17.x hands it out although it is being destroyed); a creation
slot freed by recycling wakes a waiting acquirer, which creates a new
instance (17.x leaves it waiting for a release); a failed or cancelled
creation gives its slot back.

Twinned (C in ``aiomisc_c._pool``, Python in ``aiomisc_c._pool_py``):
``Acquisition``, what :meth:`PoolBase.acquire` returns (the hot path: take
the oldest idle instance and check it, give it back).  The rest of the pool
is the Python code below, shared by both twins.
"""
from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from contextlib import AbstractAsyncContextManager
from random import random
from typing import (
    TYPE_CHECKING, Any, Awaitable, Callable, Deque, Dict, Generic, Optional, Set,
    TypeVar,
)

from . import _compat
from .compat import EventLoopMixin
from .utils import cancel_tasks

__all__ = ("ContextManager", "PoolBase")

T = TypeVar("T")
Number = int | float

log = logging.getLogger(__name__)

# Handed to a waiting acquirer instead of an instance: a creation slot was
# freed and reserved for it.
_SLOT = object()


class ContextManager(AbstractAsyncContextManager[Any]):
    """Single-use async context manager: ``aenter()`` gives the instance,
    ``aexit(instance)`` takes it back."""

    __slots__ = ("_aenter", "_aexit", "_instance")

    sentinel = object()

    def __init__(
        self,
        aenter: Callable[..., Awaitable[Any]],
        aexit: Callable[..., Awaitable[Any]],
    ):
        self._aenter = aenter
        self._aexit = aexit
        self._instance: Any = self.sentinel

    async def __aenter__(self) -> Any:
        if self._instance is not self.sentinel:
            raise RuntimeError("Reuse of context manager is not acceptable")
        self._instance = await self._aenter()
        return self._instance

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        await self._aexit(self._instance)


class PoolBase(ABC, EventLoopMixin, Generic[T]):
    """Pool of at most ``maxsize`` instances; with ``recycle``, an instance
    is replaced once it has lived ``recycle`` to ``2 * recycle`` seconds
    (checked when it is released)."""

    __slots__ = (
        "_idle", "_waiters", "_free_slots", "_len", "_recycle", "_released",
        "_recycle_times", "_recycle_bin", "_tasks", "_used", "_hot",
    ) + EventLoopMixin.__slots__

    def __init__(self, maxsize: int = 10, recycle: Optional[int] = None):
        if not (recycle is None or recycle > 0):
            raise AssertionError("recycle should be positive number or None")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be int, not {type(maxsize).__name__}")
        if maxsize <= 0:
            raise ValueError(f"maxsize must be positive, not {maxsize!r}")
        self.loop   # noqa: B018 - RuntimeError now unless a loop is running

        self._idle: Deque[Any] = deque()
        self._waiters: Deque[asyncio.Future[Any]] = deque()
        self._free_slots = maxsize
        self._len = 0
        self._recycle = recycle
        self._recycle_times: Dict[Any, float] = {}
        self._recycle_bin: asyncio.Queue[Any] = asyncio.Queue()
        self._released: asyncio.Future[Any] = self.loop.create_future()
        self._released.set_result(None)
        self._tasks: Set[asyncio.Task[Any]] = set()
        self._used: Set[Any] = set()
        # What the C acquisition reads in one attribute lookup: the objects
        # above never change (close() empties the containers in place).
        self._hot = (
            self._idle, self._idle.popleft, self._idle.append, self._used, self._waiters,
            self._recycle, self._released,
        )
        self._create_task(self._recycler())

    def _create_task(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _recycler(self) -> None:
        while True:
            instance = await self._recycle_bin.get()
            try:
                await self._destroy_instance(instance)
            except Exception:
                log.exception("Error when recycle instance %r", instance)
            finally:
                self._recycle_bin.task_done()

    @abstractmethod
    async def _create_instance(self) -> T:
        pass

    @abstractmethod
    async def _destroy_instance(self, instance: T) -> None:
        pass

    @abstractmethod
    async def _check_instance(self, instance: T) -> bool:
        return True

    def __len__(self) -> int:
        return self._len

    # -- hand-offs ---------------------------------------------------------

    def _hand(self, item: Any) -> bool:
        """Give ``item`` (an instance or ``_SLOT``) to the first waiter that
        is still waiting; false when nobody waits."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def _put_idle(self, instance: Any) -> None:
        if not self._hand(instance):
            self._idle.append(instance)

    def _free_slot(self) -> None:
        if not self._hand(_SLOT):
            self._free_slots += 1

    def _recycle_instance(self, instance: Any) -> None:
        self._len -= 1
        self._recycle_times.pop(instance, None)
        self._used.discard(instance)
        self._free_slot()
        self._recycle_bin.put_nowait(instance)

    # -- acquire / release -------------------------------------------------

    async def _create(self) -> Any:
        """Create an instance in a slot already reserved by the caller."""
        try:
            instance = await self._create_instance()
        except BaseException:
            self._free_slot()
            raise
        self._len += 1
        if self._recycle:
            self._recycle_times[instance] = (
                self.loop.time() + self._recycle * (1 + random())
            )
        return instance

    async def _wait(self) -> Any:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            # Cancelled (or closed): whatever was handed over just then goes
            # on, and a waiter left behind must never be handed anything.
            if waiter.done() and not waiter.cancelled():
                item = waiter.result()
                if item is _SLOT:
                    self._free_slot()
                else:
                    self._put_idle(item)
            else:
                waiter.cancel()
            raise

    async def _take(self) -> Any:
        """An instance to check: a new one while there is a free slot (the
        oldest idle one is still preferred), else the oldest idle one."""
        if self._free_slots > 0:
            self._free_slots -= 1
            instance = await self._create()
            if not self._idle:
                return instance
            self._idle.append(instance)
            return self._idle.popleft()
        if self._idle:
            return self._idle.popleft()
        item = await self._wait()
        if item is _SLOT:
            return await self._create()
        return item

    async def _acquire(self) -> T:
        while True:
            instance: T = await self._take()
            try:
                good = await self._check_instance(instance)
            except Exception as exc:
                self._check_failed(instance, exc)
                good = False
            except BaseException:
                self._put_idle(instance)
                raise
            if good:
                self._used.add(instance)
                return instance
            self._recycle_instance(instance)

    @staticmethod
    def _check_failed(instance: Any, exc: BaseException) -> None:
        log.error("Check instance %r failed", instance, exc_info=exc)

    async def _release(self, instance: Any) -> None:
        self._release_now(instance)

    def _release_now(self, instance: Any) -> None:
        self._used.discard(instance)
        if self._recycle and self._recycle_times[instance] < self.loop.time():
            self._recycle_instance(instance)
            return
        self._put_idle(instance)

    def acquire(self) -> AbstractAsyncContextManager[T]:
        # The twinned global, looked up per call (the tests switch twins).
        return Acquisition(self)  # type: ignore[return-value]

    async def close(self, timeout: Optional[Number] = None) -> None:
        """Destroy every instance, in use or idle, concurrently (errors are
        logged) within ``timeout`` seconds, then stop the recycler."""
        instances = list(self._used)
        instances.extend(self._idle)
        self._used.clear()
        self._idle.clear()
        self._recycle_times.clear()
        self._len = 0

        async def destroy(instance: Any) -> None:
            try:
                await self._destroy_instance(instance)
            except Exception:
                log.exception("Exception when task execution")

        try:
            await asyncio.wait_for(
                asyncio.gather(
                    *[self._create_task(destroy(i)) for i in instances],
                    return_exceptions=True,
                ),
                timeout=timeout,
            )
        finally:
            await cancel_tasks(self._tasks)


# What acquire() returns: the Python twin is what a type checker sees; the C
# twin runs when built.  Both count as ContextManager instances.
_c_twin = _compat.import_c_module("_pool")
if TYPE_CHECKING or _c_twin is None:
    from ._pool_py import Acquisition
else:
    Acquisition = _c_twin.Acquisition

_compat.bind_twins(
    "pool", globals(),
    _compat.lazy_module("aiomisc_c._pool_py"),   # imported on first need
    _c_twin, ["Acquisition"],
)
if _c_twin is not None:
    ContextManager.register(_c_twin.Acquisition)
del _c_twin
