"""Batching of concurrent single-argument calls (mirror of
``aiomisc.aggregate``).

``await f(x1)``, ``await f(x2)``, ... made while a batch is open become one
call ``await func(x1, x2, ...)``.  A batch opens with its first call and
closes ``leeway_ms`` later (one loop timer per batch) or as soon as it holds
``max_count`` arguments.  One of its callers then runs ``func`` for the whole
batch, in its own task; if that caller is cancelled meanwhile, the next
caller still waiting runs it again.
"""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, List, Optional, Protocol, TypeVar

from .compat import EventLoopMixin
from .counters import Statistic

__all__ = (
    "AggregateAsyncFunc",
    "AggregateFunc",
    "AggregateStatistic",
    "Aggregator",
    "AggregatorAsync",
    "Arg",
    "ResultNotSetError",
    "aggregate",
    "aggregate_async",
)

log = logging.getLogger(__name__)

V = TypeVar("V")
R = TypeVar("R")
S = TypeVar("S", contravariant=True)
T = TypeVar("T", covariant=True)


if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Arg(Generic[V, R]):
        value: V
        future: "asyncio.Future[R]"


def _make_arg_class() -> type:
    # A frozen dataclass, as in aiomisc; made on first use, because
    # "import aiomisc_c" (which imports this module) does not import
    # dataclasses.
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Arg(Generic[V, R]):
        value: V
        future: "asyncio.Future[R]"

    Arg.__module__ = __name__
    Arg.__qualname__ = "Arg"
    globals()["Arg"] = Arg
    return Arg


def __getattr__(name: str) -> Any:
    if name == "Arg":
        return _make_arg_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ResultNotSetError(Exception):
    """The aggregated function left this caller's result unset."""


class AggregateAsyncFunc(Protocol, Generic[V, R]):
    __name__: str

    async def __call__(self, *args: "Arg[V, R]") -> None: ...


class AggregateFunc(Protocol, Generic[S, T]):
    __name__: str

    async def __call__(self, *args: S) -> Iterable[T]: ...


class _BatchFunc(Protocol[S, T]):
    # What @aggregate accepts: any callable taking the values variadically
    # and giving an awaitable of the results (no __name__ needed).
    def __call__(self, *args: S) -> Awaitable[Iterable[T]]: ...


class _ArgBatchFunc(Protocol[V, R]):
    # What @aggregate_async accepts: the Arg objects, variadically; what it
    # returns is ignored.
    def __call__(self, *args: "Arg[V, R]") -> Awaitable[object]: ...


class AggregateStatistic(Statistic):
    leeway_ms: float
    max_count: int
    success: int
    error: int
    done: int


def _has_variadic_positional(func: Callable[..., Any]) -> bool:
    return any(
        parameter.kind == inspect.Parameter.VAR_POSITIONAL
        for parameter in inspect.signature(func).parameters.values()
    )


def _check_variadic(func: Callable[..., Any]) -> None:
    if not _has_variadic_positional(func):
        raise ValueError("Function must accept variadic positional arguments")


def _retrieve(future: "asyncio.Future[Any]") -> None:
    # The caller of this future is gone (cancelled): whatever the batch sets
    # on it later must not be reported as "never retrieved".
    if not future.cancelled():
        future.exception()


class _Batch:
    """Arguments gathered by one open batch, and who waits for what.

    ``waiters`` are the private futures of the callers currently waiting
    (for the batch to close, or for a running execution to end); they are
    all woken at once.  Callers never await a shared future, so cancelling
    one caller cannot cancel the others' wait.
    """

    __slots__ = ("args", "futures", "first_call_at", "timer", "closed",
                 "running", "waiters")

    def __init__(self, first_call_at: float):
        self.args: List[Any] = []
        self.futures: List[asyncio.Future[Any]] = []
        self.first_call_at = first_call_at
        self.timer: Optional[asyncio.TimerHandle] = None
        self.closed = False
        self.running = False
        self.waiters: List[asyncio.Future[None]] = []

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class AggregatorAsync(EventLoopMixin, Generic[V, R]):
    """Batches calls of ``func(*args: Arg)``, which sets each
    ``arg.future`` itself."""

    def __init__(
        self,
        func: _ArgBatchFunc[V, R],
        *,
        leeway_ms: float,
        max_count: Optional[int] = None,
        statistic_name: Optional[str] = None,
    ):
        self._setup(func, leeway_ms, max_count, statistic_name)

    def _setup(
        self,
        func: Callable[..., Awaitable[Any]],
        leeway_ms: float,
        max_count: Optional[int],
        statistic_name: Optional[str],
    ) -> None:
        _check_variadic(func)
        if max_count is not None and max_count <= 0:
            raise ValueError("max_count must be positive int or None")
        if leeway_ms <= 0:
            raise ValueError("leeway_ms must be positive float")

        self._loop = None
        self._func: Callable[..., Awaitable[Any]] = func
        self._max_count = max_count
        self._leeway = leeway_ms / 1000
        self._batch: Optional[_Batch] = None
        self._statistic = AggregateStatistic(statistic_name)
        self._statistic.leeway_ms = self.leeway_ms
        self._statistic.max_count = max_count or 0

    @property
    def max_count(self) -> Optional[int]:
        return self._max_count

    @property
    def leeway_ms(self) -> float:
        return self._leeway * 1000

    @property
    def count(self) -> int:
        batch = self._batch
        return len(batch.args) if batch is not None else 0

    def _open(self, loop: asyncio.AbstractEventLoop) -> _Batch:
        """A new batch, closed by the loop timer ``leeway_ms`` from now."""
        batch = self._batch = _Batch(loop.time())
        batch.timer = loop.call_at(
            batch.first_call_at + self._leeway, self._close_by_timer, batch,
        )
        return batch

    def _close(self, batch: _Batch) -> None:
        """No more arguments join ``batch``; its waiting callers wake up."""
        if batch.closed:
            return
        batch.closed = True
        if self._batch is batch:
            self._batch = None
        if batch.timer is not None:
            batch.timer.cancel()
        batch.wake()

    def _close_by_timer(self, batch: _Batch) -> None:
        log.debug(
            "Aggregation timeout of %s for batch started at %.4f "
            "with %d calls after %.2f ms",
            getattr(self._func, "__name__", self._func),
            batch.first_call_at,
            len(batch.futures),
            (self.loop.time() - batch.first_call_at) * 1000,
        )
        self._close(batch)

    async def _execute(
        self, *, args: List[Any], futures: "List[asyncio.Future[Any]]",
    ) -> None:
        """Run the batch once (:meth:`_call`) and settle what it left: an
        exception of the function goes to every unset future, a future still
        unset then gets :class:`ResultNotSetError`.  A cancellation goes on
        untouched: another caller of the batch runs it again."""
        statistic = self._statistic
        try:
            await self._call(args, futures)
            statistic.success += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            statistic.error += 1
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            statistic.done += 1
        for future in futures:
            if not future.done():
                future.set_exception(ResultNotSetError())

    async def _call(
        self, args: List[Any], futures: "List[asyncio.Future[Any]]",
    ) -> None:
        """Call the function on the batch: here with :class:`Arg` objects,
        whose futures the function sets itself."""
        arg_class = globals().get("Arg") or _make_arg_class()
        await self._func(*[
            arg_class(value=value, future=future)
            for value, future in zip(args, futures)
        ])

    async def _wait(self, batch: _Batch, future: "asyncio.Future[Any]") -> None:
        waiter = self.loop.create_future()
        batch.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            future.add_done_callback(_retrieve)
            raise

    async def _run(self, batch: _Batch, future: "asyncio.Future[Any]") -> None:
        batch.running = True
        try:
            await self._execute(args=batch.args, futures=batch.futures)
        except asyncio.CancelledError:
            future.add_done_callback(_retrieve)
            raise
        finally:
            batch.running = False
            batch.wake()

    async def aggregate(self, arg: V) -> R:
        loop = self._loop or self.loop
        batch = self._batch or self._open(loop)
        future: asyncio.Future[R] = loop.create_future()
        batch.args.append(arg)
        batch.futures.append(future)

        if len(batch.args) == self._max_count:
            self._close(batch)
        else:
            # Inlined _wait: this is the path of every caller but one.
            waiter = loop.create_future()
            batch.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                future.add_done_callback(_retrieve)
                raise

        while not future.done():
            if batch.running:
                await self._wait(batch, future)
            else:
                await self._run(batch, future)
        return future.result()


class Aggregator(AggregatorAsync[V, R], Generic[V, R]):
    """Batches calls of ``func(*values)``, which returns the results in
    argument order."""

    def __init__(
        self,
        func: _BatchFunc[V, R],
        *,
        leeway_ms: float,
        max_count: Optional[int] = None,
        statistic_name: Optional[str] = None,
    ) -> None:
        self._setup(func, leeway_ms, max_count, statistic_name)

    async def _call(
        self, args: List[Any], futures: "List[asyncio.Future[Any]]",
    ) -> None:
        """Call the function on the values; its results, in argument order,
        set the futures."""
        results = await self._func(*args)
        for future, result in zip(futures, results):
            if not future.done():
                future.set_result(result)

    # The results are set by this class, never by the function: a caller
    # waits on its result future alone, and the caller that is to run the
    # batch is woken by the result _EXECUTE.

    def _close_by_timer(self, batch: _Batch) -> None:
        super()._close_by_timer(batch)
        self._hand_over(batch)

    @staticmethod
    def _hand_over(batch: _Batch) -> None:
        for future in batch.futures:
            if not future.done():
                future.set_result(_EXECUTE)
                return

    async def aggregate(self, arg: V) -> R:
        loop = self._loop or self.loop
        batch = self._batch or self._open(loop)
        future: asyncio.Future[R] = loop.create_future()
        index = len(batch.args)
        batch.args.append(arg)
        batch.futures.append(future)

        if index + 1 == self._max_count:
            self._close(batch)
        else:
            try:
                result: R = await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    # Chosen to run the batch, but cancelled before it could.
                    self._hand_over(batch)
                raise
            if result is not _EXECUTE:
                return result
            future = batch.futures[index] = loop.create_future()

        try:
            await self._execute(args=batch.args, futures=batch.futures)
        except asyncio.CancelledError:
            # The next caller still waiting runs the batch again.
            future.cancel()
            self._hand_over(batch)
            raise
        return future.result()


_EXECUTE: Any = object()


def aggregate(
    leeway_ms: float, max_count: Optional[int] = None,
) -> Callable[[_BatchFunc[V, R]], Callable[[V], Coroutine[Any, Any, R]]]:
    """Batch concurrent ``await f(x)`` calls into ``await func(x1, x2, ...)``.

    ``func`` takes variadic positional arguments and returns the results in
    argument order; an exception it raises goes to every caller of the
    batch.  A batch runs ``leeway_ms`` after its first call, or as soon as it
    holds ``max_count`` arguments.
    """
    def decorator(
        func: _BatchFunc[V, R],
    ) -> Callable[[V], Coroutine[Any, Any, R]]:
        return Aggregator(func, max_count=max_count, leeway_ms=leeway_ms).aggregate

    return decorator


def aggregate_async(
    leeway_ms: float, max_count: Optional[int] = None,
) -> Callable[[_ArgBatchFunc[V, R]], Callable[[V], Coroutine[Any, Any, R]]]:
    """Like :func:`aggregate`, but ``func`` receives :class:`Arg` objects
    and sets each ``arg.future`` itself; a future it leaves unset gets
    :class:`ResultNotSetError`."""
    def decorator(
        func: _ArgBatchFunc[V, R],
    ) -> Callable[[V], Coroutine[Any, Any, R]]:
        return AggregatorAsync(
            func, max_count=max_count, leeway_ms=leeway_ms,
        ).aggregate

    return decorator
