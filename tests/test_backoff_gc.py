"""Timed calls (timeout, asyncbackoff, breaker.call_async around them) that
are dropped mid-flight and collected by the cyclic GC, over both twins and
both loops.

The C twin's per-loop timer queue borrows its calls: whatever way a call
goes (finished, closed, finalized by the collector, cleared with its task
and loop in one garbage cycle), it must leave the heap first.  These cases
drop many armed calls (in an attempt and in a pause) together with their
tasks and loops, with the collector running as often as it can, then check
that the loops are freed and that timers still work on a new loop (a
stale heap entry would crash there or fire at the wrong call)."""
import asyncio
import contextlib
import gc
import importlib
import sys
import warnings
import weakref

import pytest

import aiomisc_c

bo = importlib.import_module("aiomisc_c.backoff")
timeout_module = importlib.import_module("aiomisc_c.timeout")


class Flaky(Exception):
    pass


@contextlib.contextmanager
def _collecting_quietly():
    """The collector as often as it can, and what the dropped objects say
    as they go (warnings; errors of finalizers on a closed loop) kept as
    text only: holding the exceptions would keep their frames, and so the
    loops, alive."""
    threshold = gc.get_threshold()
    unraisable = []
    previous_hook = sys.unraisablehook

    def hook(info):
        unraisable.append(f"{type(info.exc_value).__name__}: {info.exc_value}")

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.set_threshold(1, 1, 1)
            yield unraisable
            gc.set_threshold(*threshold)
            gc.collect()
    finally:
        gc.set_threshold(*threshold)
        sys.unraisablehook = previous_hook


def _timed_functions():
    # looked up at call time: the implementation fixture rebinds them
    async def sleeper(delay):
        await asyncio.sleep(delay)
        return delay

    async def failing(delay):
        await asyncio.sleep(delay)
        raise Flaky

    breaker = aiomisc_c.CircuitBreaker(error_ratio=0.5, response_time=5)
    in_attempt = timeout_module.timeout(30)(sleeper)
    in_pause = bo.asyncbackoff(30, 60, pause=30, exceptions=(Flaky,))(failing)
    short = bo.asyncbackoff(0.001, 30, pause=0.001,
                            exceptions=(Flaky,))(sleeper)

    async def through_breaker(delay):
        return await breaker.call_async(in_attempt, delay)

    return [in_attempt, in_pause, short, through_breaker]


async def _start_and_abandon(funcs, started):
    """Start timed calls in tasks and leave them all pending (armed)."""
    tasks = []
    for i in range(40):
        func = funcs[i % len(funcs)]
        delay = 0 if func is funcs[1] else 3600
        tasks.append(asyncio.ensure_future(func(delay)))
    # let every call start its attempt (and the failing ones their pause)
    for _ in range(5):
        await asyncio.sleep(0)
    started.append(len(tasks))
    return tasks


def _drop_loop(policy, close):
    """A loop with 40 armed timed calls, dropped (closed or not) with its
    tasks; returns a weak reference to it."""
    event_loop = policy.new_event_loop()
    event_loop.set_exception_handler(lambda loop, context: None)
    funcs = _timed_functions()
    started = []
    tasks = event_loop.run_until_complete(
        _start_and_abandon(funcs, started),
    )
    assert started == [40]
    assert not any(task.done() for task in tasks)
    if close:
        event_loop.close()
    ref = weakref.ref(event_loop)
    del event_loop, tasks, funcs
    return ref


def _check_dropped(implementation, policy, close):
    refs = []
    with _collecting_quietly() as unraisable:
        for _ in range(3):
            refs.append(_drop_loop(policy, close))
            gc.collect()
    assert [ref for ref in refs if ref() is not None] == []
    # a pause's future can not be cancelled on a closed loop; nothing else
    assert set(unraisable) <= {"RuntimeError: Event loop is closed"}
    _check_timers_fire(implementation, policy)


def test_armed_calls_dropped_with_their_closed_loop(implementation, policy):
    _check_dropped(implementation, policy, close=True)


def test_armed_calls_dropped_with_their_open_loop(implementation):
    """The loop, its tasks, their calls and the timer queue in one garbage
    cycle.  (asyncio's loop only: an open uvloop loop with armed timers is
    never collected, whoever armed them.)"""
    _check_dropped(implementation, asyncio.DefaultEventLoopPolicy(),
                   close=False)


def _check_timers_fire(implementation, policy):
    """Timers on a new loop still fire at the right call."""
    event_loop = policy.new_event_loop()
    try:
        @timeout_module.timeout(0.05)
        async def slow():
            await asyncio.sleep(3600)

        @timeout_module.timeout(30)
        async def quick():
            await asyncio.sleep(0)
            return "done"

        async def main():
            results = await asyncio.gather(
                slow(), quick(), slow(), return_exceptions=True,
            )
            return [type(r).__name__ if isinstance(r, BaseException) else r
                    for r in results]

        assert event_loop.run_until_complete(main()) == [
            "TimeoutError", "done", "TimeoutError",
        ]
        if implementation == "c":
            from aiomisc_c import _backoff
            assert _backoff._pending_timers(event_loop) == 0
    finally:
        event_loop.close()


def test_call_dropped_between_steps_under_gc_pressure(implementation, policy):
    """Calls stepped by hand, armed, and dropped while the collector runs at
    every allocation: each leaves its loop's heap, which stays usable."""
    event_loop = policy.new_event_loop()

    async def body():
        await asyncio.sleep(3600)

    async def main():
        wrapped = [
            timeout_module.timeout(0.01)(body),
            bo.asyncbackoff(0.01, None)(body),
            bo.asyncbackoff(0.01, 1, pause=0.01, exceptions=(Flaky,))(body),
        ]
        with _collecting_quietly() as unraisable:
            for i in range(60):
                call = wrapped[i % 3]()
                call.send(None)      # armed for this task
                if i % 2:
                    call.close()
                del call
        assert unraisable == []
        # ordered after every dropped call's timer on the loop's clock
        await asyncio.sleep(0.1)
        # no dropped call's timer cancelled this task (3.11+ can tell)
        cancelling = getattr(asyncio.current_task(), "cancelling", None)
        return cancelling() if cancelling is not None else 0

    try:
        assert event_loop.run_until_complete(main()) == 0
        if implementation == "c":
            from aiomisc_c import _backoff
            assert _backoff._pending_timers(event_loop) == 0
    finally:
        event_loop.close()
