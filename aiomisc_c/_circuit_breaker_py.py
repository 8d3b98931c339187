"""Circuit breaker, pure-Python twin (the readable source of truth).

The C twin (``csrc/circuit_breaker.c``) does the same thing natively.

Beyond 17.x:

* the clock is read once per guarded call (``_get_time()``), outside the lock;
* the lock is held only for bookkeeping, never while user code runs (the
  guarded function, ``exception_inspector``, an overridden ``_get_time``);
* ``CancelledError``, ``KeyboardInterrupt``, ``SystemExit`` and
  ``GeneratorExit`` are never failures;
* every count is exact when several threads share one breaker;
* ``counter()`` returns a snapshot ``Counter`` of the current bucket.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from contextlib import contextmanager
from functools import wraps
from typing import (
    Any, Awaitable, Callable, Generator, Iterable, Optional, ParamSpec,
)

from . import _circuit_breaker_base as _base
from ._circuit_breaker_base import (
    NEVER_FAILURES, CircuitBreakerStates, CircuitBreakerStatistic,
    CircuitBroken, CounterKey, ExceptionInspectorType, Number, T,
    is_awaitable, log_inspector_error, validate_arguments,
)
from .compat import EventLoopMixin

__all__ = ("CircuitBreaker", "cutout")

P = ParamSpec("P")

PASSING = CircuitBreakerStates.PASSING
BROKEN = CircuitBreakerStates.BROKEN
RECOVERING = CircuitBreakerStates.RECOVERING


class _Bucket:
    """Counts of one time bucket. A call records into the bucket that was
    current when it started, even if the window moved on meanwhile."""

    __slots__ = ("id", "fail", "ok", "total")

    def __init__(self, bucket_id: int):
        self.id = bucket_id
        self.fail = 0
        self.ok = 0
        self.total = 0

    def as_counter(self) -> "Counter[Any]":
        counter: "Counter[Any]" = Counter()
        for key, value in (
            (CounterKey.FAIL, self.fail),
            (CounterKey.OK, self.ok),
            (CounterKey.TOTAL, self.total),
        ):
            if value:
                counter[key] = value
        return counter


class _Limits:
    """The overridable class constants of one breaker, read once per call."""

    __slots__ = ("bucket_count", "passing_broken", "recover_broken")

    def __init__(self, breaker: "CircuitBreaker"):
        self.bucket_count = breaker.BUCKET_COUNT
        self.passing_broken = breaker.PASSING_BROKEN_THRESHOLD
        self.recover_broken = breaker.RECOVER_BROKEN_THRESHOLD


class CircuitBreaker(EventLoopMixin):
    __slots__ = (
        "_broken_time",
        "_counters",
        "_error_ratio",
        "_exceptions",
        "_exception_inspector",
        "_last_exception",
        "_lock",
        "_passing_time",
        "_recovery_at",
        "_recovery_time",
        "_response_time",
        "_response_time_value",
        "_state",
        "_statistic",
        "_stuck_until",
    )

    BUCKET_COUNT = 10
    # RECOVERING -> BROKEN when the recovery ratio reaches
    # RECOVER_BROKEN_THRESHOLD * error_ratio
    RECOVER_BROKEN_THRESHOLD = 0.5
    # PASSING -> BROKEN when the recovery ratio reaches this
    PASSING_BROKEN_THRESHOLD = 1

    def __init__(
        self,
        error_ratio: float,
        response_time: Number,
        exceptions: Iterable[type[Exception]] = (Exception,),
        recovery_time: Optional[Number] = None,
        broken_time: Optional[Number] = None,
        passing_time: Optional[Number] = None,
        exception_inspector: ExceptionInspectorType = None,
        statistic_name: Optional[str] = None,
    ):
        (
            self._error_ratio, self._response_time_value, self._exceptions,
            self._recovery_time, self._broken_time, self._passing_time,
            self._exception_inspector,
        ) = validate_arguments(
            error_ratio, response_time, exceptions, recovery_time,
            broken_time, passing_time, exception_inspector,
        )
        self._response_time = response_time
        self._statistic: "deque[_Bucket]" = deque(maxlen=self.BUCKET_COUNT)
        # Guards the window, the state and the counters; held only for
        # bookkeeping.  Re-entrant: dropping the last exception may run its
        # finalizer, which may use the breaker.
        self._lock = threading.RLock()
        self._state = PASSING
        self._stuck_until = 0.0
        self._recovery_at = 0.0
        self._last_exception: Optional[BaseException] = None
        self._counters = CircuitBreakerStatistic(statistic_name)
        self._counters.error_ratio_threshold = self._error_ratio

    @property
    def response_time(self) -> Number:
        return self._response_time

    @property
    def state(self) -> CircuitBreakerStates:
        return self._state

    def _get_time(self) -> float:
        return self.loop.time()

    def _now(self) -> float:
        return float(self._get_time())

    # --- the bucketed window (callers hold the lock) ------------------------

    def _bucket_id(self, now: float, bucket_count: float) -> int:
        ts = now * bucket_count
        return int(ts - (ts % self._response_time_value))

    def _current_bucket(self, now: float, bucket_count: float) -> _Bucket:
        current = self._bucket_id(now, bucket_count)
        statistic = self._statistic
        if statistic and statistic[-1].id == current:
            return statistic[-1]
        bucket = _Bucket(current)
        statistic.append(bucket)  # drops the oldest at maxlen
        return bucket

    def _ratio(self, now: float, bucket_count: float) -> Number:
        not_before = (
            self._bucket_id(now, bucket_count)
            - self._response_time_value * bucket_count
        )
        total = bad = 0
        for bucket in reversed(self._statistic):
            if bucket.id < not_before:
                break
            total += 1
            if bucket.total and bucket.fail / bucket.total >= self._error_ratio:
                bad += 1
        if not total:
            return 0
        return bad / total

    def _compute_state(self, now: float, limits: "_Limits") -> None:
        if now < self._stuck_until:
            return
        state = self._state
        if state is BROKEN:
            self._state = RECOVERING
            self._recovery_at = now
            return
        if state is PASSING and len(self._statistic) < limits.bucket_count:
            return  # not enough statistics yet
        ratio = self._ratio(now, limits.bucket_count)
        if state is PASSING:
            if ratio >= limits.passing_broken:
                self._break(now)
            return
        if ratio >= limits.recover_broken * self._error_ratio:
            self._break(now)
        elif now - self._recovery_at >= self._recovery_time:
            self._stuck_until = now + self._passing_time
            self._state = PASSING

    def _break(self, now: float) -> None:
        self._stuck_until = now + self._broken_time
        self._state = BROKEN
        self._statistic.clear()

    # --- public read-outs -----------------------------------------------------

    def bucket(self) -> int:
        return self._bucket_id(self._now(), self.BUCKET_COUNT)

    def counter(self) -> "Counter[Any]":
        """A snapshot of the current bucket's counts (a new bucket is started
        when the clock moved past the last one)."""
        now = self._now()
        bucket_count = self.BUCKET_COUNT
        with self._lock:
            return self._current_bucket(now, bucket_count).as_counter()

    @property
    def recovery_ratio(self) -> Number:
        now = self._now()
        bucket_count = self.BUCKET_COUNT
        with self._lock:
            return self._ratio(now, bucket_count)

    def get_state_delay(self) -> Number:
        delay = self._stuck_until - self._now()
        return max(delay, 0)

    # --- the guarded call -------------------------------------------------------

    def _enter(self) -> _Bucket:
        """Start a guarded call: the bucket to record into, or CircuitBroken."""
        now = self._now()
        # class constants are read outside the lock: a subclass may compute them
        limits = _Limits(self)
        counters = self._counters
        with self._lock:
            # the bucket first: a fresh one takes part in the state below
            bucket = self._current_bucket(now, limits.bucket_count)
            self._compute_state(now, limits)
            counters.call_count += 1
            state = self._state
            if state is PASSING:
                counters.call_passing += 1
                return bucket
            if state is BROKEN:
                counters.call_broken += 1
                raise CircuitBroken(self._last_exception)
            counters.call_recovering += 1
            elapsed = now - self._recovery_at
            recovery_time = self._recovery_time

        # RECOVERING: the chance to pass grows from 0 to 1 over recovery_time
        passes = _base.random() + 1 < 2 ** (elapsed / recovery_time)
        with self._lock:
            if passes:
                counters.call_recovering_ok += 1
                return bucket
            counters.call_recovering_failed += 1
            last_exception = self._last_exception
        raise CircuitBroken(last_exception)

    def _record_success(self, bucket: _Bucket) -> None:
        with self._lock:
            bucket.ok += 1
            bucket.total += 1
            self._last_exception = None

    def _record_failure(self, bucket: _Bucket, exc: BaseException) -> None:
        weight = 0
        try:
            if isinstance(exc, self._exceptions) and not isinstance(
                exc, NEVER_FAILURES,
            ):
                with self._lock:
                    self._last_exception = exc
                weight = self._inspect_exception(exc)
        finally:
            with self._lock:
                bucket.fail += weight
                bucket.total += 1

    def _inspect_exception(self, exc: BaseException) -> int:
        inspector = self._exception_inspector
        if inspector is None:
            return 1
        try:
            return 1 if inspector(exc) else 0
        except Exception as error:
            log_inspector_error(inspector, error)
            return 1

    @contextmanager
    def context(self) -> Generator[None, None, None]:
        bucket = self._enter()
        try:
            yield
        except BaseException as exc:
            self._record_failure(bucket, exc)
            raise
        self._record_success(bucket)

    def call(
        self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs,
    ) -> T:
        bucket = self._enter()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._record_failure(bucket, exc)
            raise
        self._record_success(bucket)
        return result

    async def call_async(
        self, func: Callable[P, Awaitable[T]], *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        bucket = self._enter()
        try:
            # like aiomisc.utils.awaitable(func): await what is awaitable,
            # take anything else as the result
            result: Any = func(*args, **kwargs)
            if is_awaitable(result):
                result = await result
        except BaseException as exc:
            self._record_failure(bucket, exc)
            raise
        self._record_success(bucket)
        return result  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        try:
            ratio = str(self.recovery_ratio)
        except Exception:  # e.g. no running loop to read the clock from
            ratio = "?"
        return (
            f"<{type(self).__name__}: state={self._state!r} "
            f"recovery_ratio={ratio}>"
        )


def _wrap_sync(
    circuit_breaker: CircuitBreaker, func: Callable[P, T],
) -> Callable[P, T]:
    @wraps(func)
    def wrapper(*args: P.args, **kw: P.kwargs) -> T:
        return circuit_breaker.call(func, *args, **kw)

    return wrapper


cutout = _base.build_cutout(CircuitBreaker, _wrap_sync, __name__)
