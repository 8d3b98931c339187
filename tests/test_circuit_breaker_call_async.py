"""``CircuitBreaker.call_async`` on both twins and both loops, including its
awaitable driven by hand.
"""

import asyncio
import functools
import gc
import inspect
import itertools
import threading
from unittest import mock

import pytest
from helpers.circuit_breaker_cases import Boom, clocked, fail, ok, trip

from aiomisc_c import _circuit_breaker_base, circuit_breaker
from aiomisc_c.circuit_breaker import CircuitBreakerStatistic, CircuitBroken, CounterKey
from aiomisc_c.counters import get_statistics


# --- asyncio ---------------------------------------------------------------------------

def test_get_time_follows_loop_clock(implementation, loop, run):
    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        before = loop.time()
        now = breaker._get_time()
        after = loop.time()
        assert before <= now <= after
        assert breaker.loop is loop
        return breaker

    breaker = run(main())
    assert breaker.loop is loop


def test_no_loop_outside(implementation):
    breaker = circuit_breaker.CircuitBreaker(0.5, 10)
    with pytest.raises(RuntimeError):
        breaker.call(ok)
    assert "recovery_ratio=" in repr(breaker)


def test_real_clock_calls(implementation, loop, run):
    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        for _ in range(100):
            assert breaker.call(ok) == "ok"
        assert breaker.counter()[CounterKey.OK] == 100
        assert breaker.recovery_ratio == 0
        return breaker

    run(main())


def test_call_async(implementation, loop, run):
    breaker = clocked()(0.5, 10)

    async def coro(value, *, plus=0):
        await asyncio.sleep(0)
        return value + plus

    def returns_future():
        future = loop.create_future()
        loop.call_soon(future.set_result, "future")
        return future

    async def afail():
        await asyncio.sleep(0)
        raise Boom("async")

    async def main():
        assert await breaker.call_async(coro, 1, plus=2) == 3
        assert await breaker.call_async(ok) == "ok"
        assert await breaker.call_async(returns_future) == "future"
        with pytest.raises(Boom):
            await breaker.call_async(afail)
        with pytest.raises(Boom):
            await breaker.call_async(fail)
        task = asyncio.ensure_future(breaker.call_async(coro, 5))
        assert await task == 5

    run(main())
    counter = breaker.counter()
    assert counter[CounterKey.OK] == 4
    assert counter[CounterKey.FAIL] == 2
    assert counter[CounterKey.TOTAL] == 6


def test_call_async_is_lazy(implementation, loop, run):
    breaker = clocked()(0.5, 10)
    calls = []

    async def coro():
        calls.append(1)

    awaitable = breaker.call_async(coro)
    assert calls == []
    assert breaker._counters.call_count == 0
    assert inspect.isawaitable(awaitable)
    run(awaitable)
    assert calls == [1]
    assert breaker._counters.call_count == 1


def test_call_async_broken(implementation, loop, run):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    called = []

    async def coro():
        called.append(1)

    async def main():
        with pytest.raises(CircuitBroken):
            await breaker.call_async(coro)

    run(main())
    assert called == []


def test_call_async_cancelled_is_not_a_failure(implementation, loop, run):
    breaker = clocked()(0.5, 10, exceptions=(BaseException,))

    async def main():
        started = asyncio.Event()

        async def sleeper():
            started.set()
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(breaker.call_async(sleeper))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == 1
    assert counter[CounterKey.FAIL] == 0
    assert breaker._last_exception is None


def test_call_async_closed_unfinished(implementation, loop, run):
    breaker = clocked()(0.5, 10, exceptions=(BaseException,))
    future = loop.create_future()

    async def waiter():
        return await future

    awaitable = breaker.call_async(waiter)
    iterator = awaitable.__await__()
    next(iterator)            # suspended on the future
    iterator.close()
    del iterator, awaitable
    gc.collect()
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == 1
    assert counter[CounterKey.FAIL] == 0
    future.cancel()


# --- the awaitable of call_async, driven by hand ---------------------------------

def test_call_async_protocol(implementation):
    breaker = clocked()(0.5, 10)

    async def two_steps(value):
        received = await Suspend()
        return value + received

    class Suspend:
        def __await__(self):
            return (yield "suspended")

    awaitable = breaker.call_async(two_steps, 40)
    assert awaitable.send(None) == "suspended"
    with pytest.raises(StopIteration) as info:
        awaitable.send(2)
    assert info.value.value == 42
    with pytest.raises(RuntimeError):
        awaitable.send(None)
    assert breaker.counter()[CounterKey.OK] == 1

    # throw into a suspended call: a failure, propagated
    awaitable = breaker.call_async(two_steps, 1)
    awaitable.send(None)
    with pytest.raises(Boom):
        awaitable.throw(Boom("thrown"))
    assert breaker.counter()[CounterKey.FAIL] == 1

    # throw handled by the body: it goes on
    async def catcher():
        try:
            await Suspend()
        except Boom:
            return "caught"

    awaitable = breaker.call_async(catcher)
    awaitable.send(None)
    with pytest.raises(StopIteration) as info:
        awaitable.throw(Boom())
    assert info.value.value == "caught"

    # throw before start: raised, nothing recorded, the body never runs
    calls = []

    async def body():
        calls.append(1)

    awaitable = breaker.call_async(body)
    with pytest.raises(Boom):
        awaitable.throw(Boom())
    awaitable.close()
    assert calls == []
    # close before start: nothing recorded
    breaker.call_async(body).close()
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == 3
    assert breaker._counters.call_count == 3


def test_threads_hammer_the_state_machine(implementation):
    """Threads drive one breaker through every state: no lost counts."""
    breaker = clocked()(0.5, 1, statistic_name="hammer")
    clock_lock = threading.Lock()
    ticks = itertools.count()
    threads_count, per_thread = 4, 3_000
    start = threading.Barrier(threads_count)

    def work(index):
        start.wait()
        for _ in range(per_thread):
            with clock_lock:
                tick = next(ticks)
                breaker.now = tick * 0.01
            # 3 s of failures, then 3 s of successes, and again
            func = fail if (tick // 300) % 2 == 0 else ok
            try:
                breaker.call(func)
            except (Boom, CircuitBroken):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    with mock.patch.object(_circuit_breaker_base, "random", lambda: 0.5):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    stat = breaker._counters
    assert stat.call_count == threads_count * per_thread
    assert stat.call_count == (
        stat.call_passing + stat.call_broken + stat.call_recovering
    )
    assert stat.call_recovering == (
        stat.call_recovering_ok + stat.call_recovering_failed
    )
    assert stat.call_broken > 0 and stat.call_recovering > 0


def test_breaker_in_a_cycle_is_collected(implementation):
    def make():
        breaker = clocked()(0.5, 10, statistic_name="cycle")
        breaker.loop_ref = breaker          # a cycle through __dict__
        breaker.inspector_ref = lambda exc: breaker
        return breaker

    def alive():
        return [
            name for _, name, metric, _ in get_statistics(CircuitBreakerStatistic)
            if name == "cycle" and metric == "call_count"
        ]

    breaker = make()
    breaker.call(ok)
    assert alive() == ["cycle"]
    del breaker
    gc.collect()
    assert alive() == []


@pytest.mark.parametrize("method", ["close", "send", "throw"])
@pytest.mark.parametrize("driver", ["await", "task"])
def test_call_async_reentered_by_its_body(implementation, loop, run, method, driver):
    """The body calls send/throw/close on the awaitable that drives it: a
    coroutine refuses that ("already executing") and so must call_async; the
    body, the only other holder of the awaitable, then drops it mid-step."""
    breaker = clocked()(0.5, 10)
    holder = []
    refused = []

    async def body():
        awaitable = holder.pop()
        step = {
            "close": awaitable.close,
            "send": functools.partial(awaitable.send, None),
            "throw": functools.partial(awaitable.throw, Boom()),
        }[method]
        del awaitable
        try:
            step()
        except ValueError as error:
            refused.append(str(error))
        del step
        await asyncio.sleep(0)
        return "done"

    async def main():
        holder.append(breaker.call_async(body))
        if driver == "task":
            return await asyncio.ensure_future(holder[0])
        return await holder[0]

    assert run(main()) == "done"
    assert refused == ["coroutine already executing"]
    assert breaker.counter()[CounterKey.OK] == 1


@pytest.mark.parametrize("driver", ["await", "task"])
def test_call_async_stop_iteration_becomes_runtime_error(
    implementation, loop, run, driver,
):
    """A sync callable raising StopIteration: what leaves the awaitable is
    PEP 479's RuntimeError (asyncio refuses a raw StopIteration and the task
    would never finish); the breaker records the StopIteration itself."""
    breaker = clocked()(0.5, 10, exceptions=(StopIteration,))

    async def main():
        awaitable = breaker.call_async(next, iter([]))
        if driver == "task":
            awaitable = asyncio.ensure_future(awaitable)
        return await asyncio.wait_for(awaitable, 30)

    with pytest.raises(RuntimeError) as info:
        run(main())
    assert str(info.value) == "coroutine raised StopIteration"
    assert type(info.value.__cause__) is StopIteration
    assert type(breaker._last_exception) is StopIteration
    assert breaker.counter()[CounterKey.FAIL] == 1


def test_loop_replaced_by_its_own_truth_test(implementation, loop):
    """`_loop`'s truth test runs Python code that may replace `_loop` (and
    drop the old object): `loop` gives what `_loop` is afterwards."""
    breaker = circuit_breaker.CircuitBreaker(0.5, 10)

    class SwitchingLoop:
        def __bool__(self):
            breaker._loop = loop    # drops the last reference to self
            return True

    breaker._loop = SwitchingLoop()
    assert breaker.loop is loop
    breaker._loop = SwitchingLoop()
    assert breaker._get_time() == pytest.approx(loop.time(), abs=60)
