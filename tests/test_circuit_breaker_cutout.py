"""The ``cutout`` decorator over sync and async functions and methods, on both
twins.
"""

import asyncio
import functools
import importlib
import inspect
from unittest import mock

import pytest
from helpers.circuit_breaker_cases import Boom

from aiomisc_c import _circuit_breaker_base, circuit_breaker


# --- cutout ------------------------------------------------------------------------

def test_cutout_sync(implementation):
    with pytest.raises(ValueError):
        circuit_breaker.cutout(0.5, 0)

    decorator = circuit_breaker.cutout(0.5, 10, Boom)

    @decorator
    def function(a, b=2):
        """Docstring."""
        return a + b

    @decorator
    def failing():
        raise Boom()

    assert function.__name__ == "function"
    assert function.__doc__ == "Docstring."
    assert function.__wrapped__.__name__ == "function"
    assert function.__qualname__.endswith("function")
    assert not inspect.iscoroutinefunction(function)
    assert str(inspect.signature(function)) == "(a, b=2)"

    with mock.patch.object(
        circuit_breaker.CircuitBreaker, "_get_time", lambda self: 3.0,
    ):
        assert function(1) == 3
        assert function(1, b=5) == 6
        with pytest.raises(Boom):
            failing()


def test_cutout_method_binding(implementation):
    class Service:
        def __init__(self):
            self.value = 7

        @circuit_breaker.cutout(0.5, 10, Boom)
        def get(self, plus):
            return self.value + plus

    with mock.patch.object(
        circuit_breaker.CircuitBreaker, "_get_time", lambda self: 3.0,
    ):
        assert Service().get(1) == 8
        assert Service.get(Service(), 2) == 9


def test_cutout_shares_one_breaker_and_no_exceptions_quirk(implementation):
    with mock.patch.object(
        circuit_breaker.CircuitBreaker, "_get_time", lambda self: 3.0,
    ):
        decorator = circuit_breaker.cutout(0.5, 10)

        @decorator
        def failing():
            raise Boom()

        for _ in range(50):
            with pytest.raises(Boom):
                failing()


def test_cutout_async(implementation, loop, run):
    decorator = circuit_breaker.cutout(0.5, 10, Boom)

    @decorator
    async def coro(value):
        """Async doc."""
        await asyncio.sleep(0)
        return value * 2

    @decorator
    async def afail():
        raise Boom()

    assert inspect.iscoroutinefunction(coro)
    assert coro.__name__ == "coro"
    assert coro.__doc__ == "Async doc."

    async def main():
        assert await coro(21) == 42
        with pytest.raises(Boom):
            await afail()

    run(main())


def test_cutout_async_is_a_coroutine_function(implementation, loop, run):
    decorator = circuit_breaker.cutout(0.5, 10, Boom)
    started = []

    @decorator
    async def coro(a, b=2, *, c=3) -> int:
        started.append(a)
        return a + b + c

    assert asyncio.iscoroutinefunction(coro)
    assert inspect.iscoroutinefunction(coro)
    assert str(inspect.signature(coro)) == "(a, b=2, *, c=3) -> int"
    assert coro.__wrapped__.__name__ == "coro"
    assert coro.__qualname__.endswith("coro")
    assert coro.__module__ == __name__

    # an outer sync wrapper copies the metadata, not the coroutine markers
    @functools.wraps(coro)
    def sync(*args):
        return None

    assert not inspect.iscoroutinefunction(sync)
    assert not asyncio.iscoroutinefunction(sync)

    async def main():
        call = coro(1, c=10)
        assert started == []                 # nothing runs before the await
        assert asyncio.iscoroutine(call)
        task = asyncio.ensure_future(call)   # a Task accepts it
        assert await task == 13
        assert await asyncio.create_task(coro(2)) == 7
        assert await asyncio.wait_for(coro(3), 5) == 8
        assert started == [1, 2, 3]

    run(main())


def test_cutout_async_method_binding(implementation, loop, run):
    class Client:
        def __init__(self):
            self.value = 7

        @circuit_breaker.cutout(0.5, 10, Boom)
        async def get(self, plus):
            return self.value + plus

    async def main():
        assert await Client().get(1) == 8
        assert await Client.get(Client(), 2) == 9

    run(main())


def test_cutout_async_of_a_subclass_calls_its_call_async(implementation, loop, run):
    calls = []

    class Recording(circuit_breaker.CircuitBreaker):
        def call_async(self, func, *args, **kwargs):
            calls.append((func.__name__, args, kwargs))
            return super().call_async(func, *args, **kwargs)

    if implementation == "c":
        wrap_async = importlib.import_module("aiomisc_c._circuit_breaker")._wrap_async
    else:
        wrap_async = _circuit_breaker_base._wrap_async
    wrapped = wrap_async(Recording(0.5, 10), afunc)

    async def main():
        assert await wrapped(4, k=1) == 5

    run(main())
    assert calls == [("afunc", (4,), {"k": 1})]


def test_wrap_async_checks_its_arguments(implementation):
    if implementation != "c":
        pytest.skip("the C wrapper factory only")
    wrap_async = importlib.import_module("aiomisc_c._circuit_breaker")._wrap_async
    with pytest.raises(TypeError, match="needs a C CircuitBreaker"):
        wrap_async(object(), afunc)
    with pytest.raises(TypeError, match="breaker, func"):
        wrap_async(circuit_breaker.CircuitBreaker(0.5, 1))


async def afunc(value, k=0):
    return value + k


def test_cutout_async_mock(implementation, loop, run):
    target = mock.AsyncMock(return_value=5)
    wrapped = circuit_breaker.cutout(0.5, 10)(target)

    async def main():
        return await wrapped()

    assert run(main()) == 5
