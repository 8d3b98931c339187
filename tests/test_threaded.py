"""The ``threaded`` family: ``Threaded``,
``BoundThreaded``, ``threaded_separate``, ``run_in_new_thread``, the helpers
that call async code from threads, and ``context_partial``.

Each test runs over both twins (``implementation``) and both loop kinds
(``loop``); ``pool`` installs a fresh named pool as the default executor.
"""
import asyncio
import concurrent.futures
import contextvars
import functools
import os
import re
import threading
import time
import types
from unittest import mock

import pytest
from helpers.waiting import wait_event, wait_until

from aiomisc_c import thread_pool
from aiomisc_c.counters import get_statistics


def stats(name):
    return {
        result.metric: result.value
        for result in get_statistics(thread_pool.ThreadPoolStatistic)
        if result.name == name
    }


def current_thread_name():
    return threading.current_thread().name


VAR = contextvars.ContextVar("VAR", default="unset")


# --------------------------------------------------------------------------
# construction and validation


def test_threaded_builds_the_chosen_twin(implementation):
    def func():
        return 1

    wrapped = thread_pool.threaded(func)
    assert type(wrapped) is thread_pool.Threaded
    expected = (
        thread_pool._CThreaded if implementation == "c" else thread_pool._PyThreaded
    )
    assert thread_pool.Threaded is expected
    assert wrapped.func is func
    assert wrapped.func_type is types.FunctionType
    assert wrapped.sync_call() == 1


async def coroutine_function():
    return 1


def generator_function():
    yield 1


@pytest.mark.parametrize(
    "decorator",
    ["threaded", "threaded_separate", "Threaded", "ThreadedSeparate"],
)
@pytest.mark.parametrize(
    "target",
    ["coroutine", "async-mock", "static-coroutine", "class-coroutine"],
)
def test_coroutine_functions_are_refused(implementation, decorator, target):
    func = {
        "coroutine": coroutine_function,
        "async-mock": mock.AsyncMock(),
        "static-coroutine": staticmethod(coroutine_function),
        "class-coroutine": classmethod(coroutine_function),
    }[target]
    with pytest.raises(TypeError, match="^Can not wrap coroutine$"):
        getattr(thread_pool, decorator)(func)


@pytest.mark.parametrize(
    "decorator", ["threaded_separate", "Threaded", "ThreadedSeparate"],
)
def test_generator_functions_are_refused(implementation, decorator):
    with pytest.raises(TypeError, match="^Can not wrap generator function$"):
        getattr(thread_pool, decorator)(generator_function)


def test_threaded_on_a_generator_function_is_iterable(implementation):
    wrapped = thread_pool.threaded(generator_function)
    assert isinstance(wrapped, thread_pool.ThreadedIterable)
    assert wrapped.max_size == thread_pool.THREADED_ITERABLE_DEFAULT_MAX_SIZE
    assert thread_pool.THREADED_ITERABLE_DEFAULT_MAX_SIZE == int(
        os.environ.get("THREADED_ITERABLE_DEFAULT_MAX_SIZE", "1024"),
    )


@pytest.mark.parametrize("bad", [42, None, "text"])
def test_threaded_refuses_non_callables(implementation, bad):
    with pytest.raises(TypeError):
        thread_pool.Threaded(bad)


# --------------------------------------------------------------------------
# calling


def test_five_concurrent_sleeps_finish_together(loop, pool, run):
    sleep = thread_pool.threaded(time.sleep)

    async def main():
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(sleep(1) for _ in range(5))), 30)
        return time.monotonic() - started

    assert run(main()) < 3.5


def test_five_threaded_calls_run_concurrently(loop, pool, run):
    barrier = threading.Barrier(5, timeout=30)
    meet = thread_pool.threaded(barrier.wait)

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(meet() for _ in range(5))), 60)

    assert sorted(run(main())) == [0, 1, 2, 3, 4]


def test_call_inside_a_loop_returns_an_asyncio_future(loop, pool, pool_name, run):
    def add(a, b=0):
        return a + b, current_thread_name()

    wrapped = thread_pool.threaded(add)

    async def main():
        future = wrapped(1, b=2)
        assert isinstance(future, asyncio.Future)
        assert future.get_loop() is loop
        done, pending = await asyncio.wait([future], timeout=30)
        assert done == {future} and not pending
        value, thread_name = future.result()
        assert value == 3
        assert thread_name.endswith(f" from pool {pool_name}")
        assert (await wrapped.async_call(2, 3))[0] == 5

    run(main())
    assert stats(pool_name)["submitted"] == 2


def test_call_outside_a_loop_returns_an_awaitable(loop, pool, pool_name):
    wrapped = thread_pool.threaded(lambda a, b: a * b)
    awaitable = wrapped(6, b=7)
    assert asyncio.iscoroutine(awaitable)
    assert loop.run_until_complete(asyncio.wait_for(awaitable, 30)) == 42
    assert stats(pool_name)["submitted"] == 1


def test_call_with_a_foreign_default_executor(loop, pool, run):
    foreign = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="foreign")
    loop.set_default_executor(foreign)
    wrapped = thread_pool.threaded(lambda a, b=0: (a + b, current_thread_name()))

    async def main():
        value, thread_name = await wrapped(1, b=2)
        assert value == 3
        assert thread_name.startswith("foreign")
        value, _ = await wrapped(4)
        assert value == 4

    try:
        run(main())
    finally:
        foreign.shutdown(wait=True)


@pytest.mark.parametrize("second", ["ours", "foreign"])
def test_switching_the_default_executor_takes_effect_at_once(
    loop, pool, pool_name, run, second,
):
    """Regression: on uvloop, whose default executor cannot be read, the C
    twin remembered the pool it had seen and kept submitting to it for up
    to 1,024 calls after ``loop.set_default_executor(other)``."""
    if second == "ours":
        other = thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name + "-b")
        prefix = f"from pool {pool_name}-b"
    else:
        other = concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix="foreign",
        )
        prefix = "foreign"
    wrapped = thread_pool.threaded(current_thread_name)

    class Owner:
        where = thread_pool.threaded(lambda self: current_thread_name())

    async def main():
        for _ in range(20):
            assert (await wrapped()).endswith(f"from pool {pool_name}")
            assert (await Owner().where()).endswith(f"from pool {pool_name}")
        loop.set_default_executor(other)
        for _ in range(5):
            name = await wrapped()
            assert prefix in name, name
            name = await Owner().where()
            assert prefix in name, name
        loop.set_default_executor(pool)
        assert (await wrapped()).endswith(f"from pool {pool_name}")

    try:
        run(main())
    finally:
        other.shutdown(wait=True)


def test_sync_call_runs_in_the_current_thread(implementation):
    wrapped = thread_pool.threaded(current_thread_name)
    assert wrapped.sync_call() == threading.current_thread().name


def test_subclass_call_goes_through_async_call(loop, pool, run):
    calls = []

    class Recording(thread_pool.Threaded):
        def async_call(self, *args, **kwargs):
            calls.append((args, kwargs))
            return super().async_call(*args, **kwargs)

    wrapped = Recording(lambda x, y=0: x - y)

    async def main():
        assert await wrapped(5, y=2) == 3

    run(main())
    assert calls == [((5,), {"y": 2})]
    assert re.fullmatch(r"<Recording <lambda> at 0x[0-9a-f]+>", repr(wrapped))


def test_exceptions_propagate(loop, pool, run):
    def fail(exc):
        raise exc

    wrapped = thread_pool.threaded(fail)

    async def main():
        exc = ValueError("boom")
        with pytest.raises(ValueError) as info:
            await wrapped(exc)
        assert info.value is exc
        with pytest.raises(RuntimeError, match="StopIteration raised in a worker"):
            await wrapped(StopIteration())

    run(main())


def test_context_variables_are_visible_and_not_written_back(loop, pool, run):
    @thread_pool.threaded
    def read_and_write():
        seen = VAR.get()
        VAR.set("from the worker")
        return seen

    async def main():
        VAR.set("from the caller")
        assert await read_and_write() == "from the caller"
        assert VAR.get() == "from the caller"

    run(main())


# --------------------------------------------------------------------------
# methods, staticmethods, classmethods


def test_method_binding(loop, pool, run):
    # decorate at test time, under the twin being tested
    cls = _make_thing_class()
    obj = cls(3)

    raw = cls.__dict__["method"]
    assert isinstance(raw, thread_pool.Threaded)
    assert cls.method is raw
    assert raw.func_type is types.FunctionType
    bound = obj.method
    assert isinstance(bound, thread_pool.BoundThreaded)
    assert bound.instance is obj
    assert bound.func is raw.func

    static = cls.__dict__["static"]
    assert static.func_type is staticmethod
    assert cls.static is static
    assert obj.static is static

    klass = cls.__dict__["klass"]
    assert klass.func_type is classmethod
    assert isinstance(cls.klass, thread_pool.BoundThreaded)
    assert cls.klass.instance is cls
    assert obj.klass.instance is cls

    async def main():
        assert obj.method.sync_call(2) == await obj.method(2) == \
            await obj.method.async_call(2) == 6
        assert cls.method.sync_call(obj, 2) == await cls.method(obj, 2) == 6
        assert obj.static.sync_call(1) == await obj.static(1) == \
            await obj.static.async_call(1) == 2
        assert cls.static.sync_call(1) == await cls.static(1) == 2
        assert obj.klass.sync_call(1) == await obj.klass(1) == \
            await obj.klass.async_call(1) == (cls, 1)
        sub = type("Sub", (cls,), {})
        assert await sub(1).klass(5) == (sub, 5)
        assert await sub.klass(5) == (sub, 5)
        assert await obj.static_outer(1) == 0

    run(main())


def _make_thing_class():
    threaded = thread_pool.threaded

    class LocalThing:
        def __init__(self, factor):
            self.factor = factor

        @threaded
        def method(self, x):
            """Multiplies."""
            return self.factor * x

        @threaded
        @staticmethod
        def static(x):
            return x + 1

        @threaded
        @classmethod
        def klass(cls, x):
            return cls, x

        @staticmethod
        @threaded
        def static_outer(x):
            return x - 1

    return LocalThing


def test_bound_threaded_direct(loop, pool, run):
    def method(self, x):
        return self, x

    sentinel = object()
    bound = thread_pool.BoundThreaded(method, sentinel)
    assert bound.func is method
    assert bound.instance is sentinel

    async def main():
        assert bound.sync_call(1) == (sentinel, 1)
        assert await bound(2) == (sentinel, 2)
        assert await bound.async_call(x=3) == (sentinel, 3)

    run(main())


def test_repr(implementation):
    def some_function():
        pass

    wrapped = thread_pool.Threaded(some_function)
    assert repr(wrapped) == f"<Threaded some_function at {id(wrapped):#x}>"

    class MyThreaded(thread_pool.Threaded):
        pass

    sub = MyThreaded(some_function)
    assert repr(sub) == f"<MyThreaded some_function at {id(sub):#x}>"

    cls = _make_thing_class()
    bound = cls(1).method
    assert repr(bound) == f"<BoundThreaded method at {id(bound):#x}>"


def test_wrapper_metadata(implementation):
    def documented(a, b):
        """The docstring."""
        return a + b

    wrapped = thread_pool.threaded(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__qualname__ == documented.__qualname__
    assert wrapped.__doc__ == "The docstring."
    assert wrapped.__module__ == __name__
    assert wrapped.__wrapped__ is documented

    bound = _make_thing_class()(2).method
    assert bound.__name__ == "method"
    assert bound.__doc__ == "Multiplies."


# --------------------------------------------------------------------------
# threaded_separate and run_in_new_thread


def test_threaded_separate_runs_each_call_in_a_new_thread(loop, pool, pool_name, run):
    def report():
        thread = threading.current_thread()
        return thread.name, thread.daemon, thread.ident

    wrapped = thread_pool.threaded_separate(report)
    assert isinstance(wrapped, thread_pool.ThreadedSeparate)
    assert isinstance(wrapped, thread_pool.Threaded)
    assert wrapped.detach is True
    assert thread_pool.threaded_separate(report, detach=False).detach is False

    async def main():
        name, daemon, _ = await wrapped()
        assert name == "report"
        assert daemon is True
        name, daemon, _ = await thread_pool.threaded_separate(report, detach=False)()
        assert name == "report"
        assert daemon is False

    run(main())
    assert stats(pool_name)["submitted"] == 0


def test_threaded_separate_with_a_bool_returns_a_decorator(implementation):
    decorator = thread_pool.threaded_separate(False)

    def func():
        return 1

    wrapped = decorator(func)
    assert isinstance(wrapped, thread_pool.ThreadedSeparate)
    assert wrapped.sync_call() == 1


def test_five_concurrent_separate_sleeps_finish_together(loop, pool, run):
    sleep = thread_pool.threaded_separate(time.sleep)

    async def main():
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(sleep(1) for _ in range(5))), 30)
        return time.monotonic() - started

    assert run(main()) < 3.5


def test_run_in_new_thread(loop, pool, pool_name, run):
    gate = threading.Event()

    def named_function(x, y=0):
        assert gate.wait(30)
        thread = threading.current_thread()
        return thread.name, thread.daemon, x + y, VAR.get()

    separate_stat = pool_name + "-separate"

    async def main():
        VAR.set("caller context")
        future = thread_pool.run_in_new_thread(
            named_function, args=(1,), kwargs={"y": 2},
            statistic_name=separate_stat,
        )
        assert isinstance(future, asyncio.Future)
        assert future.get_loop() is loop
        await wait_until(
            lambda: stats(separate_stat).get("submitted") == 1, message="stat",
        )
        counters = stats(separate_stat)
        assert counters["threads"] == 1
        assert counters["submitted"] == 1
        gate.set()
        assert await future == ("named_function", True, 3, "caller context")

        attached = thread_pool.run_in_new_thread(
            named_function, args=(5,), detach=False,
        )
        assert await attached == ("named_function", False, 5, "caller context")

    run(main())
    assert stats(pool_name)["submitted"] == 0


def test_run_in_new_thread_starts_on_the_next_iteration(loop, pool, run):
    started = threading.Event()

    async def main():
        future = thread_pool.run_in_new_thread(started.set)
        # the thread is started by a loop callback, not synchronously
        assert not started.is_set()
        await future
        assert started.is_set()

    run(main())


def test_run_in_new_thread_no_return(loop, pool, run, loop_errors):
    ran = threading.Event()

    def work():
        ran.set()
        return "ignored"

    async def main():
        future = thread_pool.run_in_new_thread(work, no_return=True)
        await wait_event(ran)
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not future.done()
        future.cancel()

    run(main())


def test_run_in_new_thread_exception(loop, pool, run):
    def fail():
        raise KeyError("separate")

    async def main():
        with pytest.raises(KeyError, match="separate"):
            await thread_pool.run_in_new_thread(fail)

    run(main())


# --------------------------------------------------------------------------
# calling async code from threads


async def double(x):
    await asyncio.sleep(0)
    return x * 2


async def async_fail(message):
    await asyncio.sleep(0)
    raise ValueError(message)


def test_sync_helpers_from_a_worker_thread(loop, pool, run):
    threaded_double = thread_pool.threaded(lambda x: x * 2)

    def in_thread():
        results = [
            thread_pool.sync_wait_coroutine(loop, double, 1),
            thread_pool.sync_wait_coroutine(None, double, 2),
            thread_pool.wait_coroutine(double(3)),
            thread_pool.wait_coroutine(double(4), loop),
            thread_pool.sync_await(double, 5),
            thread_pool.sync_await(threaded_double, 6),
        ]
        waiter = thread_pool.CoroutineWaiter(double(7), loop)
        waiter.start()
        results.append(waiter.wait())
        waiter = thread_pool.CoroutineWaiter(double(8))
        waiter.start()
        results.append(waiter.wait())

        for call in (
            lambda: thread_pool.sync_wait_coroutine(loop, async_fail, "a"),
            lambda: thread_pool.sync_wait_coroutine(None, async_fail, "b"),
            lambda: thread_pool.wait_coroutine(async_fail("c")),
            lambda: thread_pool.sync_await(async_fail, "d"),
        ):
            try:
                call()
            except ValueError as e:
                results.append(str(e))
        return results

    async def main():
        return await asyncio.wait_for(thread_pool.threaded(in_thread)(), 60)

    assert run(main()) == [2, 4, 6, 8, 10, 12, 14, 16, "a", "b", "c", "d"]


def test_wait_coroutine_without_a_loop(loop, pool, run):
    outcome = []

    def plain_thread():
        coro = double(1)
        try:
            thread_pool.wait_coroutine(coro)
        except RuntimeError as e:
            outcome.append(str(e))
        finally:
            coro.close()

    thread = threading.Thread(target=plain_thread)
    thread.start()
    thread.join(30)
    assert outcome == ["no current event loop is set"]


# --------------------------------------------------------------------------
# context_partial


def test_context_partial_is_deprecated(implementation):
    token = VAR.set("at creation")
    try:
        with pytest.warns(
            DeprecationWarning,
            match="^context_partial has been deprecated and will be removed$",
        ):
            bound = thread_pool.context_partial(lambda suffix: VAR.get() + suffix, "!")
        VAR.set("changed later")
        assert isinstance(bound, functools.partial)
        assert bound() == "at creation!"
        assert VAR.get() == "changed later"
    finally:
        VAR.reset(token)


# --------------------------------------------------------------------------
# odd callables, attributes, garbage collection, other loops


class CallableObject:
    def __call__(self, x, *, y=0):
        return x + y


@pytest.mark.parametrize(
    "func",
    [
        functools.partial(lambda a, b, y=0: a + b + y, 1),
        CallableObject(),
        max,
    ],
    ids=["partial", "callable-object", "builtin"],
)
def test_any_callable_can_be_wrapped(loop, pool, run, func):
    wrapped = thread_pool.Threaded(func)
    assert wrapped.func is func

    async def main():
        expected = func(2, y=3) if func is not max else max(2, 3)
        if func is max:
            assert await wrapped(2, 3) == expected == wrapped.sync_call(2, 3)
        else:
            assert await wrapped(2, y=3) == expected == wrapped.sync_call(2, y=3)

    run(main())


def test_many_arguments(loop, pool, run):
    def collect(*args, **kwargs):
        return args, kwargs

    wrapped = thread_pool.threaded(collect)
    args = tuple(range(50))
    kwargs = {f"k{i}": i for i in range(50)}

    async def main():
        assert await wrapped(*args, **kwargs) == (args, kwargs)
        assert await wrapped() == ((), {})
        assert await wrapped(**kwargs) == ((), kwargs)

    run(main())


def test_wrapper_accepts_attributes(implementation):
    def func():
        """Doc."""

    wrapped = thread_pool.threaded(func)
    wrapped.custom = "value"
    assert wrapped.custom == "value"

    def outer():
        pass

    functools.update_wrapper(outer, wrapped)
    assert outer.__wrapped__ is wrapped
    assert outer.__doc__ == "Doc."


def test_reference_cycles_are_collected(implementation):
    import gc
    import weakref

    def count():
        return sum(type(o) is thread_pool.Threaded for o in gc.get_objects())

    gc.collect()
    before = count()
    for _ in range(10):
        holder = {}

        def func(holder=holder):
            return holder

        holder["wrapped"] = thread_pool.Threaded(func)   # cycle via func defaults
        probe = weakref.ref(func)
        del holder, func
    gc.collect()
    assert probe() is None
    assert count() == before


def test_threaded_on_a_plain_loop_uses_its_own_executor(implementation, loop_kind):
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        plain = uvloop.new_event_loop()
    else:
        plain = asyncio.new_event_loop()
    wrapped = thread_pool.threaded(lambda a, b=0: (a + b, current_thread_name()))
    try:
        async def main():
            value, name = await asyncio.wait_for(wrapped(1, b=2), 30)
            assert value == 3
            assert " from pool " not in name

        plain.run_until_complete(main())
    finally:
        plain.run_until_complete(plain.shutdown_default_executor())
        plain.close()


def test_repr_of_callables_without_a_name(implementation):
    def named(a, b):
        return a + b

    # 17.x: NAME = getattr(getattr(func, "func", func), "__name__", class name)
    wrapped = thread_pool.Threaded(functools.partial(named, 1))
    assert repr(wrapped) == f"<Threaded named at {id(wrapped):#x}>"
    wrapped = thread_pool.Threaded(CallableObject())
    assert repr(wrapped) == f"<Threaded CallableObject at {id(wrapped):#x}>"


def test_instance_attributes_can_be_patched(loop, pool, run):
    """As in aiomisc 17, attributes of public classes can be reassigned or patched."""
    wrapped = thread_pool.threaded(lambda: "original")

    async def main():
        with mock.patch.object(wrapped, "func", lambda: "patched"):
            assert wrapped.sync_call() == "patched"
            assert await wrapped() == "patched"
        assert wrapped.sync_call() == "original"
        assert await wrapped() == "original"

    run(main())


def test_class_attributes_can_be_patched(loop, pool, run):
    wrapped = thread_pool.threaded(lambda: "original")
    with mock.patch.object(thread_pool.Threaded, "sync_call", lambda self: "patched"):
        assert wrapped.sync_call() == "patched"
    assert wrapped.sync_call() == "original"
