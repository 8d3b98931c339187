"""Calls a function every ``interval`` seconds (mirror of
``aiomisc.periodic``).

The schedule is a chain of loop timers rather than a task looping over
``asyncio.sleep``: a tick calls the function directly; only a call that
returns an awaitable gets a task, and the next timer is set once that task
is done.  Calls therefore never overlap, and the period is ``interval`` plus
the duration of the call, as with aiomisc's ``RecurringCallback`` engine.
The statistics are those of the underlying :class:`RecurringCallback`.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, Callable, Optional

from .compat import EventLoopMixin
from .recurring import (
    CallbackType, ExceptionsType, RecurringCallback, check_exceptions,
    checked_delay, current_loop,
)
from .recurring import log as recurring_log

__all__ = ("PeriodicCallback",)

log = logging.getLogger(__name__)


def check_interval(interval: Any) -> None:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(
            f"interval must be int or float, not {type(interval).__name__}",
        )
    if not interval > 0:
        raise AssertionError(f"interval must be positive, not {interval!r}")


class _Run:
    """One run of a :class:`PeriodicCallback`, from ``start`` to ``stop``.

    ``finished`` is cancelled when the run ends: at once by :meth:`stop`, or
    once the call in progress has been cancelled and has finished.
    """

    __slots__ = (
        "loop", "func", "args", "kwargs", "statistic", "interval", "shield",
        "suppress", "context", "finished", "timer", "call", "started",
        "stopping",
    )

    def __init__(
        self,
        recurring: RecurringCallback,
        func: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        interval: float,
        delay: float,
        shield: bool,
        suppress: ExceptionsType,
    ):
        self.loop = loop
        self.func = func
        self.args = recurring.args
        self.kwargs = recurring.kwargs
        self.statistic = recurring._statistic
        self.interval = interval
        self.shield = shield
        self.suppress = suppress
        # Every call runs in a fresh copy of the starter's context, as each
        # call of aiomisc's engine runs in a task of its own.
        self.context = contextvars.copy_context()
        self.finished: asyncio.Future = loop.create_future()
        self.call: Optional[asyncio.Future] = None
        self.started = 0.0
        self.stopping = False
        self.timer: Optional[asyncio.Handle] = loop.call_later(
            delay, self.tick, context=self.context.copy(),
        )

    def tick(self) -> None:
        self.timer = None
        if self.finished.done():
            return
        self.statistic.call_count += 1
        self.started = self.loop.time()
        try:
            result = self.func(*self.args, **self.kwargs)
            if hasattr(result, "__await__"):
                self.call = call = asyncio.ensure_future(result, loop=self.loop)
                call.add_done_callback(self.call_done)
                return
        except (Exception, asyncio.CancelledError) as exc:
            self.count(exc)
        else:
            self.count(None)
        self.schedule_next()

    def call_done(self, call: asyncio.Future) -> None:
        self.call = None
        if call.cancelled():
            self.count(asyncio.CancelledError())
        else:
            self.count(call.exception())
        if self.finished.done():
            return      # a shielded call outlived its run
        if self.stopping:
            # stop() cancelled this call and waited for it to finish.
            self.finished.cancel()
            return
        self.schedule_next()

    def count(self, exc: Optional[BaseException]) -> None:
        statistic = self.statistic
        if exc is None:
            statistic.done += 1
        elif isinstance(exc, self.suppress):
            statistic.fail += 1
        elif not isinstance(exc, asyncio.CancelledError):
            statistic.fail += 1
            recurring_log.error("Recurring task error:", exc_info=exc)
        statistic.sum_time += self.loop.time() - self.started

    def schedule_next(self) -> None:
        if self.loop.is_closed():
            return
        self.timer = self.loop.call_later(
            self.interval, self.tick, context=self.context.copy(),
        )

    def stop(self) -> asyncio.Future:
        if self.finished.done():
            return self.finished
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        call = self.call
        if call is not None and not call.done() and not self.shield:
            self.stopping = True
            call.cancel()
        else:
            self.finished.cancel()
        return self.finished


class PeriodicCallback(EventLoopMixin):
    """Calls ``coroutine_func(*args, **kwargs)`` every ``interval`` seconds
    once started; the keyword ``name`` names it (and its statistics)."""

    __slots__ = ("_recurring_callback", "_func", "_task") + EventLoopMixin.__slots__

    def __init__(self, coroutine_func: CallbackType, *args: Any, **kwargs: Any):
        self._recurring_callback = RecurringCallback(
            coroutine_func, *args, **kwargs,
        )
        self._func = coroutine_func
        self._task: Optional[_Run] = None

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
        if self._task is not None and not self._task.finished.done():
            raise asyncio.InvalidStateError
        suppress_exceptions = check_exceptions(suppress_exceptions)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(
                f"delay must be int or float, not {type(delay).__name__}",
            )
        # Negative: a warning, and no delay (as aiomisc's strategy engine).
        checked = checked_delay(f"{self!r} delay", delay)
        self._task = _Run(
            self._recurring_callback, self._func, current_loop(loop),
            interval, checked, shield, suppress_exceptions,
        )

    def stop(self, return_exceptions: bool = False) -> asyncio.Future:
        run, self._task = self._task, None
        if run is None:
            finished = self.loop.create_future()
            finished.set_exception(RuntimeError("Callback not started"))
        else:
            finished = run.stop()
        return asyncio.gather(finished, return_exceptions=return_exceptions)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._recurring_callback.name})"
