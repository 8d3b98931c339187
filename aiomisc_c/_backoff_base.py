"""Pieces of the backoff/timeout primitive shared by both twins.

* the statistic classes (one class per name, whichever twin runs, so that
  ``get_statistics(BackoffStatistic)`` sees every instance);
* argument checks, used at decoration time by both twins so that they raise
  the same exceptions with the same messages;
* coroutine-function detection and the markers that make the C wrappers look
  like coroutine functions to ``inspect`` and ``asyncio``.

This module must not import :mod:`aiomisc_c.backoff` (which imports it).
"""
import asyncio
import inspect
import math
import operator
from typing import (
    TYPE_CHECKING, Any, Callable, Coroutine, Dict, Optional, ParamSpec, Protocol,
    Tuple, Type, TypeVar, Union,
)

from ._coroutine_functions import _IS_COROUTINE_MARKER
from ._coroutine_functions import iscoroutinefunction as iscoroutinefunction
from .counters import Statistic

Number = Union[int, float]

P = ParamSpec("P")
T = TypeVar("T")
# What asyncbackoff/asyncretry return: a twin's Backoff.
B_co = TypeVar("B_co", covariant=True)

# asyncio.TimeoutError is the builtin TimeoutError on 3.11+.
TimeoutError_ = asyncio.TimeoutError



class BackoffStatistic(Statistic):
    done: int
    attempts: int
    cancels: int
    errors: int
    sum_time: float


class RetryStatistic(BackoffStatistic):
    pass


def _coroutine_markers() -> Dict[str, Any]:
    """Class attributes that make instances of a callable C type pass
    ``asyncio.iscoroutinefunction`` (``_is_coroutine``) and, on 3.12+,
    ``inspect.iscoroutinefunction`` (``inspect.markcoroutinefunction``'s
    marker).  Class attributes, not instance ``__dict__`` entries, so that
    ``functools.wraps`` does not copy them onto an outer sync wrapper."""
    markers: Dict[str, Any] = {}
    if hasattr(asyncio.coroutines, "_is_coroutine"):
        markers["_is_coroutine"] = _IS_COROUTINE_MARKER
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        def probe() -> None:
            pass
        mark(probe)
        for name, value in vars(probe).items():
            markers[name] = value
    return markers


COROUTINE_MARKERS = _coroutine_markers()


async def _coroutine_code_marker() -> None:
    pass


# Returned as ``__code__`` by the C wrappers when the wrapped callable has no
# code object of its own: Python < 3.12 ``inspect.iscoroutinefunction`` reads
# the CO_COROUTINE flag of a function-like object's ``__code__``.
COROUTINE_CODE = _coroutine_code_marker.__code__


def is_real(value: Any) -> bool:
    """``isinstance(value, numbers.Real)``; ``numbers`` (~1 ms of import) is
    loaded only for a value that is not an int or a float."""
    if isinstance(value, (int, float)):
        return True
    import numbers

    return isinstance(value, numbers.Real)


def _real(name: str, value: Any, message: str) -> float:
    """``value`` as a float; TypeError unless it is a real number, ValueError
    with ``message`` when negative or NaN."""
    if not is_real(value):
        raise TypeError(
            f"{name!r} must be a number, not {type(value).__name__}",
        )
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(message)
    return seconds


def check_policy(
    attempt_timeout: Optional[Number],
    deadline: Optional[Number],
    pause: Number = 0,
    exceptions: Any = (),
    max_tries: Optional[int] = None,
    giveup: Optional[Callable[[Exception], bool]] = None,
    append_timeout: bool = True,
) -> Tuple[Optional[Number], Optional[Number], Number, Tuple[type, ...],
           Optional[int], Optional[Callable[[Exception], bool]]]:
    """Check the arguments of ``Backoff`` (17.x order and messages) and return
    them normalised: falsy ``pause`` becomes ``0``, ``exceptions`` a tuple
    (ending with ``asyncio.TimeoutError`` when ``append_timeout``),
    ``max_tries`` an int."""
    if not pause:
        pause = 0
    else:
        _real("pause", pause, "'pause' must be positive")
    if attempt_timeout is not None:
        _real(
            "attempt_timeout", attempt_timeout,
            "'attempt_timeout' must be positive or None",
        )
    if deadline is not None:
        _real("deadline", deadline, "'deadline' must be positive or None")
    if max_tries is not None:
        try:
            max_tries = operator.index(max_tries)
        except TypeError:
            raise TypeError(
                f"'max_tries' must be an int or None, "
                f"not {type(max_tries).__name__}",
            ) from None
        if max_tries < 1:
            raise ValueError("'max_retries' must be >= 1 or None")
    if giveup is not None and not callable(giveup):
        raise ValueError("'giveup' must be a callable or None")

    if isinstance(exceptions, type):
        exceptions = (exceptions,)
    try:
        exceptions = tuple(exceptions)
    except TypeError:
        raise TypeError(
            "'exceptions' must be a tuple of exception classes, "
            f"not {type(exceptions).__name__}",
        ) from None
    for klass in exceptions:
        if not (isinstance(klass, type) and issubclass(klass, BaseException)):
            raise TypeError(
                f"'exceptions' must contain exception classes, not {klass!r}",
            )
    if append_timeout:
        exceptions += (TimeoutError_,)
    return attempt_timeout, deadline, pause, exceptions, max_tries, giveup


def check_timeout(value: Optional[Number]) -> Optional[Number]:
    """The argument of ``timeout()``: a real number (negative means "already
    expired", as in ``asyncio.wait_for``) or ``None`` (no limit)."""
    if value is None:
        return None
    if not is_real(value):
        raise TypeError(
            f"'value' must be a number or None, not {type(value).__name__}",
        )
    if math.isnan(float(value)):
        raise ValueError("'value' must not be NaN")
    return value


def timer_seconds(value: Optional[Number]) -> Optional[float]:
    """A timeout as float seconds; ``None`` for no limit (``None`` or inf)."""
    if value is None:
        return None
    seconds = float(value)
    return None if math.isinf(seconds) else seconds


if TYPE_CHECKING:
    # Types only: building Protocol classes at run time is a measurable part
    # of "import aiomisc_c".
    class AsyncBackoffFactory(Protocol[B_co]):
        """The type of ``asyncbackoff`` (either twin)."""

        def __call__(
            self,
            attempt_timeout: Optional[Number],
            deadline: Optional[Number],
            pause: Number = 0,
            *exc: Type[Exception],
            exceptions: Tuple[Type[Exception], ...] = (),
            max_tries: Optional[int] = None,
            giveup: Optional[Callable[[Exception], bool]] = None,
            statistic_name: Optional[str] = None,
            statistic_class: Type[BackoffStatistic] = BackoffStatistic,
        ) -> B_co:
            ...

    class AsyncRetryFactory(Protocol[B_co]):
        """The type of ``asyncretry`` (either twin)."""

        def __call__(
            self,
            max_tries: Optional[int],
            exceptions: Tuple[Type[Exception], ...] = (Exception,),
            pause: Number = 0,
            giveup: Optional[Callable[[Exception], bool]] = None,
            statistic_name: Optional[str] = None,
        ) -> B_co:
            ...

    class TimeoutDecorator(Protocol):
        """What ``timeout(value)`` returns: keeps the decorated coroutine
        function's signature."""

        def __call__(
            self, func: Callable[P, Coroutine[Any, Any, T]], /,
        ) -> Callable[P, Coroutine[Any, Any, T]]:
            ...


BackoffType = TypeVar("BackoffType")


def make_factories(
    backoff_class: Callable[..., BackoffType],
) -> "Tuple[AsyncBackoffFactory[BackoffType], AsyncRetryFactory[BackoffType]]":
    """``asyncbackoff`` and ``asyncretry`` over ``backoff_class`` (each twin
    calls this with its own ``Backoff``)."""

    def asyncbackoff(
        attempt_timeout: Optional[Number],
        deadline: Optional[Number],
        pause: Number = 0,
        *exc: Type[Exception],
        exceptions: Tuple[Type[Exception], ...] = (),
        max_tries: Optional[int] = None,
        giveup: Optional[Callable[[Exception], bool]] = None,
        statistic_name: Optional[str] = None,
        statistic_class: Type[BackoffStatistic] = BackoffStatistic,
    ) -> BackoffType:
        """Parametric decorator: retry the decorated coroutine function on
        ``exceptions`` (``exc``), bounding every attempt by
        ``attempt_timeout`` and the whole call by ``deadline`` (seconds,
        ``None`` = no limit), sleeping ``pause`` between attempts and making
        at most ``max_tries`` attempts; ``giveup(exc)`` returning true stops
        the retries."""
        return backoff_class(
            attempt_timeout=attempt_timeout,
            deadline=deadline,
            pause=pause,
            exceptions=exceptions or exc,
            max_tries=max_tries,
            giveup=giveup,
            statistic_name=statistic_name,
            statistic_class=statistic_class,
        )

    def asyncretry(
        max_tries: Optional[int],
        exceptions: Tuple[Type[Exception], ...] = (Exception,),
        pause: Number = 0,
        giveup: Optional[Callable[[Exception], bool]] = None,
        statistic_name: Optional[str] = None,
    ) -> BackoffType:
        """``asyncbackoff(None, None, pause, *exceptions, max_tries=...)``
        with a :class:`RetryStatistic`."""
        return asyncbackoff(
            attempt_timeout=None,
            deadline=None,
            exceptions=exceptions,
            giveup=giveup,
            max_tries=max_tries,
            pause=pause,
            statistic_class=RetryStatistic,
            statistic_name=statistic_name,
        )

    return asyncbackoff, asyncretry


def make_timeout(
    wrapper_factory: Callable[[Callable[..., Any], Any], Any],
) -> "Callable[[Optional[Number]], TimeoutDecorator]":
    """The ``timeout`` decorator of a twin whose wrapper is built by
    ``wrapper_factory(func, value)`` (the C twin's wrapper type)."""
    import functools

    def timeout(value: Optional[Number]) -> "TimeoutDecorator":
        """Fail the decorated coroutine function with
        ``asyncio.TimeoutError`` after ``value`` seconds."""
        check_timeout(value)

        def decorator(func: Callable[..., Any], /) -> Any:
            if not iscoroutinefunction(func):
                raise TypeError("Function is not a coroutine function")
            return functools.update_wrapper(wrapper_factory(func, value), func)

        return decorator

    return timeout
