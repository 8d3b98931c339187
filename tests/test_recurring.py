"""``aiomisc_c.recurring``: a function called as a strategy says.

Not twinned: the local ``loop`` fixture makes a fresh loop of each kind.
Conditions are awaited with generous time limits; no test depends on how
fast the machine is.
"""
import asyncio
import logging
from types import MappingProxyType

import pytest

import aiomisc_c
from aiomisc_c import counters
from aiomisc_c.recurring import (
    RecurringCallback, RecurringCallbackStatistic, StrategyException,
    StrategySkip, StrategyStop,
)

from helpers.waiting import wait_until


@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_names():
    assert aiomisc_c.RecurringCallback is RecurringCallback
    assert aiomisc_c.StrategyException is StrategyException
    assert aiomisc_c.StrategySkip is StrategySkip
    assert aiomisc_c.StrategyStop is StrategyStop
    assert issubclass(StrategyStop, StrategyException)
    assert issubclass(StrategySkip, StrategyException)
    assert issubclass(StrategyException, Exception)
    assert StrategySkip(1.5).delay == 1.5
    assert RecurringCallbackStatistic.__metrics__ == frozenset(
        {"call_count", "done", "fail", "sum_time"},
    )


def test_attributes():
    def func(a, b=2):
        pass

    recurring = RecurringCallback(func, 1, b=3)
    assert recurring.name == repr(func)
    assert recurring.args == (1,)
    assert isinstance(recurring.kwargs, MappingProxyType)
    assert dict(recurring.kwargs) == {"b": 3}
    assert repr(recurring) == f"<RecurringCallback({func!r})>"
    named = RecurringCallback(func, name="job")
    assert named.name == "job" and repr(named) == "<RecurringCallback(job)>"
    assert named._statistic.name == "job"
    with pytest.raises(TypeError):
        RecurringCallback(42)


def test_bad_start_arguments(run):
    async def main():
        recurring = RecurringCallback(lambda: None)
        with pytest.raises(TypeError):
            recurring.start(42)
        with pytest.raises(TypeError):
            recurring.start(lambda _: 0, suppress_exceptions=(ValueError, 3))

    run(main())


def test_zero_strategy_calls_often(run):
    async def main():
        calls = 0

        async def job():
            nonlocal calls
            calls += 1

        task = RecurringCallback(job).start(lambda _: 0)
        await wait_until(lambda: calls >= 5)
        await aiomisc_c.cancel_tasks([task])
        assert task.cancelled()

    run(main())


def test_calls_never_overlap(run):
    async def main():
        running = started = completed = max_running = 0

        async def job():
            nonlocal running, started, completed, max_running
            started += 1
            running += 1
            max_running = max(max_running, running)
            try:
                await asyncio.sleep(0.02)
            finally:
                running -= 1
            completed += 1

        task = RecurringCallback(job).start(lambda _: 0)
        await wait_until(lambda: started == 3)
        await aiomisc_c.cancel_tasks([task])
        assert max_running == 1
        assert started == 3 and completed == 2
        assert running == 0

    run(main())


def test_strategy_stop_finishes_normally(run):
    async def main():
        def strategy(_):
            raise StrategyStop

        task = RecurringCallback(lambda: None).start(strategy)
        assert await task is None

    run(main())


def test_strategy_skip_and_stop(run):
    async def main():
        strategy_calls = callback_calls = 0

        def strategy(recurring):
            nonlocal strategy_calls
            strategy_calls += 1
            assert isinstance(recurring, RecurringCallback)
            if strategy_calls == 3:
                raise StrategySkip(0)
            if strategy_calls == 5:
                raise StrategyStop
            return 0

        async def job():
            nonlocal callback_calls
            callback_calls += 1

        await RecurringCallback(job).start(strategy)
        assert (strategy_calls, callback_calls) == (5, 3)

    run(main())


def test_async_strategy(run):
    async def main():
        calls = []

        async def strategy(_):
            await asyncio.sleep(0)
            if len(calls) == 2:
                raise StrategyStop
            return 0

        await RecurringCallback(calls.append, "x").start(strategy)
        assert calls == ["x", "x"]

    run(main())


def test_wrong_delay_stops_with_warning(run, caplog):
    async def main():
        calls = []
        with caplog.at_level(logging.WARNING, logger="aiomisc_c.recurring"):
            await RecurringCallback(calls.append, 1).start(lambda _: None)
        assert calls == []
        assert "returns wrong delay None. Stopping." in caplog.text

    run(main())


def test_negative_delay_counts_as_zero(run, caplog):
    async def main():
        calls = []

        def strategy(_):
            if calls:
                raise StrategyStop
            return -5

        with caplog.at_level(logging.WARNING, logger="aiomisc_c.recurring"):
            await asyncio.wait_for(RecurringCallback(calls.append, 1).start(strategy), 5)
        assert calls == [1]
        assert "returns negative delay -5. Zero delay will be used." in caplog.text

    run(main())


def test_strategy_error_fails_the_task(run):
    async def main():
        def strategy(_):
            raise LookupError("strategy broke")

        task = RecurringCallback(lambda: None).start(strategy)
        with pytest.raises(LookupError, match="strategy broke"):
            await task

    run(main())


def test_errors_are_counted_and_logged(run, caplog):
    async def main():
        attempts = []

        def job(kind):
            attempts.append(kind)
            if len(attempts) == 1:
                raise ValueError("suppressed")
            if len(attempts) == 2:
                raise KeyError("logged")
            if len(attempts) == 3:
                raise asyncio.CancelledError
            return None

        def strategy(_):
            if len(attempts) >= 4:
                raise StrategyStop
            return 0

        recurring = RecurringCallback(job, "k", name="errors")
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.recurring"):
            await recurring.start(strategy, suppress_exceptions=(ValueError,))
        statistic = recurring._statistic
        assert len(attempts) == 4
        assert statistic.call_count == 4
        assert statistic.fail == 2
        assert statistic.done == 1
        assert statistic.sum_time >= 0
        assert "Recurring task error:" in caplog.text
        assert "logged" in caplog.text
        assert "suppressed" not in caplog.text

    run(main())


def test_statistics_are_reported(run):
    async def main():
        recurring = RecurringCallback(lambda: None, name="recurring-stats")

        def strategy(_):
            if recurring._statistic.call_count == 2:
                raise StrategyStop
            return 0

        await recurring.start(strategy)
        return recurring

    recurring = run(main())   # alive: its statistic is reported
    values = {
        metric: value
        for kind, name, metric, value in counters.get_statistics(
            RecurringCallbackStatistic,
        )
        if name == "recurring-stats"
    }
    assert values["call_count"] == 2 and values["done"] == 2
    assert values["fail"] == 0
    del recurring


@pytest.mark.parametrize("shield", [True, False])
def test_shield_lets_running_call_finish(run, shield):
    async def main():
        started = asyncio.Event()
        release = asyncio.Event()
        finished = []

        async def job():
            started.set()
            await release.wait()
            finished.append(True)

        task = RecurringCallback(job).start(lambda _: 0, shield=shield)
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        release.set()
        await asyncio.sleep(0.05)
        assert finished == ([True] if shield else [])

    run(main())
