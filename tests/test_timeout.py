"""The ``timeout`` decorator, over both twins and both loops."""
import asyncio
import importlib
import functools
import inspect
import os
import sys
import time
from unittest import mock

import pytest

# the package attribute "timeout" is the decorator (as in aiomisc); the
# module is reached through importlib
timeout_module = importlib.import_module("aiomisc_c.timeout")

HAS_UNCANCEL = sys.version_info >= (3, 11)


def timeout(value):
    # read at call time: the implementation fixture rebinds the module name
    return timeout_module.timeout(value)


# --- behaviours aiomisc 17 guarantees ---------------------------------------


def test_zero_timeout(loop, run):
    func = mock.AsyncMock(return_value=1)

    @timeout(0)
    async def sleeper():
        await asyncio.sleep(1)

    with pytest.raises(asyncio.TimeoutError):
        run(sleeper())
    # as wait_for(coro, 0): the coroutine is created, never run
    with pytest.raises(asyncio.TimeoutError):
        run(timeout(0)(func)())
    assert func.call_count == 1 and func.await_count == 0


def test_outer_cancel_is_not_a_timeout(loop, run):
    started = asyncio.Event()

    @timeout(0.5)
    async def sleeper():
        started.set()
        await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(sleeper())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_plain_function_is_rejected(implementation):
    with pytest.raises(TypeError, match="Function is not a coroutine function"):
        @timeout(0)
        def func():
            pass


# --- further semantics ------------------------------------------------------


def test_result_and_exceptions_pass_through(loop, run):
    @timeout(1)
    async def echo(value, *, fail=False):
        await asyncio.sleep(0)
        if fail:
            raise KeyError(value)
        return value

    assert run(echo(5)) == 5
    with pytest.raises(KeyError):
        run(echo(5, fail=True))


def test_timeout_fires(loop, run):
    @timeout(0.05)
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.TimeoutError) as info:
            await sleeper()
        assert isinstance(info.value.__cause__, asyncio.CancelledError)
        if HAS_UNCANCEL:
            assert asyncio.current_task().cancelling() == 0
        return asyncio.get_running_loop().time() - started

    assert run(main()) < 5


def test_none_means_no_limit(loop, run):
    @timeout(None)
    async def func():
        await asyncio.sleep(0.01)
        return 1

    assert run(func()) == 1


def test_bad_values(implementation):
    with pytest.raises(TypeError):
        timeout("1")
    with pytest.raises(ValueError):
        timeout(float("nan"))


@pytest.mark.skipif(not HAS_UNCANCEL, reason="needs Task.uncancel (3.11+)")
def test_external_cancel_wins_over_the_timer(loop, run):
    @timeout(0.05)
    async def func():
        task = asyncio.current_task()
        asyncio.get_running_loop().call_soon(task.cancel)
        time.sleep(0.1)          # the timer is due as well now
        await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(func())
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


@pytest.mark.skipif(not HAS_UNCANCEL, reason="needs asyncio.timeout (3.11+)")
def test_inside_asyncio_timeout(loop, run):
    @timeout(5)
    async def slow():
        await asyncio.sleep(10)

    @timeout(0.05)
    async def fast_fail():
        await asyncio.sleep(10)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.05):
                await slow()           # the outer timeout fires
        async with asyncio.timeout(5):
            with pytest.raises(asyncio.TimeoutError):
                await fast_fail()      # the inner timeout fires
        return asyncio.current_task().cancelling()

    assert run(main()) == 0


def test_swallowed_cancellation_returns_the_result(loop, run):
    @timeout(0.05)
    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "kept"

    async def main():
        result = await stubborn()
        cancelling = asyncio.current_task().cancelling() if HAS_UNCANCEL else 0
        return result, cancelling

    assert run(main()) == ("kept", 0)


def test_metadata_and_detection(implementation):
    async def func(a, b=1):
        """Doc."""
        return a

    wrapped = timeout(1)(func)
    assert wrapped.__name__ == "func" and wrapped.__doc__ == "Doc."
    assert wrapped.__wrapped__ is func
    assert asyncio.iscoroutinefunction(wrapped)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(func)

    @functools.wraps(wrapped)
    def sync():
        pass

    assert not inspect.iscoroutinefunction(sync)


def test_methods(loop, run):
    class Thing:
        @timeout(1)
        async def method(self, x):
            return self, x

    thing = Thing()
    assert run(thing.method(1)) == (thing, 1)


def test_no_timer_left_behind(loop, run):
    @timeout(5)
    async def func(i):
        return i

    async def main():
        for i in range(50):
            assert await func(i) == i

    run(main())
    from test_backoff import await_timers_gone
    await_timers_gone(loop)


def test_short_timer_while_a_long_one_is_armed(loop, run):
    @timeout(30)
    async def long_sleeper():
        await asyncio.sleep(60)

    @timeout(0.05)
    async def short_sleeper():
        await asyncio.sleep(60)

    async def main():
        long_task = asyncio.ensure_future(long_sleeper())
        await asyncio.sleep(0.01)
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.TimeoutError):
            await short_sleeper()
        elapsed = asyncio.get_running_loop().time() - started
        long_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long_task
        return elapsed

    assert run(main()) < 10


def test_many_timers_fire_in_order(loop, run):
    finished = []

    def make(i):
        @timeout(0.02 * i)
        async def sleeper():
            await asyncio.sleep(60)

        async def runner():
            with pytest.raises(asyncio.TimeoutError):
                await sleeper()
            finished.append(i)

        return runner

    async def main():
        runners = [make(i)() for i in (5, 1, 4, 2, 3)]
        await asyncio.gather(*runners)

    run(main())
    assert finished == [1, 2, 3, 4, 5]


def test_closed_loops_are_not_kept_alive(implementation):
    import gc
    import weakref

    @timeout(30)
    async def func():
        return 1

    refs = []
    for _ in range(5):
        event_loop = asyncio.new_event_loop()
        assert event_loop.run_until_complete(func()) == 1
        event_loop.close()
        refs.append(weakref.ref(event_loop))
        del event_loop
    gc.collect()
    assert [r for r in refs if r() is not None] == []


@pytest.mark.parametrize("kind", ["timeout", "asyncbackoff"])
def test_dropped_call_leaves_its_task_alone(loop, run, kind):
    """A timed call stepped once by hand and dropped is gone: when its timer
    would have fired, the task (now awaiting something else) is not
    cancelled."""
    import gc

    from aiomisc_c import backoff as bo

    async def body():
        await asyncio.sleep(3600)

    if kind == "timeout":
        wrapped = timeout(0.01)(body)
    else:
        wrapped = bo.asyncbackoff(0.01, None)(body)

    async def main():
        call = wrapped()
        call.send(None)     # the attempt runs, its timer armed for this task
        del call
        gc.collect()
        # ordered after the dropped call's timer on the loop's clock
        await asyncio.sleep(0.2)
        task = asyncio.current_task()
        return task.cancelling() if HAS_UNCANCEL else 0

    assert run(main()) == 0


def _armed_loop_timers(loop):
    """How many real loop timers are armed (our calls' and anything else)."""
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is not None:
        return len([h for h in scheduled if not h.cancelled()])
    from aiomisc_c import _compat
    if _compat.implementation["backoff"] == "c":
        from aiomisc_c import _backoff
        return int(_backoff._loop_timer_armed(loop))
    pytest.skip("uvloop's timers cannot be listed")


@pytest.mark.parametrize("kind", ["timeout", "asyncbackoff"])
def test_finished_calls_leave_no_loop_timer(loop, kind):
    """Once the last timed call is over, no timer of ours stays armed on the
    loop (it would wake the loop at a stale time)."""
    from aiomisc_c import backoff as bo

    async def quick():
        return 1

    if kind == "timeout":
        wrapped = timeout(3600)(quick)
    else:
        wrapped = bo.asyncbackoff(3600, 7200)(quick)

    async def main():
        for _ in range(3):
            assert await wrapped() == 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return _armed_loop_timers(asyncio.get_running_loop())

    assert loop.run_until_complete(main()) == 0


@pytest.mark.parametrize("kind", ["timeout", "asyncbackoff", "asyncretry"])
def test_wrapped_function_runs_in_the_callers_task(loop, run, kind):
    """The wrapped function runs in the caller's task and context: a
    ContextVar it sets is seen by the caller afterwards (aiomisc 17 does the
    same on Python 3.12+, but isolates it on 3.10-3.11, where its
    asyncio.wait_for runs the coroutine in a task of its own)."""
    import contextvars

    from aiomisc_c import backoff as bo

    var = contextvars.ContextVar("var", default="unset")
    tasks = []

    async def setter():
        tasks.append(asyncio.current_task())
        var.set("set by the call")

    wrapped = {
        "timeout": lambda: timeout(10)(setter),
        "asyncbackoff": lambda: bo.asyncbackoff(10, 20)(setter),
        "asyncretry": lambda: bo.asyncretry(2)(setter),
    }[kind]()

    async def main():
        await wrapped()
        return var.get(), tasks == [asyncio.current_task()]

    assert run(main()) == ("set by the call", True)


def test_running_loop_is_the_callers_one(loop, run):
    """A timed call finds the running loop as asyncio.get_running_loop()
    does (the C twin reads it without a system call on 3.10/3.11): the
    current one in a thread running another loop, none once it stopped."""
    import threading

    @timeout(5)
    async def which_loop():
        return asyncio.get_running_loop()

    assert run(which_loop()) is loop
    seen = []

    def other_thread():
        other = asyncio.new_event_loop()
        try:
            seen.append((other.run_until_complete(which_loop()), other))
        finally:
            other.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen[0][0] is seen[0][1]
    assert run(which_loop()) is loop
    # no running loop: refused as asyncio refuses it
    call = which_loop()
    with pytest.raises(RuntimeError, match="no running event loop"):
        call.send(None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_sees_what_get_running_loop_sees(loop, run):
    """In a child fork()ed from a running loop, a timed call sees a running
    loop exactly when asyncio.get_running_loop() does (3.10/3.11 refuse the
    parent's loop there)."""
    import warnings

    @timeout(5)
    async def quick():
        return 1

    def outcome(step):
        try:
            step()
        except RuntimeError:
            return "refused"
        except StopIteration:
            return "ran"
        return "loop"

    async def main():
        assert await quick() == 1
        with warnings.catch_warnings():
            # 3.12+: forking a process that has threads is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            expected = outcome(asyncio.get_running_loop)
            got = outcome(lambda: quick().send(None))
            same = (expected, got) in (("refused", "refused"), ("loop", "ran"))
            os._exit(0 if same else 1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    assert run(main()) == 0
