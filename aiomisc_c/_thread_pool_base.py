"""Thread-pool pieces shared by the C and the Python twin.

* :class:`ThreadPoolException`, :class:`ThreadPoolStatistic`;
* :func:`run_in_executor`;
* :class:`ThreadPoolExecutorBase`, the executor *shell*: a
  ``concurrent.futures.ThreadPoolExecutor`` whose work queue and worker bodies
  live in a *core* object (``_core_type``: ``aiomisc_c._thread_pool.Executor``
  or ``aiomisc_c._thread_pool_py.Executor``).  The shell owns the thread
  objects, their names, joining and the fork hook; the core owns the hot path;
* :class:`ThreadedBase`, the ABC both ``Threaded`` twins belong to.

This module must not import :mod:`aiomisc_c.thread_pool` (which imports it).
"""
import asyncio
import concurrent.futures
import contextvars
import itertools
import logging
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from asyncio.events import _get_running_loop
from functools import partial
from types import MappingProxyType
from typing import (
    Any, Awaitable, Callable, ClassVar, Generic, Mapping, Optional, ParamSpec,
    Set, Tuple, TypeVar,
)

from ._compat import process_signals_blocked
from ._context_vars import EVENT_LOOP
from ._coroutine_functions import iscoroutinefunction as iscoroutinefunction
from .counters import Statistic

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger("aiomisc_c.thread_pool")

_EVENT_LOOP_VAR = EVENT_LOOP.context_var


class ThreadPoolException(RuntimeError):
    pass


class ThreadPoolStatistic(Statistic):
    threads: int
    done: int
    error: int
    success: int
    submitted: int
    sum_time: float


def context_with_loop(loop: asyncio.AbstractEventLoop) -> contextvars.Context:
    """A copy of the current context in which ``EVENT_LOOP`` is ``loop``."""
    context = contextvars.copy_context()
    if context.get(_EVENT_LOOP_VAR) is not loop:
        context.run(_EVENT_LOOP_VAR.set, loop)
    return context


def _submit_in_loop(
    loop: asyncio.AbstractEventLoop,
    executor: Optional[concurrent.futures.Executor],
    func: Callable[..., T],
    args: Tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> "asyncio.Future[T]":
    """Start ``func(*args, **kwargs)`` in ``executor`` (``None``: the loop's
    default one) now; returns the loop future."""
    target = executor
    if target is None and isinstance(loop, asyncio.BaseEventLoop):
        target = loop._default_executor  # type: ignore[attr-defined]  # uvloop does not expose it
    if isinstance(target, ThreadPoolExecutorBase):
        # Our pools copy the context and set EVENT_LOOP themselves.
        return target.submit(func, *args, **kwargs)
    context = context_with_loop(loop)
    return loop.run_in_executor(
        executor, partial(context.run, func, *args, **kwargs),
    )


def run_in_executor(
    func: Callable[..., T],
    executor: Optional[concurrent.futures.Executor] = None,
    args: Any = (),
    kwargs: Any = MappingProxyType({}),
) -> Awaitable[T]:
    """Run ``func`` in ``executor`` (``None``: the loop's default executor).

    With a running loop the work starts now and a future is returned;
    without one, a coroutine that starts it when awaited.  The work runs in a
    copy of the caller's context where ``EVENT_LOOP`` is the loop.
    """
    loop = _get_running_loop()
    if loop is not None:
        return _submit_in_loop(loop, executor, func, tuple(args), kwargs)

    async def lazy_run_in_executor() -> T:
        return await _submit_in_loop(
            asyncio.get_running_loop(), executor, func, tuple(args), kwargs,
        )

    return lazy_run_in_executor()


# Every live pool shell, for the fork hook.
_POOLS: "weakref.WeakSet[ThreadPoolExecutorBase]" = weakref.WeakSet()


def _make_thread_spawner(pool: "ThreadPoolExecutorBase") -> Callable[[], None]:
    # The core keeps this callback: it must not keep the shell alive, so the
    # shell can be collected (its ``__del__`` shuts the core down).
    pool_ref = weakref.ref(pool)

    def spawn_thread() -> None:
        shell = pool_ref()
        if shell is None:
            raise RuntimeError("The thread pool was garbage-collected")
        shell._spawn_thread()

    return spawn_thread


class ThreadPoolExecutorBase(concurrent.futures.ThreadPoolExecutor):
    """A ``concurrent.futures.ThreadPoolExecutor`` whose ``submit`` returns an
    ``asyncio.Future`` of the calling thread's loop.

    Subclasses set ``_core_type``; the core runs the work queue and the
    worker bodies, the shell creates, names and joins the threads.
    """

    _core_type: ClassVar[Any] = None

    DEFAULT_POOL_SIZE: int = min(max(os.cpu_count() or 1, 4), 32)
    SHUTDOWN_TIMEOUT: int = 10

    def __init__(
        self,
        max_workers: int = DEFAULT_POOL_SIZE,
        statistic_name: Optional[str] = None,
    ) -> None:
        if max_workers is None:
            max_workers = self.DEFAULT_POOL_SIZE
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(
                "max_workers must be an int, not "
                f"{type(max_workers).__name__}",
            )
        if max_workers < 1:
            raise ValueError("max_workers must be greater than 0")
        if statistic_name is not None and not isinstance(statistic_name, str):
            raise TypeError(
                "statistic_name must be a str or None, not "
                f"{type(statistic_name).__name__}",
            )
        core_type = type(self)._core_type
        if core_type is None:
            raise TypeError(
                f"{type(self).__name__} has no _core_type; use "
                "aiomisc_c.thread_pool.ThreadPoolExecutor",
            )

        # The stdlib attributes code may read; no stdlib thread is started.
        self._max_workers = max_workers
        self._thread_name_prefix = ""
        self._initializer = None
        self._initargs: Tuple[Any, ...] = ()
        self._threads: Set[threading.Thread] = set()
        self._broken = False
        self._shutdown = False
        self._shutdown_lock = threading.Lock()

        self._thread_index = itertools.count()
        self._statistic = ThreadPoolStatistic(statistic_name)
        self._core = core_type(
            max_workers, self._statistic, _make_thread_spawner(self),
            ThreadPoolException,
        )
        if type(self).submit is ThreadPoolExecutorBase.submit:
            # The hot path: no Python frame between the caller and the core.
            self.submit = self._core.submit   # type: ignore[method-assign]
        # No thread starts here: each ``Thread.start()`` waits for its thread
        # to run, which made a new loop cost ~0.5 ms.  The core starts the
        # first workers on the first submit.
        _POOLS.add(self)

    def submit(  # type: ignore[override]
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any,
    ) -> "asyncio.Future[T]":
        """Run ``fn(*args, **kwargs)`` in the pool; returns an asyncio future
        of the running loop (else of ``asyncio.get_event_loop()``)."""
        future: "asyncio.Future[T]" = self._core.submit(fn, *args, **kwargs)
        return future

    def _spawn_thread(self) -> None:
        # Called by the core (under its growth lock) to add one worker.
        name = f"Thread {next(self._thread_index)}"
        if self._statistic.name:
            name += f" from pool {self._statistic.name}"
        thread = threading.Thread(
            target=self._core.run_worker, name=name, daemon=True,
        )
        with process_signals_blocked():
            thread.start()
        self._threads.add(thread)

    def _adjust_thread_count(self) -> None:
        # The core grows the pool; the stdlib hook must never start threads.
        return None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work and, as aiomisc does, fail every unfinished
        future with ``ThreadPoolException("Pool closed")`` at once: queued
        items never run, running calls' results are dropped.

        With ``wait``, join the workers for at most ``SHUTDOWN_TIMEOUT``
        seconds in total, then log a warning and return.  Idempotent; safe to
        call from a worker thread (which is never joined).
        """
        with self._shutdown_lock:
            self._shutdown = True
        self._core.shutdown()
        if not wait:
            return

        deadline = time.monotonic() + self.SHUTDOWN_TIMEOUT
        current = threading.current_thread()
        for thread in list(self._threads):
            if thread is current:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "Waiting for shutting down the pool %r "
                    "cancelled due to timeout", self,
                )
                return

    def _after_fork_in_child(self) -> None:
        # The child has none of the parent's threads.
        self._threads = set()
        self._thread_index = itertools.count()
        self._shutdown_lock = threading.Lock()
        self._core.after_fork_in_child()

    def __del__(self) -> None:
        core = self.__dict__.get("_core")
        if core is not None:
            try:
                core.shutdown()
            except Exception:   # pragma: no cover - interpreter teardown
                pass

    def __repr__(self) -> str:
        core = self.__dict__.get("_core")
        statistic = self.__dict__.get("_statistic")
        name = statistic.name if statistic is not None else None
        state = "shutdown" if self._shutdown else "running"
        threads = core.spawned_threads if core is not None else 0
        return (
            f"<{type(self).__qualname__} {name!r} {state} "
            f"threads={threads}/{self._max_workers} at {id(self):#x}>"
        )


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        try:
            pool._after_fork_in_child()
        except Exception:   # never break the child
            log.exception("Can not reset %r after fork", pool)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ThreadedBase(Generic[P, T], ABC):
    """The common base of the ``Threaded`` family.

    The Python ``Threaded``/``BoundThreaded`` subclass it; the C twins are
    registered virtual subclasses, so ``isinstance(x, ThreadedBase)`` holds
    for both.  ``P``/``T`` are the wrapped callable's parameters and result.
    """

    func: Callable[..., T]

    @abstractmethod
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ...

    def sync_call(self, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.func(*args, **kwargs)

    def async_call(self, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        return run_in_executor(func=self.func, args=args, kwargs=kwargs)

    def __repr__(self) -> str:
        func = self.func
        name = getattr(func, "__name__", type(func).__name__)
        return f"<{type(self).__name__} {name} at {id(self):#x}>"

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        return self.async_call(*args, **kwargs)
