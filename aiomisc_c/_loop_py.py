"""Event-loop setup, the pure-Python twin of ``aiomisc_c._loop``.

``create_default_event_loop`` makes a new loop from a policy, makes it the
thread's current loop and installs the package's ``ThreadPoolExecutor`` as its
default executor (so ``loop.close()`` shuts the pool down).  Two lookups
happen at call time, not at import, so that patching and twin switching are
honoured: the default policy (``aiomisc_c.compat.event_loop_policy``) and the
executor class (``aiomisc_c.thread_pool.ThreadPoolExecutor``).  The asyncio
functions are also looked up on the ``asyncio`` module at call time.
"""
from __future__ import annotations

import asyncio
import asyncio.events
import importlib
import operator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._thread_pool_base import ThreadPoolExecutorBase

__all__ = ("create_default_event_loop", "new_event_loop")

_RUNNING_LOOP_MESSAGE = (
    "Trying to create new event loop instance but another "
    "default loop in this thread is running right now."
)


class _DefaultPolicy:
    """Default value of ``policy``: read ``compat.event_loop_policy`` at call time."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<compat.event_loop_policy>"


DEFAULT_POLICY: Any = _DefaultPolicy()


def resolve_policy(policy: Any) -> Any:
    if policy is DEFAULT_POLICY:
        return importlib.import_module("aiomisc_c.compat").event_loop_policy
    return policy


def _thread_pool_class() -> Any:
    # Imported lazily: thread_pool may import utils, which imports this module.
    return importlib.import_module("aiomisc_c.thread_pool").ThreadPoolExecutor


def _check_pool_size(pool_size: Any) -> int | None:
    if pool_size is None:
        return None
    try:
        size = operator.index(pool_size)
    except TypeError:
        raise TypeError(
            f"pool_size must be an int or None, not {type(pool_size).__name__!r}",
        ) from None
    if size < 0:
        raise ValueError(
            f"pool_size must be >= 1 (0 or None for the default size), got {size!r}",
        )
    return size


def _check_policy(policy: Any) -> None:
    # asyncio.set_event_loop_policy checks this with an assert on 3.10.
    if policy is not None and not isinstance(
        policy, asyncio.AbstractEventLoopPolicy,
    ):
        raise TypeError(
            "policy must be an instance of AbstractEventLoopPolicy or None, "
            f"not {type(policy).__name__!r}",
        )


def _current_loop_is_running() -> bool:
    """Whether the thread's current loop exists and is running.

    Unlike ``asyncio.get_event_loop()`` this never creates a loop (which the
    default policy does in the main thread, leaking it) and never warns.
    """
    if asyncio._get_running_loop() is not None:
        return True
    policy = asyncio.get_event_loop_policy()
    base = asyncio.events.BaseDefaultEventLoopPolicy
    if (
        isinstance(policy, base)
        and type(policy).get_event_loop is base.get_event_loop
    ):
        # The stock lookup: peek at the thread-local slot it reads.
        current = getattr(getattr(policy, "_local", None), "_loop", None)
    else:
        try:
            current = policy.get_event_loop()
        except (RuntimeError, DeprecationWarning):
            # No current loop (DeprecationWarning: raised under -W error).
            return False
    return current is not None and bool(current.is_running())


def _discard(loop: asyncio.AbstractEventLoop, pool: Any) -> None:
    """Undo a half-made setup while an error propagates; errors raised here
    are dropped so that the original one is what the caller sees."""
    try:
        if pool is not None:
            pool.shutdown(wait=False)
    except BaseException:  # noqa: BLE001, S110
        pass
    try:
        loop.close()
    except BaseException:  # noqa: BLE001, S110
        pass


def create_default_event_loop(
    pool_size: int | None = None,
    policy: asyncio.AbstractEventLoopPolicy = DEFAULT_POLICY,
    debug: bool = False,
) -> tuple[asyncio.AbstractEventLoop, ThreadPoolExecutorBase]:
    """Create an event loop and a thread pool executor.

    :param pool_size: thread pool maximal size (``None``/``0``: the pool's
        ``DEFAULT_POOL_SIZE``)
    :param policy: event loop policy, installed process-wide
    :param debug: set ``loop.set_debug(debug)``
    """
    size = _check_pool_size(pool_size)
    policy = resolve_policy(policy)
    _check_policy(policy)

    if _current_loop_is_running():
        raise RuntimeError(_RUNNING_LOOP_MESSAGE)

    asyncio.set_event_loop_policy(policy)
    loop = asyncio.new_event_loop()
    pool = None
    try:
        loop.set_debug(debug)
        pool_class = _thread_pool_class()
        if not size:
            size = pool_class.DEFAULT_POOL_SIZE
        pool = pool_class(size, statistic_name="default")
        loop.set_default_executor(pool)
        # Made current last, so a failure above leaves the thread's
        # current loop untouched.
        asyncio.set_event_loop(loop)
    except BaseException:
        _discard(loop, pool)
        raise
    return loop, pool


def new_event_loop(
    pool_size: int | None = None,
    policy: asyncio.AbstractEventLoopPolicy = DEFAULT_POLICY,
) -> asyncio.AbstractEventLoop:
    """``create_default_event_loop(pool_size, policy)[0]``."""
    return create_default_event_loop(pool_size, policy)[0]
