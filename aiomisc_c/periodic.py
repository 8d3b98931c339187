"""Calls a function every ``interval`` seconds (mirror of
``aiomisc.periodic``).

aiomisc runs a schedule as a task that, for every call, asks a strategy for
the delay, sleeps and starts one more task for the call.  Here each run has
one task, and a tick is a loop timer that calls the function with that task
marked as the current one and runs a coroutine's first step right away: a
call that does not wait for anything finishes within the timer callback; a
call that does is handed to the task, which finishes it.  Calls never
overlap, and the period is ``interval`` plus the duration of the call.
With ``shield=True`` each call gets a task of its own (which ``stop()``
leaves running), as in aiomisc.  The statistics are those of the underlying
:class:`RecurringCallback`.

One difference: calls share the run's task, so ``asyncio.current_task()``
is the same object for every call.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from types import CoroutineType
from typing import Any, Callable, Optional

from .compat import EventLoopMixin
from .recurring import (
    CallbackType, ExceptionsType, RecurringCallback, check_exceptions,
    checked_delay, current_loop,
)
from .recurring import log as recurring_log
from .utils import shield as shield_decorator

__all__ = ("PeriodicCallback",)

log = logging.getLogger(__name__)


def check_interval(interval: Any) -> None:
    if not interval:
        # What aiomisc's "assert interval" raises (also under python -O).
        raise AssertionError(f"interval must be positive, not {interval!r}")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(
            f"interval must be int or float, not {type(interval).__name__}",
        )
    if not interval > 0:
        raise AssertionError(f"interval must be positive, not {interval!r}")


def _cancel_requested(task: Optional[asyncio.Task[Any]], raised: bool) -> bool:
    """Whether ``task`` itself is being cancelled (``raised``: a call just
    raised ``CancelledError``, which may be the callback's own doing).
    Python 3.10 cannot tell: there, a ``CancelledError`` raised by a call
    always counts as a cancellation, and a call that swallows one does
    not."""
    cancelling = getattr(task, "cancelling", None)
    if cancelling is None:
        return raised
    count: int = cancelling()
    return count > 0


async def _schedule(
    recurring: RecurringCallback,
    func: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    interval: float,
    delay: float,
    shield: bool,
    suppress: ExceptionsType,
) -> None:
    """The task of one run: wait ``delay``, then call, wait ``interval``,
    call, ... until cancelled."""
    args, kwargs = recurring.args, recurring.kwargs
    statistic = recurring._statistic
    task = asyncio.current_task()
    sleep = asyncio.sleep
    await sleep(delay)
    while not loop.is_closed():
        if shield:
            # The call runs in a task of its own that stop() does not cancel.
            await shield_decorator(recurring._exec)(
                loop=loop, suppress_exceptions=suppress,
            )
            await sleep(interval)
            continue

        statistic.call_count += 1
        started = loop.time()
        try:
            result = func(*args, **kwargs)
            if hasattr(result, "__await__"):
                await result
        except suppress:
            statistic.fail += 1
        except asyncio.CancelledError:
            if _cancel_requested(task, raised=True):
                statistic.sum_time += loop.time() - started
                raise
        except Exception:
            statistic.fail += 1
            recurring_log.exception("Recurring task error:")
        else:
            statistic.done += 1
        statistic.sum_time += loop.time() - started
        if _cancel_requested(task, raised=False):
            # The call swallowed the cancellation meant for the schedule.
            raise asyncio.CancelledError
        await sleep(interval)


# Marking a task as the current one lets a loop callback run a coroutine
# step "inside" it (what Python 3.12's eager tasks do internally).
_enter_task: Any = getattr(asyncio.tasks, "_enter_task", None)
_leave_task: Any = getattr(asyncio.tasks, "_leave_task", None)
_NOTHING = object()


class _Resumed(Coroutine[Any, Any, Any]):
    """A coroutine that already ran its first step, for a task to finish.

    Its first ``send`` hands the task what that step yielded (a future, its
    blocking flag still set, or ``None``); everything after is passed
    through, so the task drives it as it would drive the coroutine itself.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Any, yielded: Any):
        self._coro = coro
        self._yielded = yielded

    def cancel_first(self) -> None:
        """Throw ``CancelledError`` into it instead of handing the yield."""
        self._yielded = _CANCEL

    def send(self, value: Any) -> Any:
        yielded = self._yielded
        if yielded is _NOTHING:
            return self._coro.send(value)
        self._yielded = _NOTHING
        if yielded is _CANCEL:
            return self._coro.throw(asyncio.CancelledError())
        return yielded

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._yielded = _NOTHING
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)   # pragma: no cover - legacy form

    def close(self) -> None:
        self._yielded = _NOTHING
        self._coro.close()

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.send(None)


_CANCEL = object()


class _Ticker:
    """One run of an unshielded :class:`PeriodicCallback`.

    Each tick is a loop timer that calls the function with the run's task
    marked as the current task, and runs a coroutine's first step right
    there: a call that does not wait for anything finishes without waking
    the task.  A call that does wait is handed to the task (parked on a
    future), which finishes it; the next timer is set once the call is over.
    """

    __slots__ = (
        "loop", "func", "args", "kwargs", "interval", "suppress", "task",
        "timer", "parked", "call", "started", "ints", "floats", "calls",
        "done", "fail", "time",
    )

    def __init__(
        self,
        recurring: RecurringCallback,
        func: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        interval: float,
        delay: float,
        suppress: ExceptionsType,
    ):
        self.loop = loop
        self.func = func
        self.args = recurring.args
        self.kwargs = recurring.kwargs
        # The counters' buffers, indexed directly: a descriptor read and
        # write per counter update would cost more than the rest of a tick.
        statistic = recurring._statistic
        self.ints, self.calls = statistic._counter_slot("call_count")
        self.done = statistic._counter_slot("done")[1]
        self.fail = statistic._counter_slot("fail")[1]
        self.floats, self.time = statistic._counter_slot("sum_time")
        self.interval = interval
        self.suppress = suppress
        self.started = 0.0
        self.call: Any = None
        self.parked: asyncio.Future[Any] = loop.create_future()
        self.timer: Optional[asyncio.TimerHandle] = None
        # The first timer is set by the task itself: a tick then always
        # finds the task waiting for it.
        self.task = loop.create_task(self.run(delay))

    def tick(self) -> None:
        self.timer = None
        task, loop, ints = self.task, self.loop, self.ints
        if task.done() or _cancel_requested(task, raised=False):
            return
        ints[self.calls] += 1
        self.started = loop.time()
        _enter_task(loop, task)
        try:
            result = self.func(*self.args, **self.kwargs)
            if type(result) is CoroutineType:
                try:
                    yielded = result.send(None)
                except StopIteration:
                    pass
                else:
                    self.hand_over(_Resumed(result, yielded))
                    return
            elif hasattr(result, "__await__"):
                self.hand_over(result)
                return
        except self.suppress:
            ints[self.fail] += 1
        except asyncio.CancelledError:
            pass    # raised by the callback itself: no cancel is delivered here
        except Exception:
            ints[self.fail] += 1
            recurring_log.exception("Recurring task error:")
        else:
            ints[self.done] += 1
        finally:
            _leave_task(loop, task)
        self.floats[self.time] += loop.time() - self.started
        if not loop.is_closed():
            self.timer = loop.call_later(self.interval, self.tick)

    def hand_over(self, call: Any) -> None:
        """Let the task finish ``call``, which waits for something."""
        self.call = call
        if not self.parked.done():
            self.parked.set_result(None)
        # else: the task was cancelled meanwhile (by the call itself, say);
        # it finds the call in self.call and cancels it.

    async def run(self, delay: float) -> None:
        task = self.task
        try:
            self.timer = self.loop.call_later(delay, self.tick)
            while True:
                try:
                    await self.parked
                except asyncio.CancelledError as cancelled:
                    call, self.call = self.call, None
                    if call is None:
                        raise
                    # A call was handed over as the task was cancelled: the
                    # cancellation goes into the call, then ends the run
                    # even if the call swallows it.
                    if isinstance(call, _Resumed):
                        call.cancel_first()
                    else:
                        call = _cancelled_await(call)
                    await self.finish(call, task)
                    raise cancelled
                call, self.call = self.call, None
                self.parked = self.loop.create_future()
                await self.finish(call, task)
                self.timer = self.loop.call_later(self.interval, self.tick)
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    async def finish(self, call: Any, task: asyncio.Task[Any]) -> None:
        """Finish a call that waits for something, in the run's task."""
        ints, loop = self.ints, self.loop
        try:
            await call
        except self.suppress:
            ints[self.fail] += 1
        except asyncio.CancelledError:
            if _cancel_requested(task, raised=True):
                self.floats[self.time] += loop.time() - self.started
                raise
        except Exception:
            ints[self.fail] += 1
            recurring_log.exception("Recurring task error:")
        else:
            ints[self.done] += 1
        self.floats[self.time] += loop.time() - self.started
        if _cancel_requested(task, raised=False):
            # The call swallowed the cancellation meant for the schedule.
            raise asyncio.CancelledError


async def _cancelled_await(awaitable: Any) -> Any:
    """Await ``awaitable`` after cancelling it (a future) or at once."""
    future = asyncio.ensure_future(awaitable)
    future.cancel()
    return await future


class PeriodicCallback(EventLoopMixin):
    """Calls ``coroutine_func(*args, **kwargs)`` every ``interval`` seconds
    once started; the keyword ``name`` names it (and its statistics)."""

    __slots__ = ("_recurring_callback", "_func", "_task") + EventLoopMixin.__slots__

    def __init__(self, coroutine_func: CallbackType, *args: Any, **kwargs: Any):
        self._recurring_callback = RecurringCallback(
            coroutine_func, *args, **kwargs,
        )
        self._func = coroutine_func
        self._task: Optional[asyncio.Task[Any]] = None

    def start(
        self,
        interval: int | float,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        *,
        delay: int | float = 0,
        shield: bool = False,
        suppress_exceptions: ExceptionsType = (),
    ) -> None:
        check_interval(interval)
        if self._task is not None and not self._task.done():
            raise asyncio.InvalidStateError
        suppress_exceptions = check_exceptions(suppress_exceptions)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(
                f"delay must be int or float, not {type(delay).__name__}",
            )
        # Negative: a warning, and no delay (as aiomisc's strategy engine).
        checked = checked_delay(f"{self!r} delay", delay)
        loop = current_loop(loop)
        if shield or _enter_task is None:
            task = loop.create_task(_schedule(
                self._recurring_callback, self._func, loop,
                interval, checked or 0, shield, suppress_exceptions,
            ))
        else:
            task = _Ticker(
                self._recurring_callback, self._func, loop,
                interval, checked or 0, suppress_exceptions,
            ).task
        self._task = task

        def forget(_: Any) -> None:
            if self._task is task:
                self._task = None

        task.add_done_callback(forget)

    def stop(self, return_exceptions: bool = False) -> asyncio.Future[Any]:
        task, self._task = self._task, None
        if task is None:
            finished: asyncio.Future[Any] = self.loop.create_future()
            finished.set_exception(RuntimeError("Callback not started"))
        else:
            task.cancel()
            finished = task
        return asyncio.gather(finished, return_exceptions=return_exceptions)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._recurring_callback.name})"
