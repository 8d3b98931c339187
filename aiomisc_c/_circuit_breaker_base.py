"""What both circuit-breaker twins share.

The enums, the exception, the statistic class, the type aliases, argument
validation and the ``cutout`` factory live here once; the Python twin
(``_circuit_breaker_py``) and the C module (``_circuit_breaker``) both use
them, so the twins cannot drift apart on messages or semantics.
"""
import asyncio
import inspect
import logging
import reprlib
import sys
from collections import Counter, deque
from enum import IntEnum, unique
from functools import wraps
from typing import (
    TYPE_CHECKING, Any, Awaitable, Callable, Dict, Optional, ParamSpec,
    Protocol, Tuple, TypeVar,
)

from . import _compat
from .counters import Statistic

log = logging.getLogger("aiomisc_c.circuit_breaker")

Number = int | float
StatisticType = deque[tuple[int, Counter[Any]]]
T = TypeVar("T")
P = ParamSpec("P")
ExceptionInspectorType = Callable[[Exception], bool] | None
if TYPE_CHECKING:
    CutoutFuncType = Callable[..., T] | Callable[..., Awaitable[T]]
    CutoutDecoratorReturnType = Callable[..., T | Awaitable[T]]
    CutoutReturnType = Callable[
        [CutoutFuncType[Any]], CutoutDecoratorReturnType[Any],
    ]


def _cutout_type_aliases() -> Dict[str, Any]:
    # Built on first read (see __getattr__ below): subscripting typing's
    # generics is a measurable part of "import aiomisc_c".
    # (run-time values: typed Any, the aliases under TYPE_CHECKING above
    # are what a type checker reads)
    callable_: Any = Callable
    awaitable: Any = Awaitable
    t: Any = T
    func = callable_[..., t] | callable_[..., awaitable[t]]
    decorator_return = callable_[..., t | awaitable[t]]
    return {
        "CutoutFuncType": func,
        "CutoutDecoratorReturnType": decorator_return,
        "CutoutReturnType": callable_[[func[Any]], decorator_return[Any]],
    }


def __getattr__(name: str) -> Any:
    if name in ("CutoutFuncType", "CutoutDecoratorReturnType", "CutoutReturnType"):
        aliases = _cutout_type_aliases()
        globals().update(aliases)
        return aliases[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Control-flow exceptions: never counted as failures (and never remembered as
# the last exception), whatever ``exceptions`` says; they always propagate.
NEVER_FAILURES: Tuple[type, ...] = (
    asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit,
)

__all__ = (
    "CircuitBreakerStates",
    "CircuitBreakerStatistic",
    "CircuitBroken",
    "CounterKey",
    "CutoutDecoratorReturnType",
    "CutoutFuncType",
    "CutoutReturnType",
    "ExceptionInspectorType",
    "Number",
    "StatisticType",
)


@unique
class CounterKey(IntEnum):
    FAIL = 0
    OK = 1
    TOTAL = 2


@unique
class CircuitBreakerStates(IntEnum):
    PASSING = 0
    BROKEN = 1
    RECOVERING = 2


class CircuitBreakerStatistic(Statistic):
    call_count: int
    error_ratio: float
    error_ratio_threshold: float
    call_passing: int
    call_broken: int
    call_recovering: int
    call_recovering_ok: int
    call_recovering_failed: int


class CircuitBroken(Exception):
    __slots__ = ("last_exception",)

    def __init__(self, last_exception: Optional[BaseException]):
        self.last_exception = last_exception

    @reprlib.recursive_repr("<CircuitBroken: ...>")
    def __repr__(self) -> str:
        # Never raise from repr: a broken __repr__ of the remembered
        # exception must not hide the CircuitBroken itself.
        try:
            inner = repr(self.last_exception)
        except Exception:
            inner = f"<unrepresentable {type(self.last_exception).__name__}>"
        return f"<CircuitBroken: {inner}>"


# --- argument validation (shared, so both twins give the same messages) -----

def _number(name: str, value: Any) -> float:
    # numbers and number-like objects (__float__ / __index__), not strings
    kind = type(value)
    if hasattr(kind, "__float__") or hasattr(kind, "__index__"):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            pass
    raise TypeError(f"{name} must be a number, not {kind.__name__!r}")


def _exception_classes(exceptions: Any) -> Tuple[type, ...]:
    try:
        # de-duplicated like 17.x: tuple(frozenset(exceptions))
        classes = tuple(frozenset(exceptions))
    except TypeError:
        raise TypeError(
            "exceptions must be an iterable of exception classes, "
            f"not {type(exceptions).__name__!r}",
        ) from None
    for klass in classes:
        if not (isinstance(klass, type) and issubclass(klass, BaseException)):
            raise TypeError(
                "exceptions must contain exception classes only, "
                f"got {klass!r}",
            )
    return classes


def validate_arguments(
    error_ratio: Any,
    response_time: Any,
    exceptions: Any,
    recovery_time: Any,
    broken_time: Any,
    passing_time: Any,
    exception_inspector: Any,
) -> Tuple[float, float, Tuple[type, ...], float, float, float, Any]:
    """Check the constructor arguments; returns them normalised:
    ``(error_ratio, response_time, exceptions, recovery_time, broken_time,
    passing_time, exception_inspector)`` with times as floats."""
    error_ratio_value = _number("error_ratio", error_ratio)
    response_time_value = _number("response_time", response_time)
    # "not >" also rejects NaN
    if not response_time_value > 0:
        raise ValueError("Response time must be greater then zero")
    # 17.x's range check of error_ratio can never fail: any number is kept.
    classes = _exception_classes(exceptions)
    # falsy -> response_time, as 17.x
    recovery = _number("recovery_time", recovery_time or response_time)
    broken = _number("broken_time", broken_time or response_time)
    passing = _number("passing_time", passing_time or response_time)
    if not exception_inspector:
        exception_inspector = None
    elif not callable(exception_inspector):
        raise TypeError(
            "exception_inspector must be callable or None, "
            f"not {type(exception_inspector).__name__!r}",
        )
    return (
        error_ratio_value, response_time_value, classes,
        recovery, broken, passing, exception_inspector,
    )


def log_inspector_error(inspector: Any, error: BaseException) -> None:
    """An exception_inspector raised: log it; the call counts as a failure."""
    log.exception("Unhandled exception in %r", inspector, exc_info=error)


def is_awaitable(value: Any) -> bool:
    """What ``call_async`` awaits: objects whose type defines ``__await__``
    (coroutines, futures, tasks, custom awaitables)."""
    return hasattr(type(value), "__await__")


if sys.version_info >= (3, 14):  # pragma: no cover - asyncio's is deprecated
    def iscoroutinefunction(func: Any) -> bool:
        return inspect.iscoroutinefunction(func)
else:
    def iscoroutinefunction(func: Any) -> bool:
        # also true for objects asyncio treats as coroutine functions
        # (unittest.mock.AsyncMock, _is_coroutine markers), as aiomisc 17 does
        return (
            inspect.iscoroutinefunction(func)
            or asyncio.iscoroutinefunction(func)
        )


if TYPE_CHECKING:
    # Types only: building Protocol classes at run time is a measurable part
    # of "import aiomisc_c".
    class CutoutDecorator(Protocol):
        """What ``cutout(...)`` returns: keeps the decorated function's
        signature (a coroutine function stays one)."""

        def __call__(self, func: Callable[P, T], /) -> Callable[P, T]:
            ...

    class CutoutFactory(Protocol):
        """The type of ``cutout`` (either twin)."""

        def __call__(
            self,
            ratio: float,
            response_time: int | float,
            *exceptions: type[Exception],
            **kwargs: Any,
        ) -> CutoutDecorator:
            ...


def _wrap_async(breaker: Any, func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    async def async_wrapper(*args: Any, **kw: Any) -> Any:
        return await breaker.call_async(func, *args, **kw)

    return async_wrapper


def build_cutout(
    breaker_class: type,
    wrap_sync: Callable[[Any, Callable[..., Any]], Callable[..., Any]],
    module: str,
    wrap_async: Callable[[Any, Callable[..., Any]], Callable[..., Any]] = _wrap_async,
) -> "CutoutFactory":
    """The ``cutout`` of one twin: ``breaker_class`` makes the breaker,
    ``wrap_sync(breaker, func)`` and ``wrap_async(breaker, func)`` make the
    wrappers of plain and coroutine functions."""

    def cutout(
        ratio: float,
        response_time: int | float,
        *exceptions: type[Exception],
        **kwargs: Any,
    ) -> "CutoutDecorator":
        # Built here, once: every function decorated by the returned
        # decorator shares it (and bad arguments fail right now).
        circuit_breaker = breaker_class(
            error_ratio=ratio,
            response_time=response_time,
            exceptions=exceptions,
            **kwargs,
        )

        def decorator(func: Callable[P, T], /) -> Callable[P, T]:
            if iscoroutinefunction(func):
                return wrap_async(circuit_breaker, func)
            return wrap_sync(circuit_breaker, func)

        return decorator

    cutout.__module__ = module
    cutout.__qualname__ = "cutout"
    return cutout


# ``random`` is read as an attribute of this module at call time by both
# twins: seed the global generator (``random.seed``) or patch this name.
# Bound on first use: the random module costs ~2 ms of package import.
_compat.lazy_attributes(globals(), {"random": "random"})
if TYPE_CHECKING:
    from random import random as random
