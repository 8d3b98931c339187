"""Calls a function every ``interval`` seconds (mirror of
``aiomisc.periodic``).

One task runs the whole schedule and calls the function itself, instead of
starting a task per call as aiomisc's ``RecurringCallback`` engine does
(with ``shield=True`` each call still gets a task, which ``stop()`` leaves
running).  Calls therefore never overlap, and the period is ``interval``
plus the duration of the call.  The statistics are those of the underlying
:class:`RecurringCallback`.  One difference: the calls share the schedule's
task, so ``asyncio.current_task()`` and context variables set by one call
are seen by the next.
"""
from __future__ import annotations

import asyncio
import logging
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


def _cancel_requested(task: Optional[asyncio.Task], raised: bool) -> bool:
    """Whether ``task`` itself is being cancelled (``raised``: a call just
    raised ``CancelledError``, which may be the callback's own doing).
    Python 3.10 cannot tell: there, a ``CancelledError`` raised by a call
    always counts as a cancellation, and a call that swallows one does
    not."""
    cancelling = getattr(task, "cancelling", None)
    if cancelling is None:
        return raised
    return cancelling() > 0


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


class PeriodicCallback(EventLoopMixin):
    """Calls ``coroutine_func(*args, **kwargs)`` every ``interval`` seconds
    once started; the keyword ``name`` names it (and its statistics)."""

    __slots__ = ("_recurring_callback", "_func", "_task") + EventLoopMixin.__slots__

    def __init__(self, coroutine_func: CallbackType, *args: Any, **kwargs: Any):
        self._recurring_callback = RecurringCallback(
            coroutine_func, *args, **kwargs,
        )
        self._func = coroutine_func
        self._task: Optional[asyncio.Task] = None

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
        task = loop.create_task(_schedule(
            self._recurring_callback, self._func, loop,
            interval, checked or 0, shield, suppress_exceptions,
        ))
        self._task = task

        def forget(_: Any) -> None:
            if self._task is task:
                self._task = None

        task.add_done_callback(forget)

    def stop(self, return_exceptions: bool = False) -> asyncio.Future:
        task, self._task = self._task, None
        if task is None:
            finished: asyncio.Future = self.loop.create_future()
            finished.set_exception(RuntimeError("Callback not started"))
        else:
            task.cancel()
            finished = task
        return asyncio.gather(finished, return_exceptions=return_exceptions)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._recurring_callback.name})"
