"""What the C modules share (csrc/common/), seen from Python: the
awaitables' ``throw()`` takes its arguments as a coroutine's does (same
errors, same messages, the 3.12 deprecation of the three-argument form),
and the native monotonic clock reads ``time.monotonic()``'s clock."""
import asyncio
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
