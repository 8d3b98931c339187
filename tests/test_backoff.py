"""``asyncbackoff`` / ``asyncretry``, over both twins and both loops.

The public names are read from ``aiomisc_c.backoff`` at test time, so the
``implementation`` fixture (via ``loop``) decides which twin runs.
"""
import asyncio
import importlib
import functools
import gc
import inspect
import sys
import time
from unittest import mock

import pytest

from aiomisc_c import _backoff_py, _compat
from aiomisc_c import backoff as bo
# the package attribute "timeout" is the decorator (as in aiomisc); the
# module is reached through importlib
timeout_module = importlib.import_module("aiomisc_c.timeout")
from aiomisc_c.counters import Statistic, get_statistics

HAS_UNCANCEL = sys.version_info >= (3, 11)


class FlakyError(Exception):
    pass


def stats(backoff_or_wrapper):
    """{counter: value} of the Backoff behind a decorated function."""
    backoff = getattr(backoff_or_wrapper, "statistic", None)
    assert backoff is not None
    return dict(backoff)


def decorate(*args, **kwargs):
    """asyncbackoff(...) returning (Backoff, decorator) so tests can read the
    statistic of the Backoff."""
    backoff = bo.asyncbackoff(*args, **kwargs)
    return backoff, backoff


def pending_call_timers(loop):
    """How many timers of calls are still armed on ``loop`` (None when it
    cannot be told: the Python twin on uvloop).

    The C twin queues call timers in one per-loop queue whose real loop
    timer may stay armed, idle, after the calls are over; what must be gone
    is every call's entry in it."""
    if _compat.implementation["backoff"] == "c":
        from aiomisc_c import _backoff
        return _backoff._pending_timers(loop)
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is None:
        return None
    return len([
        h for h in scheduled
        if not h.cancelled() and ("_on_timer" in repr(h) or "_wake" in repr(h))
    ])


# --- behaviours aiomisc 17 guarantees ---------------------------------------


def test_five_failures_then_success(loop, run):
    backoff, deco = decorate(0.1, 1, 0, Exception)
    calls = 0

    @deco
    async def flaky():
        nonlocal calls
        calls += 1
        if calls < 6:
            raise FlakyError(calls)
        return "ok"

    assert run(flaky()) == "ok"
    assert calls == 6
    s = stats(backoff)
    assert s["attempts"] == 6 and s["done"] == 6
    assert s["errors"] == 5 and s["cancels"] == 0
    assert s["sum_time"] > 0


def test_non_retryable_after_one_attempt(loop, run):
    backoff, deco = decorate(0.1, 0.5)
    calls = 0

    @deco
    async def fail():
        nonlocal calls
        calls += 1
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        run(fail())
    assert calls == 1
    assert stats(backoff)["errors"] == 0
    assert stats(backoff)["done"] == 1


@pytest.mark.parametrize("calls_made", [1, 2])
def test_attempt_and_deadline_timeout(loop, run, calls_made):
    backoff, deco = decorate(0.2, 0.2, 0, Exception)

    @deco
    async def slow():
        await asyncio.sleep(5)

    for _ in range(calls_made):
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            run(slow())
        assert loop.time() - started < 4   # far below the 5 s sleep
    s = stats(backoff)
    assert s["attempts"] == calls_made and s["done"] == calls_made


def test_zero_deadline_times_out_without_attempt(loop, run):
    backoff, deco = decorate(0.05, 0)
    func = mock.AsyncMock(return_value=1)
    with pytest.raises(asyncio.TimeoutError):
        run(deco(func)())
    assert func.call_count == 0
    assert stats(backoff)["attempts"] == 0


def test_deadline_raises_last_exception(loop, run):
    backoff, deco = decorate(None, 1, 0, Exception)
    calls = 0

    @deco
    async def retry_me():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        raise ValueError("RETRY")

    with pytest.raises(ValueError, match="RETRY"):
        run(retry_me())
    assert calls >= 5
    s = stats(backoff)
    assert s["attempts"] == calls == s["done"]
    # the attempt running at the deadline was cancelled by it
    assert s["cancels"] == 1
    assert s["errors"] == calls - 1


def test_timeout_then_non_retryable(loop, run):
    backoff, deco = decorate(0.1, 2, 0)
    calls = 0

    @deco
    async def func():
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(5)
        raise FlakyError()

    with pytest.raises(FlakyError):
        run(func())
    assert calls == 2
    assert stats(backoff)["errors"] == 1    # the timed-out attempt


@pytest.mark.parametrize("max_tries", [1, 2, 5])
def test_max_tries(loop, run, max_tries):
    backoff, deco = decorate(0.5, None, 0, Exception, max_tries=max_tries)
    calls = 0

    @deco
    async def fail():
        nonlocal calls
        calls += 1
        raise FlakyError(calls)

    with pytest.raises(FlakyError) as info:
        run(fail())
    assert calls == max_tries
    assert info.value.args == (max_tries,)
    assert stats(backoff)["attempts"] == max_tries


def test_giveup_sees_the_raised_instance(loop, run):
    seen = []

    def giveup(exc):
        seen.append(exc)
        return len(seen) == 3

    @bo.asyncbackoff(None, None, 0, FlakyError, giveup=giveup)
    async def fail():
        raise FlakyError(len(seen))

    with pytest.raises(FlakyError) as info:
        run(fail())
    assert len(seen) == 3
    assert info.value is seen[-1]


def test_giveup_error_propagates(loop, run):
    def giveup(exc):
        raise RuntimeError("giveup broke")

    @bo.asyncbackoff(None, None, 0, FlakyError, giveup=giveup)
    async def fail():
        raise FlakyError()

    with pytest.raises(RuntimeError, match="giveup broke"):
        run(fail())


def test_asyncretry(loop, run):
    calls = 0

    @bo.asyncretry(5)
    async def fail():
        nonlocal calls
        calls += 1
        raise FlakyError()

    with pytest.raises(FlakyError):
        run(fail())
    assert calls == 5


def test_asyncretry_on_methods(loop, run):
    class Thing:
        def __init__(self):
            self.calls = 0

        @bo.asyncretry(5)
        async def fail(self, value, *, key=None):
            self.calls += 1
            if self.calls < 5:
                raise FlakyError()
            return self, value, key

    thing = Thing()
    assert run(thing.fail(1, key=2)) == (thing, 1, 2)
    assert thing.calls == 5
    # the class attribute is still the wrapper
    assert run(Thing.fail(thing, 3)) == (thing, 3, None)


def test_asyncretry_statistic_class(loop, run):
    @bo.asyncretry(2, statistic_name="retry-name")
    async def ok():
        return 1

    assert run(ok()) == 1
    found = [
        r for r in get_statistics(bo.RetryStatistic) if r.name == "retry-name"
    ]
    assert {r.metric: r.value for r in found}["attempts"] == 1
    assert all(r.kind is bo.RetryStatistic for r in found)


@pytest.mark.parametrize(
    "args, message",
    [
        ((-1, 1), "'attempt_timeout' must be positive or None"),
        ((0, -1), "'deadline' must be positive or None"),
        ((0, 0, -0.1), "'pause' must be positive"),
    ],
)
def test_bad_arguments(implementation, args, message):
    with pytest.raises(ValueError) as info:
        bo.asyncbackoff(*args)
    assert str(info.value) == message


def test_bad_keyword_arguments(implementation):
    with pytest.raises(ValueError, match="'max_retries' must be >= 1 or None"):
        bo.asyncbackoff(None, None, max_tries=0)
    with pytest.raises(ValueError, match="'giveup' must be a callable or None"):
        bo.asyncbackoff(None, None, giveup=1)
    with pytest.raises(TypeError, match="'pause'"):
        bo.asyncbackoff(None, None, "x")
    with pytest.raises(TypeError, match="'attempt_timeout'"):
        bo.asyncbackoff("1", None)
    with pytest.raises(TypeError, match="'max_tries'"):
        bo.asyncbackoff(None, None, max_tries=1.5)
    with pytest.raises(TypeError, match="'exceptions'"):
        bo.asyncbackoff(None, None, 0, 42)
    with pytest.raises(TypeError, match="'exceptions'"):
        bo.asyncretry(3, exceptions=(ValueError, "x"))
    with pytest.raises(ValueError):
        bo.asyncbackoff(float("nan"), None)


def test_not_a_coroutine_function(implementation):
    with pytest.raises(TypeError, match="Function must be a coroutine function"):
        bo.asyncbackoff(0, 0)(lambda x: None)


def test_pause_is_honoured(loop, run):
    calls = []

    @bo.asyncbackoff(None, None, 0.35, FlakyError, max_tries=2)
    async def fail():
        calls.append(loop.time())
        raise FlakyError()

    with pytest.raises(FlakyError):
        run(fail())
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.3


# --- further semantics ------------------------------------------------------


def test_exceptions_keyword_and_positional(loop, run):
    calls = 0

    async def func():
        nonlocal calls
        calls += 1
        if calls in (1, 3):
            raise KeyError()
        if calls in (2, 4):
            raise IndexError()
        return calls

    assert run(bo.asyncbackoff(None, None, 0, KeyError, IndexError)(func)()) == 5
    calls = 0
    keyword = bo.asyncbackoff(None, None, exceptions=(KeyError, IndexError))
    assert run(keyword(func)()) == 5
    # keyword wins over positional (17.x: exceptions or exc)
    only = bo.asyncbackoff(None, None, 0, KeyError, exceptions=(IndexError,))
    calls = 0
    with pytest.raises(KeyError):
        run(only(func)())


def test_exceptions_attribute_ends_with_timeout(implementation):
    backoff = bo.asyncbackoff(None, None, 0, KeyError)
    assert backoff.exceptions == (KeyError, asyncio.TimeoutError)
    assert bo.asyncbackoff(None, None).exceptions == (asyncio.TimeoutError,)
    assert backoff.pause == 0 and backoff.max_tries is None
    assert isinstance(backoff, bo.Backoff)
    assert isinstance(backoff.statistic, bo.BackoffStatistic)


def test_filter_does_not_retry_other_errors(loop, run):
    calls = 0

    @bo.asyncbackoff(None, None, 0, KeyError)
    async def func():
        nonlocal calls
        calls += 1
        raise IndexError()

    with pytest.raises(IndexError):
        run(func())
    assert calls == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_never_retried(loop, run, error):
    calls = 0

    @bo.asyncbackoff(None, None, 0, BaseException)
    async def func():
        nonlocal calls
        calls += 1
        raise error()

    with pytest.raises(error):
        loop.run_until_complete(func())
    assert calls == 1


def test_cancelled_error_raised_inside_never_retried(loop, run):
    calls = 0
    backoff = bo.asyncbackoff(None, None, 0, BaseException)

    @backoff
    async def func():
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError()

    async def main():
        with pytest.raises(asyncio.CancelledError):
            await func()

    run(main())
    assert calls == 1
    assert stats(backoff)["cancels"] == 1


@pytest.mark.parametrize("pause", [0, 5])
def test_keyboard_interrupt_during_pause(loop, run, pause):
    calls = 0
    backoff = bo.asyncbackoff(None, None, pause, BaseException)

    @backoff
    async def func():
        nonlocal calls
        calls += 1
        raise FlakyError()

    async def main():
        call = func()
        waiting_on = call.send(None)      # the attempt fails, a pause starts
        if pause:
            assert calls == 1
            assert isinstance(waiting_on, asyncio.Future)
        else:
            # pause=0: retries at once, yields to the loop every 16th retry
            assert calls == 16
            assert waiting_on is None
        with pytest.raises(KeyboardInterrupt):
            call.throw(KeyboardInterrupt())
        if pause:
            assert waiting_on.cancelled()
        # the call is over
        call.close()
        with pytest.raises(RuntimeError):
            call.send(None)

    run(main())
    assert calls == (1 if pause else 16)
    s = stats(backoff)
    assert s["attempts"] == s["done"] == calls
    await_timers_gone(loop)


def await_timers_gone(loop):
    assert pending_call_timers(loop) in (0, None)


def test_deadline_bounds_the_pause(loop, run):
    backoff, deco = decorate(None, 0.2, 10, FlakyError)
    calls = 0

    @deco
    async def fail():
        nonlocal calls
        calls += 1
        raise FlakyError(calls)

    started = loop.time()
    with pytest.raises(FlakyError) as info:
        run(fail())
    assert loop.time() - started < 5
    assert calls == 1 and info.value.args == (1,)
    s = stats(backoff)
    assert s["attempts"] == s["done"] == 1 and s["errors"] == 1
    assert s["cancels"] == 0


def test_deadline_bounds_the_attempt(loop, run):
    backoff, deco = decorate(None, 0.1)

    @deco
    async def slow():
        await asyncio.sleep(10)

    with pytest.raises(asyncio.TimeoutError) as info:
        run(slow())
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    s = stats(backoff)
    assert s["cancels"] == 1 and s["done"] == 1 and s["errors"] == 0


def test_zero_attempt_timeout_never_runs_the_body(loop, run):
    func = mock.AsyncMock(return_value=1)
    backoff, deco = decorate(0, 0.2, 0.01)
    with pytest.raises(asyncio.TimeoutError):
        run(deco(func)())
    assert func.call_count >= 1
    assert func.await_count == 0
    s = stats(backoff)
    assert s["errors"] == s["attempts"] == func.call_count


def test_cancel_caller_during_attempt(loop, run):
    backoff, deco = decorate(5, 10, 0, Exception)
    started = asyncio.Event()
    calls = 0

    @deco
    async def slow():
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)

    run(main())
    assert calls == 1
    s = stats(backoff)
    assert s["attempts"] == s["done"] == 1 and s["cancels"] == 1
    assert s["errors"] == 0
    await_timers_gone(loop)


def test_cancel_caller_during_pause(loop, run):
    backoff, deco = decorate(5, 10, 0.2, Exception)
    failed = asyncio.Event()
    calls = 0

    @deco
    async def fail():
        nonlocal calls
        calls += 1
        failed.set()
        raise FlakyError()

    async def main():
        task = asyncio.ensure_future(fail())
        await failed.wait()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.4)      # past the pause: nothing runs again

    run(main())
    assert calls == 1
    s = stats(backoff)
    assert s["attempts"] == s["done"] == 1 and s["errors"] == 1
    await_timers_gone(loop)


def test_no_extra_task_per_call(loop, run):
    tasks = []

    @bo.asyncbackoff(1, 2, 0, FlakyError)
    async def func():
        tasks.append(asyncio.current_task())
        if len(tasks) < 3:
            raise FlakyError()
        return len(asyncio.all_tasks())

    async def main():
        return asyncio.current_task(), await func()

    caller, n_tasks = run(main())
    # run() wraps main() in wait_for's task: the attempts ran in it
    assert all(t is tasks[0] for t in tasks)
    assert n_tasks <= 2


@pytest.mark.skipif(not HAS_UNCANCEL, reason="needs Task.uncancel (3.11+)")
def test_external_cancel_not_swallowed_when_timer_fires_too(loop, run):
    backoff, deco = decorate(0.05, None, 0, Exception)
    calls = 0

    @deco
    async def func():
        nonlocal calls
        calls += 1
        task = asyncio.current_task()
        asyncio.get_running_loop().call_soon(task.cancel)
        time.sleep(0.1)          # our attempt timer is due now, too
        await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(func())
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert calls == 1
    assert stats(backoff)["cancels"] == 1


@pytest.mark.skipif(not HAS_UNCANCEL, reason="needs asyncio.timeout (3.11+)")
def test_nested_timeout_backoff_outer_timeout(loop, run):
    calls = 0

    @bo.asyncbackoff(None, 5, 0, asyncio.TimeoutError)
    @timeout_module.timeout(0.05)
    async def func():
        nonlocal calls
        calls += 1
        if calls < 3:
            await asyncio.sleep(5)
        return calls

    async def main():
        async with asyncio.timeout(5):
            result = await func()
        return result, asyncio.current_task().cancelling()

    assert run(main()) == (3, 0)


@pytest.mark.skipif(not HAS_UNCANCEL, reason="needs asyncio.timeout (3.11+)")
@pytest.mark.parametrize("where", ["attempt", "pause"])
def test_outer_timeout_is_not_retried(loop, run, where):
    backoff = bo.asyncbackoff(1, 5, 0.5, asyncio.TimeoutError, Exception)
    calls = 0

    @backoff
    @timeout_module.timeout(2)
    async def func():
        nonlocal calls
        calls += 1
        if where == "attempt":
            await asyncio.sleep(5)
        raise FlakyError()

    async def main():
        with pytest.raises(asyncio.TimeoutError) as info:
            async with asyncio.timeout(0.15):
                await func()
        # the outer timeout's own error, from its CancelledError
        assert isinstance(info.value.__cause__, asyncio.CancelledError)
        return asyncio.current_task().cancelling()

    assert run(main()) == 0
    assert calls == 1
    s = dict(backoff.statistic)
    assert s["attempts"] == s["done"] == 1
    assert s["cancels"] == (1 if where == "attempt" else 0)


def test_uncancel_bookkeeping(loop, run):
    @bo.asyncbackoff(0.05, None, 0, max_tries=2)
    async def slow():
        await asyncio.sleep(5)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await slow()
        task = asyncio.current_task()
        # our cancellations were all taken back
        return task.cancelling() if HAS_UNCANCEL else 0

    assert run(main()) == 0


def test_coroutine_function_detection(implementation):
    async def func(a, b=2, *, c=3) -> int:
        """Docstring."""
        return a

    wrapped = bo.asyncbackoff(1, 2)(func)
    assert asyncio.iscoroutinefunction(wrapped)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "func"
    assert wrapped.__doc__ == "Docstring."
    assert wrapped.__wrapped__ is func
    assert str(inspect.signature(wrapped)) == str(inspect.signature(func))
    # a sync function wrapped around it does not become a coroutine function
    @functools.wraps(wrapped)
    def sync(*args):
        return None

    assert not inspect.iscoroutinefunction(sync)


def test_call_is_a_coroutine(loop, run):
    @bo.asyncretry(2)
    async def func(x):
        return x

    async def main():
        call = func(1)
        assert asyncio.iscoroutine(call)
        assert inspect.isawaitable(call)
        task = asyncio.create_task(call)
        gathered = await asyncio.gather(func(2), func(3))
        return await task, gathered

    assert run(main()) == (1, [2, 3])


def test_async_mock_and_partial(loop, run):
    func = mock.AsyncMock(side_effect=[FlakyError(), 7])
    assert run(bo.asyncretry(3)(func)()) == 7
    assert func.await_count == 2

    async def add(a, b):
        return a + b

    assert run(bo.asyncretry(1)(functools.partial(add, 1))(2)) == 3


def test_backoff_execute_and_prepare(loop, run):
    backoff = bo.Backoff(None, None, 0, (FlakyError,), max_tries=3)
    calls = 0

    async def func(x):
        nonlocal calls
        calls += 1
        if calls < 2:
            raise FlakyError()
        return x

    assert run(backoff.execute(func, 5)) == 5
    execution = backoff.prepare(func)
    assert isinstance(execution, bo.BackoffExecution)
    assert execution.statistic is backoff.statistic
    assert execution.total_tries == 0 and execution.last_exception is None
    calls = 0
    assert run(execution(6)) == 6
    assert execution.total_tries == 2
    assert isinstance(execution.last_exception, FlakyError)
    assert run(execution.execute(7)) == 7
    assert bo.BackoffExecution[int, int] is not None


def test_backoff_execution_direct(loop, run):
    statistic = bo.BackoffStatistic()

    async def fail():
        raise FlakyError()

    execution = bo.BackoffExecution(
        fail, statistic, None, None, 0, (FlakyError,), max_tries=2,
    )
    with pytest.raises(FlakyError):
        run(execution())
    assert execution.total_tries == 2
    assert statistic.attempts == 2 and statistic.errors == 2


def test_subclass_overrides_are_honoured(loop, run):
    seen = []

    class MyBackoff(bo.Backoff):
        def prepare(self, func):
            seen.append(func)
            return super().prepare(func)

    @MyBackoff(None, None)
    async def func():
        return 1

    assert run(func()) == 1
    assert len(seen) == 1


def test_patched_execute_is_honoured(loop, run):
    backoff = bo.asyncbackoff(None, None)

    @backoff
    async def func():
        return 1

    async def fake_execute(self, f, *args, **kwargs):
        return "patched"

    with mock.patch.object(type(backoff), "execute", fake_execute):
        assert run(func()) == "patched"
    assert run(func()) == 1


def test_statistic_attribute_is_replaceable(loop, run):
    backoff = bo.asyncretry(2)

    @backoff
    async def func():
        return 1

    fresh = bo.RetryStatistic("fresh")
    backoff.statistic = fresh
    run(func())
    assert fresh.attempts == 1 and fresh.done == 1


def test_attributes_are_reassignable(loop, run):
    backoff = bo.asyncbackoff(None, None, 0, FlakyError)
    calls = 0

    @backoff
    async def func():
        nonlocal calls
        calls += 1
        raise FlakyError()

    backoff.max_tries = 3
    with pytest.raises(FlakyError):
        run(func())
    assert calls == 3


def test_twins_expose_the_same_names():
    names = ("Backoff", "BackoffExecution", "asyncbackoff", "asyncretry")
    for name in names:
        assert getattr(bo, f"_Py{name}") is getattr(_backoff_py, name)
    c_module = _compat.import_c_module("_backoff")
    if c_module is None:
        pytest.skip("C extension not built")
    for name in names + ("timeout", "BackoffStatistic", "RetryStatistic"):
        assert hasattr(c_module, name), name
    assert c_module.BackoffStatistic is _backoff_py.BackoffStatistic
    for name in ("asyncbackoff", "asyncretry", "timeout"):
        c_params = inspect.signature(getattr(c_module, name)).parameters
        py_params = inspect.signature(getattr(_backoff_py, name)).parameters
        assert [(p.name, p.kind, p.default) for p in c_params.values()] == [
            (p.name, p.kind, p.default) for p in py_params.values()
        ]


def test_call_objects_are_collected(loop, run):
    @bo.asyncbackoff(1, 2, 0, FlakyError)
    async def func(x):
        return x

    async def main():
        for i in range(100):
            assert await func(i) == i

    run(main())
    gc.collect()
    await_timers_gone(loop)


def test_zero_pause_yields_every_16_retries(loop, run):
    calls = 0
    other_ran = []

    @bo.asyncbackoff(None, None, 0, FlakyError)
    async def fail():
        nonlocal calls
        calls += 1
        if calls == 40:
            return calls
        raise FlakyError()

    async def main():
        asyncio.get_running_loop().call_soon(lambda: other_ran.append(calls))
        return await fail()

    assert run(main()) == 40
    # the loop got its turn after the 16th failure, not before
    assert other_ran == [16]


def test_zero_pause_forever_failing_can_be_cancelled(loop, run):
    backoff = bo.asyncbackoff(None, None, 0, FlakyError)

    @backoff
    async def fail():
        raise FlakyError()

    async def main():
        task = asyncio.ensure_future(fail())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    s = stats(backoff)
    assert s["attempts"] == s["done"] > 16


class _OnlyAttempts(Statistic):
    """A Statistic that counts attempts and nothing else."""
    attempts: int


class _NoFields:
    """Not a Statistic at all: every counter is missing."""

    def __init__(self, name=None):
        self.name = name


@pytest.mark.parametrize(
    "statistic_class, missing",
    [(_OnlyAttempts, "sum_time"), (_NoFields, "attempts")],
)
@pytest.mark.parametrize("driver", ["await", "task"])
def test_statistic_class_without_counters(loop, run, statistic_class, missing, driver):
    """A failing attempt whose counting fails: the counter's AttributeError
    is raised (as `stat.<field> += 1` raises it), never lost or crashing;
    an attempt error in flight becomes its __context__."""
    @bo.asyncbackoff(1, 2, max_tries=2, statistic_class=statistic_class)
    async def fail():
        raise FlakyError("attempt")

    async def main():
        if driver == "task":
            return await asyncio.ensure_future(fail())
        return await fail()

    with pytest.raises(AttributeError) as info:
        run(main())
    assert str(info.value) == (
        f"'{statistic_class.__name__}' object has no attribute '{missing}'"
    )
    if missing == "sum_time":
        assert isinstance(info.value.__context__, FlakyError)


def _raise_stop_iteration():
    return next(iter([]))


@pytest.mark.parametrize("timeouts", [(1, 2), (None, None)])
@pytest.mark.parametrize("driver", ["await", "task"])
def test_stop_iteration_becomes_runtime_error(loop, run, timeouts, driver):
    """The function raises StopIteration instead of returning an awaitable:
    it leaves the call as PEP 479's RuntimeError, so the task finishes."""
    attempt_timeout, deadline = timeouts

    async def main():
        awaitable = bo.Backoff(
            attempt_timeout=attempt_timeout, deadline=deadline,
        ).execute(_raise_stop_iteration)
        if driver == "task":
            awaitable = asyncio.ensure_future(awaitable)
        return await asyncio.wait_for(awaitable, 30)

    with pytest.raises(RuntimeError) as info:
        run(main())
    assert str(info.value) == "coroutine raised StopIteration"
    assert type(info.value.__cause__) is StopIteration


@pytest.mark.parametrize("kind, name", [
    ("decorated", "{qualname}"),
    ("timeout", "{qualname}"),
    ("execute", "Backoff.execute"),
    ("execution", "BackoffExecution.execute"),
    ("execution-call", "BackoffExecution.__call__"),
])
def test_never_awaited_call_warns(implementation, kind, name):
    """A call that is made and dropped unawaited warns like the coroutine it
    stands for (the twin's coroutine has the same name)."""
    import warnings

    async def work():
        return 1

    backoff = bo.Backoff(attempt_timeout=1, deadline=2)
    start = {
        "decorated": lambda: bo.asyncbackoff(1, 2)(work)(),
        "timeout": lambda: timeout_module.timeout(1)(work)(),
        "execute": lambda: backoff.execute(work),
        "execution": lambda: backoff.prepare(work).execute(),
        "execution-call": lambda: backoff.prepare(work)(),
    }[kind]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start()
        gc.collect()
        # awaited, closed or started ones never warn
        call = start()
        call.close()
        del call
        gc.collect()
    messages = [
        str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
    ]
    expected = name.format(qualname=work.__qualname__)
    assert messages == [f"coroutine '{expected}' was never awaited"]
