"""The Python twin of ``aiomisc_c._pool``: :class:`Acquisition`, what
``PoolBase.acquire()`` returns.

Only the hot path of a pool lives in the twins: entering takes the oldest
idle instance and awaits its check without another coroutine; leaving gives
the instance back.  Everything else (creating, waiting, recycling, closing)
is the shared Python code of :class:`aiomisc_c.pool.PoolBase`, which both
twins call:

* ``_acquire()``: the general case (a free creation slot, no idle instance,
  a failed check);
* ``_check_failed(instance, exc)``: logs a check that raised;
* ``_put_idle(instance)`` / ``_recycle_instance(instance)`` /
  ``_release_now(instance)``.

Entering: when there is no free slot and an instance is idle, the oldest
idle instance is popped and ``pool._check_instance(instance)`` awaited.
True: the instance is in use (``pool._used``) and is the result.  False, or
an ``Exception`` (logged): the instance is recycled and ``pool._acquire()``
gives the result.  Any other exception (a cancellation, ``GeneratorExit``)
puts the instance back idle (or to the first waiter) and goes on.
Leaving never waits: it returns ``pool._released``, a finished future.
"""
from __future__ import annotations

from typing import Any, Awaitable

__all__ = ("Acquisition",)

_UNSET: Any = object()


class Acquisition:
    """Single-use async context manager over one acquisition of ``pool``."""

    __slots__ = ("_pool", "_instance")

    def __init__(self, pool: Any, /) -> None:
        self._pool = pool
        self._instance = _UNSET

    async def __aenter__(self) -> Any:
        if self._instance is not _UNSET:
            raise RuntimeError("Reuse of context manager is not acceptable")
        pool = self._pool
        if pool._free_slots or not pool._idle:
            self._instance = await pool._acquire()
            return self._instance
        # PoolBase._acquire's check, inlined: a shared coroutine for it
        # costs this hot path a frame (~25 % of an acquire); change both.
        instance = pool._idle.popleft()
        try:
            good = await pool._check_instance(instance)
        except Exception as exc:
            pool._check_failed(instance, exc)
            good = False
        except BaseException:
            pool._put_idle(instance)
            raise
        if good:
            pool._used.add(instance)
        else:
            pool._recycle_instance(instance)
            instance = await pool._acquire()
        self._instance = instance
        return instance

    def __aexit__(
        self, exc_type: Any, exc_value: Any, traceback: Any, /,
    ) -> Awaitable[None]:
        # Releasing never waits: the work is done here, and what is returned
        # is the pool's finished future (awaiting it costs no coroutine).
        pool = self._pool
        instance = self._instance
        if instance is _UNSET:
            raise RuntimeError("The context manager was not entered")
        if pool._recycle:
            pool._release_now(instance)
        else:
            pool._used.discard(instance)
            if pool._waiters:
                pool._put_idle(instance)
            else:
                pool._idle.append(instance)
        released: Awaitable[None] = pool._released
        return released


def _register() -> None:
    # isinstance(pool.acquire(), ContextManager) holds for both twins.
    from .pool import ContextManager

    ContextManager.register(Acquisition)


_register()
