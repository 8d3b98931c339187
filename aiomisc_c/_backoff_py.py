"""Pure-Python twin of ``aiomisc_c._backoff``: ``asyncbackoff``, ``asyncretry``
and the ``timeout`` decorator.  ``csrc/backoff.c`` does the same.

How a call runs (both twins)
----------------------------
Everything happens in the task that awaits the call: no task is created, per
call or per attempt (17.x wraps each call in ``asyncio.wait_for`` twice).

* At most one loop timer is armed at a time.  During an attempt it is armed
  for whichever comes first of the attempt's end (``attempt_timeout``) and
  the deadline.  When it fires it cancels the task, as ``asyncio.timeout``
  does; the attempt's ``CancelledError`` is turned into ``TimeoutError`` only
  if that timer fired and, on 3.11+, ``task.uncancel()`` shows no other
  cancellation pending.  A cancellation that did not come from our timer is
  never swallowed, retried or turned into a timeout.  (Python 3.10 has no
  ``uncancel``: as in the ``async-timeout`` backport, a ``CancelledError``
  seen after our timer fired is taken as ours.)
* Between attempts the call waits on a loop future, resolved by a timer at
  the end of the pause or at the deadline, whichever comes first (no
  cancellation involved).  With ``pause=0`` the next attempt starts at once
  (17.x sleeps 0, i.e. waits one loop iteration); every 16th retry in a row
  yields to the loop, so that a function failing synchronously forever
  cannot starve it.  The deadline is checked before every attempt.
* ``deadline`` bounds every attempt and every pause; when it expires the
  last attempt's exception is raised if there was one, else
  ``asyncio.TimeoutError``.  ``deadline=0`` fails before any attempt; an
  ``attempt_timeout`` of 0 times every attempt out before it starts (the
  coroutine is created and closed, as ``wait_for(..., 0)`` does).
* ``CancelledError``, ``KeyboardInterrupt``, ``SystemExit`` and
  ``GeneratorExit`` are never retried, whatever ``exceptions`` says.

Statistics (``BackoffStatistic``, shared by every call of one ``Backoff``),
as 17.x counts them: ``attempts`` +1 when an attempt starts; ``done`` +1 and
``sum_time`` += its duration (monotonic clock, pause included) when it ends,
however it ends; ``errors`` +1 per retryable failure; ``cancels`` +1 per
attempt ended by a cancellation (the caller's, or the deadline's).
"""
from __future__ import annotations

import asyncio
import math
import time
from functools import wraps
from typing import (
    Any, Callable, Coroutine, Generic, Optional, ParamSpec, Tuple, Type, TypeVar,
)

from ._backoff_base import (
    BackoffStatistic, Number, RetryStatistic, TimeoutError_, check_policy,
    check_timeout, iscoroutinefunction, make_factories, timer_seconds,
)

__all__ = (
    "Backoff",
    "BackoffExecution",
    "BackoffStatistic",
    "RetryStatistic",
    "asyncbackoff",
    "asyncretry",
    "timeout",
)

T = TypeVar("T")
P = ParamSpec("P")

_HAS_UNCANCEL = hasattr(asyncio.Task, "uncancel")
_CancelledError = asyncio.CancelledError
_NEVER_RETRIED = (
    asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit,
)
_monotonic = time.monotonic

# With pause=0 the next attempt starts at once, but every _YIELD_EVERY-th
# retry in a row yields to the loop first (so that a function failing
# synchronously forever cannot starve the loop).
_YIELD_EVERY = 16

# What the armed attempt timer stands for.
_ATTEMPT = 1    # the attempt's own timeout
_DEADLINE = 2   # the deadline of the whole call


def _timeout_error(cause: Optional[BaseException]) -> BaseException:
    error = TimeoutError_()
    if cause is not None:
        error.__cause__ = cause
        error.__context__ = cause
    return error


def _discard(awaitable: Any) -> None:
    """Close an awaitable that will never run (``wait_for(aw, 0)``)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def _wake(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


class _AttemptTimer:
    """The timer of one call's attempts, in the task that runs the call."""

    __slots__ = ("loop", "task", "baseline", "handle", "kind", "fired")

    def __init__(self, what: str):
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError(f"{what} with a time limit must run in a task")
        self.loop = loop
        self.task = task
        # cancellations requested before the call are not ours to judge
        self.baseline = (
            task.cancelling()  # type: ignore[attr-defined, unused-ignore]
            if _HAS_UNCANCEL else 0
        )
        self.handle: Optional[asyncio.TimerHandle] = None
        self.kind = 0
        self.fired = 0

    def arm(self, when: float, kind: int) -> None:
        self.kind = kind
        self.handle = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.handle = None
        self.fired = self.kind
        self.task.cancel()

    def settle(self, error: Optional[BaseException]) -> int:
        """Disarm after an attempt that ended with ``error`` (``None``: it
        returned).  Returns the kind of timer that turned it into a
        ``CancelledError``, or 0 when the error is not ours."""
        handle = self.handle
        if handle is not None:
            self.handle = None
            handle.cancel()
        fired, self.fired = self.fired, 0
        if not fired:
            return 0
        if _HAS_UNCANCEL and (
            self.task.uncancel()  # type: ignore[attr-defined, unused-ignore]
            > self.baseline
        ):
            return 0    # somebody else cancelled the task too: not ours
        return fired if isinstance(error, _CancelledError) else 0


async def _sleep(
    loop: asyncio.AbstractEventLoop, pause: float, deadline_at: Optional[float],
) -> bool:
    """Sleep ``pause`` seconds or until ``deadline_at``, whichever comes
    first; returns true when the deadline did."""
    when = loop.time() + pause
    expired = deadline_at is not None and deadline_at <= when
    if expired:
        when = deadline_at  # type: ignore[assignment]  # not None: expired
    waiter = loop.create_future()
    handle = None
    if not math.isinf(when):
        handle = loop.call_at(when, _wake, waiter)
    try:
        await waiter
    finally:
        # the caller was cancelled (or worse): nothing left behind
        if handle is not None:
            handle.cancel()
        waiter.cancel()
    return expired


class BackoffExecution(Generic[P, T]):
    __slots__ = (
        "attempt_timeout", "deadline", "exceptions", "function", "giveup",
        "last_exception", "max_tries", "pause", "statistic", "total_tries",
    )

    def __init__(
        self,
        function: Callable[P, Coroutine[Any, Any, T]],
        statistic: BackoffStatistic,
        attempt_timeout: Optional[Number],
        deadline: Optional[Number],
        pause: Number = 0,
        exceptions: Tuple[Type[Exception], ...] = (),
        max_tries: Optional[int] = None,
        giveup: Optional[Callable[[Exception], bool]] = None,
    ):
        (attempt_timeout, deadline, pause, exceptions, max_tries, giveup) = (
            check_policy(
                attempt_timeout, deadline, pause, exceptions, max_tries,
                giveup, append_timeout=False,
            )
        )
        self.function = function
        self.statistic = statistic
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline
        self.pause = pause
        self.max_tries = max_tries
        self.giveup = giveup
        self.exceptions = exceptions
        self.last_exception: Optional[BaseException] = None
        self.total_tries: int = 0

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.execute(*args, **kwargs)

    def _expired(self, cause: Optional[BaseException]) -> BaseException:
        """What the caller gets when the deadline expires."""
        if self.last_exception is not None:
            return self.last_exception
        return _timeout_error(cause)

    async def execute(self, *args: P.args, **kwargs: P.kwargs) -> T:
        stat = self.statistic
        attempt_timeout = timer_seconds(self.attempt_timeout)
        deadline = timer_seconds(self.deadline)
        timer: Optional[_AttemptTimer] = None
        deadline_at: Optional[float] = None
        if attempt_timeout is not None or deadline is not None:
            timer = _AttemptTimer("asyncbackoff")
            if deadline is not None:
                if deadline <= 0:
                    raise self._expired(None)
                deadline_at = timer.loop.time() + deadline

        first = True
        immediate_retries = 0
        while True:
            now = None
            if timer is not None:
                now = timer.loop.time()
                if not first and deadline_at is not None and now >= deadline_at:
                    raise self._expired(None)
            first = False

            stat.attempts += 1
            self.total_tries += 1
            started = _monotonic()
            try:
                # the attempt, bounded by the earliest of its end and the
                # deadline; `fired` says which timer ended it, if any
                error: Optional[BaseException] = None
                fired = 0
                if timer is None:
                    try:
                        return await self.function(*args, **kwargs)
                    except BaseException as exc:
                        error = exc
                elif attempt_timeout is not None and attempt_timeout <= 0:
                    try:
                        awaitable = self.function(*args, **kwargs)
                    except BaseException as exc:
                        error = exc
                    else:
                        _discard(awaitable)
                        fired = _ATTEMPT
                else:
                    assert now is not None
                    if deadline_at is None or (
                        attempt_timeout is not None
                        and now + attempt_timeout < deadline_at
                    ):
                        timer.arm(
                            now + attempt_timeout,  # type: ignore[operator]
                            _ATTEMPT,
                        )
                    else:
                        timer.arm(deadline_at, _DEADLINE)
                    try:
                        result = await self.function(*args, **kwargs)
                    except BaseException as exc:
                        error = exc
                        fired = timer.settle(exc)
                    else:
                        timer.settle(None)
                        return result

                # the attempt failed
                if fired == _DEADLINE:
                    stat.cancels += 1       # the deadline cancelled it
                    raise self._expired(error)
                if fired == _ATTEMPT:
                    error = _timeout_error(error)
                assert error is not None
                if isinstance(error, _NEVER_RETRIED):
                    if isinstance(error, _CancelledError):
                        stat.cancels += 1
                    raise error
                if not isinstance(error, self.exceptions):
                    if isinstance(error, Exception):
                        self.last_exception = error
                    raise error

                stat.errors += 1
                self.last_exception = error
                if (
                    self.max_tries is not None
                    and self.total_tries >= self.max_tries
                ):
                    raise error
                if self.giveup is not None and self.giveup(error):
                    raise error
                error = None    # no reference cycle through the frame

                pause = float(self.pause)
                if pause <= 0:
                    # retry at once; a run of failures that never gives the
                    # loop a turn yields to it every _YIELD_EVERY retries
                    immediate_retries += 1
                    if immediate_retries % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                else:
                    loop = timer.loop if timer else asyncio.get_running_loop()
                    if await _sleep(loop, pause, deadline_at):
                        raise self._expired(None)
            finally:
                stat.sum_time += _monotonic() - started
                stat.done += 1


class Backoff:
    __slots__ = (
        "attempt_timeout", "deadline", "exceptions", "giveup", "max_tries",
        "pause", "statistic",
    )

    def __init__(
        self,
        attempt_timeout: Optional[Number],
        deadline: Optional[Number],
        pause: Number = 0,
        exceptions: Tuple[Type[Exception], ...] = (),
        max_tries: Optional[int] = None,
        giveup: Optional[Callable[[Exception], bool]] = None,
        statistic_name: Optional[str] = None,
        statistic_class: Type[BackoffStatistic] = BackoffStatistic,
    ):
        (attempt_timeout, deadline, pause, exceptions, max_tries, giveup) = (
            check_policy(
                attempt_timeout, deadline, pause, exceptions, max_tries, giveup,
            )
        )
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline
        self.pause = pause
        self.max_tries = max_tries
        self.giveup = giveup
        self.exceptions = exceptions
        self.statistic = statistic_class(statistic_name)

    def prepare(
        self, func: Callable[P, Coroutine[Any, Any, T]],
    ) -> BackoffExecution[P, T]:
        return BackoffExecution(
            function=func,
            statistic=self.statistic,
            attempt_timeout=self.attempt_timeout,
            deadline=self.deadline,
            pause=self.pause,
            max_tries=self.max_tries,
            giveup=self.giveup,
            exceptions=self.exceptions,
        )

    async def execute(
        self,
        func: Callable[P, Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        execution = self.prepare(func)
        return await execution(*args, **kwargs)

    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        if not iscoroutinefunction(func):
            raise TypeError("Function must be a coroutine function")

        @wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.execute(func, *args, **kwargs)

        return wrapper


asyncbackoff, asyncretry = make_factories(Backoff)


def timeout(
    value: Optional[Number],
) -> Callable[
    [Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]],
]:
    """Fail the decorated coroutine function with ``asyncio.TimeoutError``
    after ``value`` seconds (the coroutine is cancelled first)."""
    check_timeout(value)
    seconds = timer_seconds(value)

    def decorator(
        func: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        if not iscoroutinefunction(func):
            raise TypeError("Function is not a coroutine function")

        @wraps(func)
        async def wrap(*args: P.args, **kwargs: P.kwargs) -> T:
            if seconds is None:
                return await func(*args, **kwargs)
            timer = _AttemptTimer("timeout")
            if seconds <= 0:
                _discard(func(*args, **kwargs))
                raise _timeout_error(None)
            timer.arm(timer.loop.time() + seconds, _ATTEMPT)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                if timer.settle(exc):
                    raise _timeout_error(exc) from exc
                raise
            timer.settle(None)
            return result

        return wrap

    return decorator
