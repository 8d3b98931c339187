"""``aiomisc_c.aggregate``: batching of concurrent single-argument calls.

Not twinned: the local ``loop`` fixture makes a fresh loop of each kind.
Times are read from the loop clock; the only bound checked is "not before
the leeway" (a timer never fires early), never "soon after".
"""
import asyncio
import dataclasses
import gc
import sys

import pytest

import aiomisc_c
from aiomisc_c import counters
from aiomisc_c.aggregate import (
    AggregateStatistic, Aggregator, AggregatorAsync, Arg, ResultNotSetError,
    aggregate, aggregate_async,
)

# uvloop's clock has a millisecond resolution.
CLOCK_SLACK = 0.002


@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_names():
    # As in aiomisc, the package attribute is the decorator factory; the
    # module is reachable through sys.modules.
    module = sys.modules["aiomisc_c.aggregate"]
    assert aiomisc_c.aggregate is aggregate
    assert aiomisc_c.aggregate_async is aggregate_async
    assert set(module.__all__) == {
        "AggregateAsyncFunc", "AggregateFunc", "AggregateStatistic",
        "Aggregator", "AggregatorAsync", "Arg", "ResultNotSetError",
        "aggregate", "aggregate_async",
    }
    assert issubclass(Aggregator, AggregatorAsync)
    assert dataclasses.is_dataclass(Arg)
    assert Arg.__name__ == "Arg" and Arg.__module__ == "aiomisc_c.aggregate"
    arg = Arg(value=1, future=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        arg.value = 2
    assert AggregateStatistic.__metrics__ == frozenset(
        {"leeway_ms", "max_count", "success", "error", "done"},
    )


async def no_variadic(a, b):
    return [a, b]


async def variadic(*args):
    return args


@pytest.mark.parametrize("decorator", [aggregate, aggregate_async])
def test_bad_arguments_raise_at_once(decorator):
    with pytest.raises(ValueError) as info:
        decorator(10)(no_variadic)
    assert str(info.value) == "Function must accept variadic positional arguments"

    # The variadic check comes first, then max_count, then leeway_ms.
    with pytest.raises(ValueError) as info:
        decorator(0, max_count=0)(no_variadic)
    assert str(info.value) == "Function must accept variadic positional arguments"

    for max_count in (0, -1):
        with pytest.raises(ValueError) as info:
            decorator(0, max_count=max_count)(variadic)
        assert str(info.value) == "max_count must be positive int or None"

    for leeway in (0, -1, -0.5):
        with pytest.raises(ValueError) as info:
            decorator(leeway)(variadic)
        assert str(info.value) == "leeway_ms must be positive float"


def test_classes_check_too():
    with pytest.raises(ValueError, match="variadic"):
        Aggregator(no_variadic, leeway_ms=1)
    with pytest.raises(ValueError, match="variadic"):
        AggregatorAsync(no_variadic, leeway_ms=1)
    aggregator = Aggregator(variadic, leeway_ms=12.5, max_count=3,
                            statistic_name="props")
    assert aggregator.leeway_ms == 12.5
    assert aggregator.max_count == 3
    assert aggregator.count == 0
    assert aggregator.aggregate.__self__ is aggregator


def test_one_batch_after_leeway(run, loop):
    leeway = 0.05
    batches = []

    @aggregate(leeway * 1000)
    async def square(*args, power=2):
        batches.append((loop.time(), args))
        return [arg ** power for arg in args]

    async def main():
        started = loop.time()
        results = await asyncio.gather(*[square(i) for i in range(9)])
        return started, results

    started, results = run(main())
    assert results == [i ** 2 for i in range(9)]
    assert len(batches) == 1
    executed_at, args = batches[0]
    assert args == tuple(range(9))
    assert executed_at >= started + leeway - CLOCK_SLACK


def test_max_count_closes_batch_at_once(run, loop):
    leeway = 0.3
    batches = []

    @aggregate(leeway * 1000, max_count=5)
    async def square(*args):
        batches.append((loop.time(), args))
        return [arg ** 2 for arg in args]

    async def main():
        started = loop.time()
        results = await asyncio.gather(*[square(i) for i in range(9)])
        return started, results

    started, results = run(main())
    assert results == [i ** 2 for i in range(9)]
    assert [args for _, args in batches] == [(0, 1, 2, 3, 4), (5, 6, 7, 8)]
    # The full batch did not wait for its timer; the other one did.
    assert batches[0][0] < started + leeway
    assert batches[1][0] >= started + leeway - CLOCK_SLACK


def test_results_in_argument_order_across_batches(run):
    sizes = []

    @aggregate(50, max_count=30)
    async def double(*args):
        sizes.append(len(args))
        await asyncio.sleep(0)
        return [arg * 2 for arg in args]

    async def main():
        return await asyncio.gather(*[double(i) for i in range(100)])

    assert run(main()) == [i * 2 for i in range(100)]
    assert sorted(sizes) == [10, 30, 30, 30]


def test_exception_goes_to_every_caller(run):
    aggregator = Aggregator(variadic, leeway_ms=10, statistic_name="raise")

    async def failing(*args):
        raise ValueError("boom")

    aggregator._func = failing

    async def main():
        return await asyncio.gather(
            *[aggregator.aggregate(i) for i in range(10)],
            return_exceptions=True,
        )

    results = run(main())
    assert len(results) == 10
    assert all(isinstance(r, ValueError) for r in results)
    assert aggregator._statistic.error == 1
    assert aggregator._statistic.done == 1
    assert aggregator._statistic.success == 0


def test_too_few_results_raise_result_not_set(run):
    @aggregate(10)
    async def short(*args):
        return args[:2]

    async def main():
        return await asyncio.gather(
            *[short(i) for i in range(5)], return_exceptions=True,
        )

    results = run(main())
    assert results[:2] == [0, 1]
    assert all(isinstance(r, ResultNotSetError) for r in results[2:])


def test_func_runs_in_a_callers_task(run):
    seen = []

    @aggregate(10)
    async def record(*args):
        seen.append(asyncio.current_task())
        return args

    async def main():
        tasks = [asyncio.ensure_future(record(i)) for i in range(4)]
        assert await asyncio.gather(*tasks) == [0, 1, 2, 3]
        return tasks

    tasks = run(main())
    assert len(seen) == 1 and seen[0] in tasks


def test_cancelled_executor_hands_batch_over(run, loop):
    executions = 0
    executing = []
    release = None

    @aggregate(10)
    async def square(*args):
        nonlocal executions
        executions += 1
        executing.append(asyncio.current_task())
        await release.wait()
        return [arg ** 2 for arg in args]

    async def main():
        nonlocal release
        release = asyncio.Event()
        tasks = [asyncio.ensure_future(square(i)) for i in range(9)]
        while not executing:
            await asyncio.sleep(0.005)
        executing[0].cancel()
        while len(executing) < 2:
            await asyncio.sleep(0.005)
        release.set()
        return tasks, await asyncio.gather(*tasks, return_exceptions=True)

    tasks, results = run(main())
    assert executions == 2
    assert executing[1] is not executing[0]
    cancelled = tasks.index(executing[0])
    for index, result in enumerate(results):
        if index == cancelled:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == index ** 2


def test_cancelled_waiter_leaves_others_alone(run, loop_errors):
    @aggregate(30)
    async def failing(*args):
        raise ValueError(args)

    async def main():
        tasks = [asyncio.ensure_future(failing(i)) for i in range(5)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    for index in (0, 2, 3, 4):
        assert isinstance(results[index], ValueError)
        assert results[index].args == ((0, 1, 2, 3, 4),)
    gc.collect()   # loop_errors: nothing "never retrieved"


def test_aggregate_async_sets_futures_itself(run):
    calls = []

    @aggregate_async(10)
    async def partial(*args):
        calls.append(args)
        for arg in args:
            assert isinstance(arg, Arg)
            if arg.value == 3:
                arg.future.set_exception(ValueError("three"))
            elif arg.value % 2 == 0:
                arg.future.set_result(arg.value * 10)

    async def main():
        return await asyncio.gather(
            *[partial(i) for i in range(6)], return_exceptions=True,
        )

    results = run(main())
    assert len(calls) == 1
    assert results[0] == 0 and results[2] == 20 and results[4] == 40
    assert isinstance(results[3], ValueError) and str(results[3]) == "three"
    for index in (1, 5):
        assert type(results[index]) is ResultNotSetError


def test_aggregate_async_exception_fills_unset_futures(run):
    @aggregate_async(10)
    async def half(*args):
        args[0].future.set_result("first")
        raise RuntimeError("rest")

    async def main():
        return await asyncio.gather(
            *[half(i) for i in range(3)], return_exceptions=True,
        )

    results = run(main())
    assert results[0] == "first"
    assert all(isinstance(r, RuntimeError) for r in results[1:])


def test_statistics(run):
    aggregator = Aggregator(variadic, leeway_ms=25.0, max_count=4,
                            statistic_name="aggregate-stats")

    async def main():
        await asyncio.gather(*[aggregator.aggregate(i) for i in range(6)])

    run(main())
    values = {
        metric: value
        for kind, name, metric, value in counters.get_statistics(AggregateStatistic)
        if name == "aggregate-stats"
    }
    assert values == {
        "leeway_ms": 25.0, "max_count": 4, "success": 2, "error": 0, "done": 2,
    }


def test_count_of_the_open_batch(run):
    aggregator = Aggregator(variadic, leeway_ms=20)

    async def main():
        tasks = [asyncio.ensure_future(aggregator.aggregate(i)) for i in range(3)]
        await asyncio.sleep(0)
        open_count = aggregator.count
        await asyncio.gather(*tasks)
        return open_count, aggregator.count

    assert run(main()) == (3, 0)


def test_caller_cancelled_when_chosen_hands_batch_over(run):
    tasks = []

    class Cancelling(Aggregator):
        def _close_by_timer(self, batch):
            super()._close_by_timer(batch)
            # The first caller was just chosen to run the batch: cancel it
            # before it gets to run.
            tasks[0].cancel()

    calls = []

    async def square(*args):
        calls.append(args)
        return [arg ** 2 for arg in args]

    aggregator = Cancelling(square, leeway_ms=10)

    async def main():
        tasks.extend(
            asyncio.ensure_future(aggregator.aggregate(i)) for i in range(4)
        )
        return await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), 10,
        )

    results = run(main())
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [1, 4, 9]
    assert calls == [(0, 1, 2, 3)]


def test_caller_cancelled_waiting_in_aggregate_async(run, loop_errors):
    @aggregate_async(10)
    async def echo(*args):
        for arg in args:
            arg.future.set_result(arg.value)

    async def main():
        tasks = [asyncio.ensure_future(echo(i)) for i in range(4)]
        await asyncio.sleep(0)
        tasks[0].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(main())
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [1, 2, 3]
