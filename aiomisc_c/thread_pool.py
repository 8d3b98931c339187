"""Threads: the thread pool, ``threaded`` decorators and thread helpers.

Which names come from C and which from Python:

* twinned (C in ``aiomisc_c._thread_pool`` when built, else the Python twin
  in ``aiomisc_c._thread_pool_py``): ``ThreadPoolExecutor`` (a Python shell
  over the C or Python ``Executor`` core), ``Threaded``, ``BoundThreaded``,
  ``ThreadedSeparate``.  Both twins stay reachable as ``_PyNAME`` /
  ``_CNAME``; ``aiomisc_c._compat.use_implementation`` rebinds them.
* shared Python: everything else.  Shared code looks the twinned names up as
  module globals *at call time*, so rebinding takes effect everywhere.

``ThreadedSeparate`` subclasses ``Threaded``; since there are two
``Threaded`` classes, it is built once over each (``_make_threaded_separate``)
and twin-bound with the others, so ``isinstance(ThreadedSeparate(f),
Threaded)`` holds for the chosen twin.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import threading
import types
import warnings
from abc import ABC, abstractmethod
from functools import partial
from types import MappingProxyType
from typing import (
    TYPE_CHECKING, Any, Awaitable, Callable, Concatenate, Coroutine, Generator,
    Generic, Optional, ParamSpec, TypeVar, Union, overload,
)

from . import _compat
from ._context_vars import EVENT_LOOP
from ._thread_pool_base import (
    ThreadedBase, ThreadPoolException, ThreadPoolExecutorBase,
    ThreadPoolStatistic, context_with_loop, iscoroutinefunction,
    run_in_executor,
)

if TYPE_CHECKING:  # imported lazily at run time (see lazy_attributes below)
    from .iterator_wrapper import IteratorWrapper, IteratorWrapperSeparate

__all__ = (
    "BoundThreaded",
    "BoundThreadedIterable",
    "CoroutineWaiter",
    "IteratorWrapper",
    "IteratorWrapperSeparate",
    "THREADED_ITERABLE_DEFAULT_MAX_SIZE",
    "TaskChannel",
    "TaskChannelCloseException",
    "ThreadPoolException",
    "ThreadPoolExecutor",
    "ThreadPoolStatistic",
    "Threaded",
    "ThreadedBase",
    "ThreadedIterable",
    "ThreadedIterableBase",
    "ThreadedIterableSeparate",
    "ThreadedSeparate",
    "WorkItem",
    "WorkItemBase",
    "context_partial",
    "run_in_executor",
    "run_in_new_thread",
    "sync_await",
    "sync_wait_coroutine",
    "thread_pool_thread_loop",
    "threaded",
    "threaded_iterable",
    "threaded_iterable_separate",
    "threaded_separate",
    "wait_coroutine",
)

P = ParamSpec("P")
BP = ParamSpec("BP")    # the parameters of a method, after ``self``
S = TypeVar("S")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

THREADED_ITERABLE_DEFAULT_MAX_SIZE = int(
    os.getenv("THREADED_ITERABLE_DEFAULT_MAX_SIZE", 1024),
)


def context_partial(func: F, *args: Any, **kwargs: Any) -> Any:
    warnings.warn(
        "context_partial has been deprecated and will be removed",
        DeprecationWarning,
        stacklevel=2,
    )
    context = contextvars.copy_context()
    return partial(context.run, func, *args, **kwargs)


# -- semi-internal 17.x pieces ------------------------------------------------

# Imported on first read of these names: the 17.x pieces in ._work_item
# (WorkItemBase, WorkItem, TaskChannel, TaskChannelCloseException,
# thread_pool_thread_loop: two frozen dataclasses cost ~3 ms of package
# import and nothing on the package's own paths needs them), and the
# iterator wrappers (also imported by the first threaded_iterable call).
_compat.lazy_attributes(globals(), {
    **dict.fromkeys((
        "TaskChannel", "TaskChannelCloseException", "WorkItem", "WorkItemBase",
        "thread_pool_thread_loop",
    ), "aiomisc_c._work_item"),
    **dict.fromkeys(
        ("IteratorWrapper", "IteratorWrapperSeparate"),
        "aiomisc_c.iterator_wrapper",
    ),
})


# -- new threads ---------------------------------------------------------------

def run_in_new_thread(
    func: F,
    args: Any = (),
    kwargs: Any = MappingProxyType({}),
    detach: bool = True,
    no_return: bool = False,
    statistic_name: Optional[str] = None,
) -> asyncio.Future[Any]:
    """Run ``func`` in a new thread (daemon when ``detach``), started on the
    next loop iteration, in a copy of the caller's context."""
    from ._work_item import WorkItem

    loop = asyncio.events._get_running_loop()
    if loop is None:
        loop = asyncio.get_event_loop()
    future = loop.create_future()

    statistic = ThreadPoolStatistic(statistic_name)
    statistic.threads += 1

    thread = threading.Thread(
        target=WorkItem(
            func=func,
            args=tuple(args),
            kwargs=dict(kwargs),
            loop=loop,
            future=future,
            statistic=statistic,
            context=context_with_loop(loop),
        ),
        name=getattr(func, "__name__", None) or repr(func),
        kwargs=dict(no_return=no_return),
        daemon=detach,
    )
    statistic.submitted += 1
    loop.call_soon(_start_without_process_signals, thread)
    return future


def _start_without_process_signals(thread: threading.Thread) -> None:
    with _compat.process_signals_blocked():
        thread.start()


# -- the twins ---------------------------------------------------------------

class _ThreadedSeparateMixin:
    """``ThreadedSeparate`` behaviour, mixed into each ``Threaded`` twin."""

    detach: bool
    func: Callable[..., Any]
    # Filled by _make_threaded_separate: how to call the base constructors.
    _base_new_takes_func: bool = True
    _base_init_takes_func: bool = True

    def __new__(cls, func: Callable[..., Any], detach: bool = True) -> Any:
        base_new: Any = super().__new__
        if cls._base_new_takes_func:
            return base_new(cls, func)
        return base_new(cls)

    def __init__(self, func: Callable[..., Any], detach: bool = True) -> None:
        if self._base_init_takes_func:
            super().__init__(func)   # type: ignore[call-arg]
        self.detach = detach

    def async_call(self, /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return run_in_new_thread(
            self.func, args=args, kwargs=kwargs, detach=self.detach,
        )


def _make_threaded_separate(threaded_type: Any) -> Any:
    """``class ThreadedSeparate(threaded_type)``: every call runs in a new
    thread (``run_in_new_thread(..., detach=detach)``)."""
    namespace = {
        "__module__": __name__,
        "__qualname__": "ThreadedSeparate",
        "__doc__": "Like Threaded, but every call runs in a new thread.",
        "_base_new_takes_func": threaded_type.__new__ is not object.__new__,
        "_base_init_takes_func":
            threaded_type.__init__ is not object.__init__,
        # ThreadedSeparate[P, T] in annotations evaluated at run time
        "__class_getitem__": classmethod(types.GenericAlias),
    }
    return type(
        "ThreadedSeparate", (_ThreadedSeparateMixin, threaded_type), namespace,
    )


@functools.lru_cache(maxsize=None)
def _python_twins() -> types.SimpleNamespace:
    """The Python twins, imported on first need (see _compat.bind_twins)."""
    from . import _thread_pool_py

    return types.SimpleNamespace(
        ThreadPoolExecutor=_thread_pool_py.ThreadPoolExecutor,
        Threaded=_thread_pool_py.Threaded,
        BoundThreaded=_thread_pool_py.BoundThreaded,
        ThreadedSeparate=_make_threaded_separate(_thread_pool_py.Threaded),
    )


def _c_twins(c_module: types.ModuleType) -> types.SimpleNamespace:
    class ThreadPoolExecutor(ThreadPoolExecutorBase):
        __doc__ = ThreadPoolExecutorBase.__doc__
        _core_type = c_module.Executor

    ThreadedBase.register(c_module.Threaded)
    ThreadedBase.register(c_module.BoundThreaded)
    return types.SimpleNamespace(
        ThreadPoolExecutor=ThreadPoolExecutor,
        Threaded=c_module.Threaded,
        BoundThreaded=c_module.BoundThreaded,
        ThreadedSeparate=_make_threaded_separate(c_module.Threaded),
    )


# The Python twins are what a type checker sees; the C twins run when built.
_c = _compat.import_c_module("_thread_pool")
_c_namespace = _c_twins(_c) if _c is not None else None
if TYPE_CHECKING or _c_namespace is None:
    from ._thread_pool_py import BoundThreaded, Threaded, ThreadPoolExecutor
else:
    ThreadPoolExecutor = _c_namespace.ThreadPoolExecutor
    Threaded = _c_namespace.Threaded
    BoundThreaded = _c_namespace.BoundThreaded

if TYPE_CHECKING:
    class ThreadedSeparate(Threaded[P, T]):
        """Like Threaded, but every call runs in a new thread."""

        detach: bool

        def __init__(self, func: Callable[P, T], detach: bool = True) -> None:
            ...
else:
    ThreadedSeparate = (_c_namespace or _python_twins()).ThreadedSeparate

_compat.bind_twins(
    "thread_pool", globals(), _python_twins, _c_namespace,
    ["ThreadPoolExecutor", "Threaded", "BoundThreaded", "ThreadedSeparate"],
)


# -- decorators ---------------------------------------------------------------

def _unwrap(func: Any) -> Any:
    if isinstance(func, (staticmethod, classmethod)):
        return func.__func__
    return func


# A generator function becomes a ThreadedIterable (first overload: a
# generator function is also a Callable[P, T]).
@overload
def threaded(  # type: ignore[overload-overlap]
    func: Callable[P, Generator[T, None, None]],
) -> ThreadedIterable[P, T]:
    ...


@overload
def threaded(func: Callable[P, T]) -> Threaded[P, T]:
    ...


def threaded(
    func: Callable[P, T] | Callable[P, Generator[T, None, None]],
) -> Threaded[P, T] | ThreadedIterable[P, T]:
    """Run ``func`` in the default executor; a generator function becomes a
    ``threaded_iterable`` with ``THREADED_ITERABLE_DEFAULT_MAX_SIZE``."""
    if inspect.isgeneratorfunction(_unwrap(func)):
        return threaded_iterable(
            func,  # type: ignore[arg-type]
            max_size=THREADED_ITERABLE_DEFAULT_MAX_SIZE,
        )
    return Threaded(func)   # type: ignore[arg-type]  # not a generator


@overload
def threaded_separate(
    func: Callable[P, T], detach: bool = True,
) -> ThreadedSeparate[P, T]:
    ...


@overload
def threaded_separate(
    func: bool | None = None, detach: bool = True,
) -> Callable[[Callable[P, T]], ThreadedSeparate[P, T]]:
    ...


def threaded_separate(
    func: Callable[P, T] | bool | None = None, detach: bool = True,
) -> ThreadedSeparate[P, T] | Callable[[Callable[P, T]], ThreadedSeparate[P, T]]:
    """Like ``threaded`` but every call runs in a new thread.

    ``@threaded_separate``, ``@threaded_separate(detach=False)`` and (17.x
    style) ``@threaded_separate(False)`` all work; a bool first argument is
    taken as ``detach`` (17.x ignored it).
    """
    if isinstance(func, bool):
        return partial(threaded_separate, detach=func)  # type: ignore[return-value]
    if func is None:
        return partial(threaded_separate, detach=detach)  # type: ignore[return-value]
    if iscoroutinefunction(_unwrap(func)):
        raise TypeError("Can not wrap coroutine")
    return ThreadedSeparate(func, detach=detach)


class ThreadedIterableBase(Generic[P, T], ABC):
    """Holds ``func`` and ``max_size``; calling returns an IteratorWrapper
    (an async iterator and async context manager of the items)."""

    func: Callable[..., Generator[T, None, None]]
    max_size: int

    @abstractmethod
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ...

    def sync_call(
        self, *args: P.args, **kwargs: P.kwargs,
    ) -> Generator[T, None, None]:
        return self.func(*args, **kwargs)

    def async_call(
        self, /, *args: P.args, **kwargs: P.kwargs,
    ) -> IteratorWrapper[P, T]:
        return self.create_wrapper(*args, **kwargs)

    def create_wrapper(
        self, *args: P.args, **kwargs: P.kwargs,
    ) -> IteratorWrapper[P, T]:
        from .iterator_wrapper import IteratorWrapper

        return IteratorWrapper(
            partial(self.func, *args, **kwargs), max_size=self.max_size,
        )

    def __call__(
        self, *args: P.args, **kwargs: P.kwargs,
    ) -> IteratorWrapper[P, T]:
        return self.async_call(*args, **kwargs)

    def __repr__(self) -> str:
        func = getattr(self.func, "func", self.func)
        name = getattr(func, "__name__", type(func).__name__)
        return f"<{type(self).__name__} {name} at {id(self):#x}>"


class ThreadedIterable(ThreadedIterableBase[P, T]):
    func_type: type

    def __init__(
        self, func: Callable[P, Generator[T, None, None]], max_size: int = 0,
    ) -> None:
        if isinstance(func, (staticmethod, classmethod)):
            self.func_type = type(func)
            self.func = func.__func__
        else:
            self.func_type = type(func)
            self.func = func
        self.max_size = max_size

    # Read from the class: the ThreadedIterable itself; from an instance: a
    # BoundThreadedIterable without the ``self`` parameter.
    @overload
    def __get__(
        self, instance: None, owner: Optional[type] = None,
    ) -> ThreadedIterable[P, T]:
        ...

    @overload
    def __get__(
        self: ThreadedIterable[Concatenate[S, BP], T], instance: S,
        owner: Optional[type] = None,
    ) -> BoundThreadedIterable[BP, T]:
        ...

    def __get__(
        self, instance: Any, owner: Optional[type] = None,
    ) -> Union[ThreadedIterable[P, T], BoundThreadedIterable[Any, T]]:
        if self.func_type is staticmethod:
            return self
        if self.func_type is classmethod:
            cls = owner if owner is not None else type(instance)
            return BoundThreadedIterable(self.func, cls, self.max_size)
        if instance is not None:
            return BoundThreadedIterable(self.func, instance, self.max_size)
        return self


class BoundThreadedIterable(ThreadedIterableBase[P, T]):
    def __init__(
        self,
        func: Callable[..., Generator[T, None, None]],
        instance: Any,
        max_size: int = 0,
    ) -> None:
        self.instance = instance
        self.func = partial(func, instance)
        self.max_size = max_size


@overload
def threaded_iterable(
    func: Callable[P, Generator[T, None, None]], *, max_size: int = 0,
) -> ThreadedIterable[P, T]:
    ...


@overload
def threaded_iterable(
    *, max_size: int = 0,
) -> Callable[
    [Callable[P, Generator[T, None, None]]], ThreadedIterable[P, T],
]:
    ...


def threaded_iterable(
    func: Optional[Callable[P, Generator[T, None, None]]] = None,
    *,
    max_size: int = 0,
) -> ThreadedIterable[P, T] | Callable[
    [Callable[P, Generator[T, None, None]]], ThreadedIterable[P, T],
]:
    """Iterate a generator function in the default executor:
    ``async for item in fn(): ...``."""
    if func is None:
        return lambda f: ThreadedIterable(f, max_size=max_size)
    return ThreadedIterable(func, max_size=max_size)


class ThreadedIterableSeparate(ThreadedIterable[P, T]):
    def create_wrapper(
        self, *args: P.args, **kwargs: P.kwargs,
    ) -> IteratorWrapperSeparate[P, T]:
        from .iterator_wrapper import IteratorWrapperSeparate

        return IteratorWrapperSeparate(
            partial(self.func, *args, **kwargs), max_size=self.max_size,
        )


@overload
def threaded_iterable_separate(
    func: Callable[P, Generator[T, None, None]], *, max_size: int = 0,
) -> ThreadedIterableSeparate[P, T]:
    ...


@overload
def threaded_iterable_separate(
    *, max_size: int = 0,
) -> Callable[
    [Callable[P, Generator[T, None, None]]], ThreadedIterableSeparate[P, T],
]:
    ...


def threaded_iterable_separate(
    func: Optional[Callable[P, Generator[T, None, None]]] = None,
    *,
    max_size: int = 0,
) -> ThreadedIterableSeparate[P, T] | Callable[
    [Callable[P, Generator[T, None, None]]], ThreadedIterableSeparate[P, T],
]:
    """Like ``threaded_iterable``; each iteration runs in a new thread."""
    if func is None:
        return lambda f: ThreadedIterableSeparate(f, max_size=max_size)
    return ThreadedIterableSeparate(func, max_size=max_size)


# -- calling async code from threads -------------------------------------------

class CoroutineWaiter:
    """Run ``coroutine`` on ``loop`` (default ``EVENT_LOOP.get()``) from
    another thread: ``start()``, then ``wait()`` blocks for the result."""

    # How often wait() checks that the loop is still alive.
    LOOP_CHECK_INTERVAL = 0.5

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, T],
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ):
        self.__coro = coroutine
        self.__loop = loop or EVENT_LOOP.get()
        self.__event = threading.Event()
        self.__result: Any = None
        self.__exception: Optional[BaseException] = None

    def _on_result(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            self.__exception = asyncio.CancelledError()
        else:
            self.__exception = task.exception()
            if self.__exception is None:
                self.__result = task.result()
        self.__event.set()

    def _awaiter(self) -> None:
        try:
            task = self.__loop.create_task(self.__coro)
        except BaseException as e:
            self.__exception = e
            self.__event.set()
            return
        task.add_done_callback(self._on_result)

    def start(self) -> None:
        self.__loop.call_soon_threadsafe(self._awaiter)

    def wait(self) -> Any:
        # Waking up now and then lets a closed loop raise instead of
        # blocking this thread forever.
        while not self.__event.wait(self.LOOP_CHECK_INTERVAL):
            if self.__loop.is_closed():
                try:
                    self.__coro.close()   # no "never awaited" warning
                except RuntimeError:      # pragma: no cover
                    pass
                raise RuntimeError(
                    "Event loop was closed while waiting for the coroutine",
                )
        if self.__exception is not None:
            raise self.__exception
        return self.__result


def wait_coroutine(
    coro: Coroutine[Any, Any, T],
    loop: Optional[asyncio.AbstractEventLoop] = None,
) -> T:
    """Run ``coro`` on ``loop`` from another thread and block for its result
    (deadlocks on the loop's own thread)."""
    waiter = CoroutineWaiter(coro, loop)
    waiter.start()
    result: T = waiter.wait()
    return result


def sync_wait_coroutine(
    loop: Optional[asyncio.AbstractEventLoop],
    coro_func: Callable[..., Coroutine[Any, Any, T]],
    *args: Any,
    **kwargs: Any,
) -> T:
    return wait_coroutine(coro_func(*args, **kwargs), loop=loop)


def sync_await(
    func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any,
) -> T:
    """``await func(*args, **kwargs)`` on the loop in ``EVENT_LOOP`` from a
    thread, blocking until done."""
    async def awaiter() -> T:
        return await func(*args, **kwargs)

    return wait_coroutine(awaiter())
