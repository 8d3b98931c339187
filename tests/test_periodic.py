"""``aiomisc_c.periodic.PeriodicCallback``: a call every ``interval``.

Not twinned: the local ``loop`` fixture makes a fresh loop of each kind.
Times are read from the loop clock and only checked as lower bounds (a
timer never fires early); conditions are awaited with generous limits.
"""
import asyncio
import logging
import sys

import pytest

import aiomisc_c
from aiomisc_c import counters
from aiomisc_c.periodic import PeriodicCallback
from aiomisc_c.recurring import RecurringCallbackStatistic

from helpers.waiting import wait_until

# uvloop's clock has a millisecond resolution.
CLOCK_SLACK = 0.002


@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_names():
    assert aiomisc_c.PeriodicCallback is PeriodicCallback
    assert aiomisc_c.periodic.PeriodicCallback is PeriodicCallback


def test_repr_and_name():
    def job():
        pass

    assert repr(PeriodicCallback(job)) == f"PeriodicCallback({job!r})"
    named = PeriodicCallback(job, name="tick")
    assert repr(named) == "PeriodicCallback(tick)"
    assert named._recurring_callback._statistic.name == "tick"


def test_bad_arguments_raise_at_once(run):
    async def main():
        periodic = PeriodicCallback(lambda: None)
        for interval in (0, None, 0.0, -1, -0.5):
            with pytest.raises(AssertionError):
                periodic.start(interval)
        with pytest.raises(TypeError):
            periodic.start("1")
        with pytest.raises(TypeError):
            periodic.start(1, delay="soon")
        with pytest.raises(TypeError):
            periodic.start(1, suppress_exceptions=("nope",))
        with pytest.raises(TypeError):
            PeriodicCallback(None)
        # Nothing was started by the failed calls.
        with pytest.raises(RuntimeError, match="Callback not started"):
            await periodic.stop()

    run(main())


def test_calls_and_stop(run):
    async def main():
        calls = 0

        async def job():
            nonlocal calls
            calls += 1

        periodic = PeriodicCallback(job)
        periodic.start(0.01)
        await wait_until(lambda: calls >= 5)
        with pytest.raises(asyncio.CancelledError):
            await periodic.stop()
        stopped_at = calls
        await asyncio.sleep(0.05)
        assert calls == stopped_at

        periodic.start(0.01)
        await wait_until(lambda: calls >= stopped_at + 5)
        result = await periodic.stop(return_exceptions=True)
        assert len(result) == 1 and isinstance(result[0], asyncio.CancelledError)

    run(main())


def test_stop_not_started(run):
    async def main():
        periodic = PeriodicCallback(lambda: None)
        with pytest.raises(RuntimeError) as info:
            await periodic.stop()
        assert str(info.value) == "Callback not started"
        result = await periodic.stop(return_exceptions=True)
        assert len(result) == 1 and isinstance(result[0], RuntimeError)
        assert str(result[0]) == "Callback not started"

    run(main())


def test_double_start(run):
    async def main():
        periodic = PeriodicCallback(lambda: None)
        periodic.start(10)
        with pytest.raises(asyncio.InvalidStateError):
            periodic.start(10)
        await periodic.stop(return_exceptions=True)
        periodic.start(10)      # allowed again once stopped
        await periodic.stop(return_exceptions=True)

    run(main())


def test_timing_delay_then_interval_after_each_call(run, loop):
    interval, delay, duration = 0.02, 0.05, 0.01

    async def main():
        spans = []

        async def job():
            begin = loop.time()
            await asyncio.sleep(duration)
            spans.append((begin, loop.time()))

        started = loop.time()
        periodic = PeriodicCallback(job)
        periodic.start(interval, delay=delay)
        await wait_until(lambda: len(spans) >= 4)
        await periodic.stop(return_exceptions=True)
        return started, spans

    started, spans = run(main())
    assert spans[0][0] >= started + delay - CLOCK_SLACK
    for (_, previous_end), (begin, _) in zip(spans, spans[1:]):
        # The next call starts an interval after the previous one ended:
        # calls never overlap, and a long call pushes the next one back.
        assert begin >= previous_end + interval - CLOCK_SLACK


def test_no_call_before_delay(run, loop):
    async def main():
        calls = []
        periodic = PeriodicCallback(lambda: calls.append(loop.time()))
        started = loop.time()
        periodic.start(0.01, delay=0.2)
        await wait_until(lambda: len(calls) >= 2)
        await periodic.stop(return_exceptions=True)
        assert calls[0] >= started + 0.2 - CLOCK_SLACK

    run(main())


def test_stop_cancels_the_running_call(run):
    async def main():
        started = finished = 0
        cancelled = asyncio.Event()

        async def job():
            nonlocal started, finished
            started += 1
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            finished += 1

        periodic = PeriodicCallback(job)
        periodic.start(0.01)
        await wait_until(lambda: started == 1)
        await periodic.stop(return_exceptions=True)
        # The call was cancelled before stop()'s future resolved.
        assert cancelled.is_set()
        assert (started, finished) == (1, 0)
        statistic = periodic._recurring_callback._statistic
        assert statistic.call_count == 1
        assert statistic.done == statistic.fail == 0

    run(main())


@pytest.mark.parametrize("shield", [True, False])
def test_shield(run, shield):
    async def main():
        entered = asyncio.Event()
        release = asyncio.Event()
        completed = 0

        async def job():
            nonlocal completed
            entered.set()
            await release.wait()
            completed += 1

        periodic = PeriodicCallback(job)
        periodic.start(0.01, shield=shield)
        await asyncio.wait_for(entered.wait(), 5)
        await periodic.stop(return_exceptions=True)
        release.set()
        await asyncio.sleep(0.05)
        assert completed == (1 if shield else 0)
        statistic = periodic._recurring_callback._statistic
        assert statistic.done == (1 if shield else 0)

    run(main())


def test_errors_never_end_the_schedule(run, caplog):
    async def main():
        attempts = []

        def job(name, *, fail):
            attempts.append(name)
            kind = fail[(len(attempts) - 1) % len(fail)]
            if kind is not None:
                raise kind("failure")

        periodic = PeriodicCallback(
            job, "job", fail=[ValueError, KeyError, asyncio.CancelledError, None],
            name="periodic-errors",
        )
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.recurring"):
            periodic.start(0.001, suppress_exceptions=(ValueError,))
            await wait_until(lambda: len(attempts) >= 8)
            await periodic.stop(return_exceptions=True)
        statistic = periodic._recurring_callback._statistic
        assert statistic.call_count == len(attempts)
        # Of each four calls: one suppressed, one logged (both failures), one
        # CancelledError (neither), one success.
        assert statistic.fail >= 4 and statistic.done >= 2
        assert caplog.text.count("Recurring task error:") == statistic.fail // 2
        assert "KeyError" in caplog.text and "ValueError" not in caplog.text

    run(main())


def test_args_kwargs_and_sync_callbacks(run):
    async def main():
        seen = []
        periodic = PeriodicCallback(
            lambda *args, **kwargs: seen.append((args, kwargs)), 1, 2, key="v",
        )
        periodic.start(0.001)
        await wait_until(lambda: len(seen) >= 3)
        await periodic.stop(return_exceptions=True)
        assert set(map(repr, seen)) == {repr(((1, 2), {"key": "v"}))}

    run(main())


def test_callback_returning_an_awaitable(run):
    async def main():
        done = []

        def job():
            future = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(future.set_result, None)
            future.add_done_callback(lambda _: done.append(1))
            return future

        periodic = PeriodicCallback(job)
        periodic.start(0.001)
        await wait_until(lambda: len(done) >= 3)
        await periodic.stop(return_exceptions=True)
        statistic = periodic._recurring_callback._statistic
        assert statistic.done >= 3

    run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
def test_callback_runs_in_a_task(run):
    async def main():
        outcomes = []

        async def job():
            assert asyncio.current_task() is not None
            try:
                async with asyncio.timeout(0.001):
                    await asyncio.sleep(10)
            except TimeoutError:
                outcomes.append("timeout")

        periodic = PeriodicCallback(job)
        periodic.start(0.001)
        await wait_until(lambda: len(outcomes) >= 2)
        await periodic.stop(return_exceptions=True)

    run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="needs Task.cancelling")
def test_swallowed_cancellation_still_stops(run):
    async def main():
        entered = asyncio.Event()
        calls = 0

        async def stubborn():
            nonlocal calls
            calls += 1
            entered.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass

        periodic = PeriodicCallback(stubborn)
        periodic.start(0.001)
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.wait_for(periodic.stop(return_exceptions=True), 5)
        await asyncio.sleep(0.02)
        assert calls == 1

    run(main())


def test_statistics_are_reported(run):
    async def main():
        periodic = PeriodicCallback(lambda: None, name="periodic-stats")
        periodic.start(0.001)
        statistic = periodic._recurring_callback._statistic
        await wait_until(lambda: statistic.done >= 3)
        await periodic.stop(return_exceptions=True)
        return periodic

    periodic = run(main())
    values = {
        metric: value
        for kind, name, metric, value in counters.get_statistics(
            RecurringCallbackStatistic,
        )
        if name == "periodic-stats"
    }
    assert values["call_count"] == values["done"] >= 3
    assert values["fail"] == 0 and values["sum_time"] >= 0
    del periodic


@pytest.mark.parametrize("wait_first", [True, False])
def test_errors_after_awaiting(run, caplog, wait_first):
    if wait_first and sys.version_info < (3, 11):
        pytest.skip(
            "Python 3.10 cannot tell a CancelledError raised by a call from "
            "a cancellation of the schedule (no Task.cancelling)",
        )

    async def main():
        attempts = []
        raised = []

        async def job():
            attempts.append(1)
            if wait_first:
                await asyncio.sleep(0)
            kind = [ValueError, KeyError, asyncio.CancelledError, None][
                (len(attempts) - 1) % 4
            ]
            raised.append(kind)
            if kind is not None:
                raise kind("failure")

        periodic = PeriodicCallback(job)
        statistic = periodic._recurring_callback._statistic
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.recurring"):
            periodic.start(0.001, suppress_exceptions=(ValueError,))
            await wait_until(lambda: raised.count(None) >= 2)
            await periodic.stop(return_exceptions=True)
        assert statistic.done == raised.count(None)
        assert statistic.fail == raised.count(ValueError) + raised.count(KeyError)
        assert caplog.text.count("Recurring task error:") == raised.count(KeyError)
        assert raised.count(asyncio.CancelledError) >= 1

    run(main())


@pytest.mark.parametrize("asynchronous", [True, False])
def test_stop_from_inside_the_callback(run, asynchronous):
    async def main():
        events = []
        stopped = []

        async def async_job():
            events.append("called")
            stopped.append(periodic.stop(return_exceptions=True))
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

        def sync_job():
            events.append("called")
            stopped.append(periodic.stop(return_exceptions=True))

        periodic = PeriodicCallback(async_job if asynchronous else sync_job)
        periodic.start(0.001)
        await wait_until(lambda: stopped)
        result = await asyncio.wait_for(stopped[0], 5)
        assert isinstance(result[0], asyncio.CancelledError)
        await asyncio.sleep(0.02)
        assert events == (["called", "cancelled"] if asynchronous else ["called"])

    run(main())


def test_one_task_across_awaits(run):
    async def main():
        seen = []

        async def job():
            first = asyncio.current_task()
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
            seen.append(first is asyncio.current_task() is not None)

        periodic = PeriodicCallback(job)
        periodic.start(0.001)
        await wait_until(lambda: len(seen) >= 3)
        await periodic.stop(return_exceptions=True)
        assert all(seen)

    run(main())


def test_stop_right_after_start(run):
    async def main():
        calls = []
        periodic = PeriodicCallback(calls.append, 1)
        periodic.start(0.001)
        result = await periodic.stop(return_exceptions=True)
        assert isinstance(result[0], asyncio.CancelledError)
        await asyncio.sleep(0.02)
        assert calls == []

    run(main())
