"""Calls a function again and again, as a strategy says (mirror of
``aiomisc.recurring``).

A strategy is a callable taking the :class:`RecurringCallback` and returning
the delay before the next call (or an awaitable of it).  It may raise
:class:`StrategySkip` to wait without calling, or :class:`StrategyStop` (any
other :class:`StrategyException`) to end the schedule.  Calls never overlap:
the next delay is asked for only once the previous call has finished.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, Optional, Tuple, Type

from .counters import Statistic
from .utils import awaitable, shield as shield_decorator

__all__ = (
    "CallbackType",
    "ExceptionsType",
    "RecurringCallback",
    "RecurringCallbackStatistic",
    "RecurringCallbackStrategy",
    "StrategyException",
    "StrategySkip",
    "StrategyStop",
)

log = logging.getLogger(__name__)

ExceptionsType = Tuple[Type[Exception], ...]
CallbackType = Callable[..., Any]
RecurringCallbackStrategy = Callable[["RecurringCallback"], Any]


class RecurringCallbackStatistic(Statistic):
    call_count: int
    done: int
    fail: int
    sum_time: float


class StrategyException(Exception):
    """Base of the exceptions a strategy raises to steer the schedule."""


class StrategyStop(StrategyException):
    """Raised by a strategy to end the schedule."""


class StrategySkip(StrategyException):
    """Raised by a strategy to wait ``next_attempt_delay`` seconds and ask
    again, without calling the function this time."""

    def __init__(self, next_attempt_delay: int | float):
        self.delay = next_attempt_delay


def check_exceptions(suppress_exceptions: Any) -> ExceptionsType:
    """``suppress_exceptions`` as a tuple usable in ``except``, checked now
    rather than at the first failing call."""
    if isinstance(suppress_exceptions, type):
        suppress_exceptions = (suppress_exceptions,)
    exceptions = tuple(suppress_exceptions)
    for kind in exceptions:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(
                "suppress_exceptions must hold exception classes, "
                f"not {kind!r}",
            )
    return exceptions


def current_loop(loop: Optional[asyncio.AbstractEventLoop]) -> asyncio.AbstractEventLoop:
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()


def checked_delay(strategy: Any, delay: Any) -> Optional[float]:
    """The delay a strategy returned, or ``None`` when it is not a number
    (the schedule ends).  A negative delay counts as zero."""
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        log.warning(
            "Strategy %r returns wrong delay %r. Stopping.", strategy, delay,
        )
        return None
    if delay < 0:
        log.warning(
            "Strategy %r returns negative delay %r. Zero delay will be used.",
            strategy, delay,
        )
        return 0
    return delay


def _resolve(future: asyncio.Future[Any], _: Any) -> None:
    if not future.done():
        future.set_result(None)


class RecurringCallback:
    __slots__ = ("_statistic", "args", "func", "kwargs", "name")

    def __init__(
        self,
        coroutine_func: CallbackType,
        *args: Any,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.func: Callable[..., Awaitable[Any]] = awaitable(coroutine_func)
        self.name: str = name or repr(coroutine_func)
        self.args: Tuple[Any, ...] = args
        self.kwargs: Mapping[str, Any] = MappingProxyType(kwargs)
        self._statistic = RecurringCallbackStatistic(name=self.name)

    async def _exec(
        self,
        loop: asyncio.AbstractEventLoop,
        suppress_exceptions: ExceptionsType = (),
    ) -> None:
        statistic = self._statistic
        statistic.call_count += 1
        started = loop.time()
        try:
            await self.func(*self.args, **self.kwargs)
        except suppress_exceptions:
            statistic.fail += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            statistic.fail += 1
            log.exception("Recurring task error:")
        else:
            statistic.done += 1
        finally:
            statistic.sum_time += loop.time() - started

    async def _start(
        self,
        strategy: Callable[["RecurringCallback"], Awaitable[Any]],
        loop: asyncio.AbstractEventLoop,
        *,
        shield: bool = False,
        suppress_exceptions: ExceptionsType = (),
    ) -> None:
        runner = shield_decorator(self._exec) if shield else self._exec

        while not loop.is_closed():
            try:
                delay = checked_delay(strategy, await strategy(self))
            except StrategySkip as skip:
                await asyncio.sleep(skip.delay)
                continue
            except StrategyException:
                return
            if delay is None:
                return

            await asyncio.sleep(delay)
            call = loop.create_task(
                runner(loop=loop, suppress_exceptions=suppress_exceptions),
            )
            # Wait for the call without taking its outcome: a call that is
            # cancelled (or raises CancelledError) must not end the schedule.
            finished: asyncio.Future[Any] = loop.create_future()
            call.add_done_callback(partial(_resolve, finished))
            try:
                await finished
            except asyncio.CancelledError:
                if not call.done():
                    call.cancel()
                    await asyncio.gather(call, return_exceptions=True)
                raise

    def start(
        self,
        strategy: RecurringCallbackStrategy,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        *,
        shield: bool = False,
        suppress_exceptions: ExceptionsType = (),
    ) -> asyncio.Task[Any]:
        strategy = awaitable(strategy)
        suppress_exceptions = check_exceptions(suppress_exceptions)
        loop = current_loop(loop)
        return loop.create_task(
            self._start(
                strategy=strategy,
                loop=loop,
                shield=shield,
                suppress_exceptions=suppress_exceptions,
            ),
        )

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}({self.name})>"
