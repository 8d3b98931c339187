"""What the C modules share (csrc/common/), seen from Python: the
awaitables' ``throw()`` takes its arguments as a coroutine's does (same
errors, same messages, the 3.12 deprecation of the three-argument form),
the native monotonic clock reads ``time.monotonic()``'s clock, and the
function wrappers read as the functions they wrap and bind as methods."""
import asyncio
import functools
import importlib
import sys
import time
import warnings

import pytest

from aiomisc_c import _compat

pytestmark = pytest.mark.c_extension

if not _compat.c_available():  # pragma: no cover - CI requires the build
    pytest.skip(
        f"C extensions unavailable: {_compat._C_MISSING}",
        allow_module_level=True,
    )

from aiomisc_c import _backoff, _circuit_breaker  # noqa: E402


async def returns_one():
    return 1


def a_traceback():
    try:
        raise KeyError("tb")
    except KeyError as error:
        return error.__traceback__


class NotAnException:
    pass


class Weird(Exception):
    def __new__(cls, *args):
        return "not an exception"


def breaker_awaitable():
    breaker = _circuit_breaker.CircuitBreaker(error_ratio=0.5,
                                              response_time=10)
    return breaker.call_async(returns_one)


def backoff_awaitable():
    return _backoff.asyncbackoff(None, None)(returns_one)()


def coroutine():
    return returns_one()


THROW_ARGUMENTS = {
    "nothing": (),
    "four": (ValueError, None, None, None),
    "not raisable": (NotAnException,),
    "int": (1,),
    "instance and value": (ValueError("x"), "value"),
    "bad traceback": (ValueError, None, "not a traceback"),
    "bad traceback and not raisable": (1, None, "tb"),
    "instance": (ValueError("x"),),
    "class": (ValueError,),
    "class and value": (ValueError, "text"),
    "class and args": (KeyError, ("a",)),
    "class, instance, traceback": (ValueError, ValueError("y"), None),
    "constructor returns a non-exception": (Weird,),
}


def outcome(make, args):
    """(error type, message, warnings) of throw(*args) on a fresh
    awaitable."""
    awaitable = make()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                awaitable.throw(*args)
            except BaseException as error:
                result = (type(error), str(error))
            else:  # pragma: no cover - nothing was started: it raises
                result = ("returned",)
        return result + (
            tuple((w.category, str(w.message)) for w in caught),
        )
    finally:
        awaitable.close()


@pytest.mark.parametrize("make", [breaker_awaitable, backoff_awaitable],
                         ids=["call_async", "backoff_call"])
@pytest.mark.parametrize("case", sorted(THROW_ARGUMENTS))
def test_throw_arguments_as_a_coroutine(make, case):
    args = THROW_ARGUMENTS[case]
    assert outcome(make, args) == outcome(coroutine, args)


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="the 3-argument throw() is deprecated in 3.12")
@pytest.mark.parametrize("make", [breaker_awaitable, backoff_awaitable])
def test_throw_deprecation_is_an_error_under_warnings_as_errors(make):
    awaitable = make()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(DeprecationWarning, match="single-arg"):
                awaitable.throw(ValueError, ValueError("z"))
    finally:
        awaitable.close()


@pytest.mark.parametrize("make", [breaker_awaitable, backoff_awaitable])
def test_throw_attaches_the_traceback(make):
    tb = a_traceback()
    awaitable = make()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(ValueError) as info:
                awaitable.throw(ValueError, ValueError("w"), tb)
    finally:
        awaitable.close()
    frames = []
    walker = info.value.__traceback__
    while walker is not None:
        frames.append(walker.tb_frame.f_code.co_name)
        walker = walker.tb_next
    assert "a_traceback" in frames


def test_native_clock_is_time_monotonic():
    async def read():
        breaker = _circuit_breaker.CircuitBreaker(error_ratio=0.5,
                                                  response_time=10)
        readings = []
        for _ in range(200):
            before = time.monotonic()
            native = breaker._get_time()
            after = time.monotonic()
            readings.append((before, native, after))
        return readings

    # asyncio's own loop (its clock is time.monotonic), whatever policy
    # earlier tests left installed
    loop = asyncio.DefaultEventLoopPolicy().new_event_loop()
    try:
        readings = loop.run_until_complete(read())
    finally:
        loop.close()
    for before, native, after in readings:
        assert before <= native <= after


# -- the function wrappers (common/wrapper.h) ---------------------------------

async def coro_with_defaults(a, b=2, *, c=3):
    return a + b + c


def sync_with_defaults(a, b=2, *, c=3):
    return a + b + c


def c_wrapper(kind, func):
    """The C wrapper type ``kind`` around ``func``, made as the public API
    makes it."""
    from aiomisc_c import backoff, circuit_breaker

    timeout = importlib.import_module("aiomisc_c.timeout")
    if kind == "BackoffFunction":
        return backoff._Casyncbackoff(1, 2)(func)
    if kind == "TimeoutFunction":
        return timeout._Ctimeout(1)(func)
    breaker = circuit_breaker._CCircuitBreaker(error_ratio=0.5, response_time=1)
    if kind == "_CutoutAsyncWrapper":
        return _circuit_breaker._wrap_async(breaker, func)
    return _circuit_breaker._wrap_sync(breaker, func)


@pytest.mark.parametrize("kind", [
    "BackoffFunction", "TimeoutFunction", "_CutoutAsyncWrapper",
])
def test_wrappers_read_as_the_coroutine_function_they_wrap(kind):
    wrapper = c_wrapper(kind, coro_with_defaults)
    assert type(wrapper).__name__ == kind
    assert wrapper.__code__ is coro_with_defaults.__code__
    assert wrapper.__defaults__ == (2,)
    assert wrapper.__kwdefaults__ == {"c": 3}
    assert wrapper.__wrapped__ is coro_with_defaults
    assert asyncio.iscoroutinefunction(wrapper)

    # a coroutine callable without __code__ gets the stand-in code; values
    # of the wrong type read as None
    partial = functools.partial(coro_with_defaults, 1)
    partial.__defaults__ = "not a tuple"
    partial.__kwdefaults__ = ["not a dict"]
    stand_in = c_wrapper(kind, partial)
    assert stand_in.__code__ is not coro_with_defaults.__code__
    assert stand_in.__code__.co_flags & 0x80  # CO_COROUTINE
    assert stand_in.__defaults__ is None
    assert stand_in.__kwdefaults__ is None


async def coro_arguments(a, b=2, *, c=3):
    return a, b, c


def sync_arguments(a, b=2, *, c=3):
    return a, b, c


@pytest.mark.parametrize("kind", [
    "BackoffFunction", "TimeoutFunction", "_CutoutAsyncWrapper",
    "_CutoutWrapper",
])
def test_wrappers_bind_as_methods_and_keep_a_dict(kind):
    func = sync_arguments if kind == "_CutoutWrapper" else coro_arguments
    wrapper = c_wrapper(kind, func)

    class Owner:
        method = wrapper

    owner = Owner()
    assert Owner.method is wrapper
    assert type(wrapper).__get__(wrapper, None, Owner) is wrapper
    bound = owner.method
    assert bound.__self__ is owner and bound.__func__ is wrapper
    async def call():
        result = bound(5, c=6)
        return result if kind == "_CutoutWrapper" else await result

    assert asyncio.run(call()) == (owner, 5, 6)

    # functools.update_wrapper filled the instance __dict__; more fits in it
    assert wrapper.__name__ == func.__name__
    wrapper.extra = "kept"
    assert wrapper.__dict__["extra"] == "kept"
