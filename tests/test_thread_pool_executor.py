"""``ThreadPoolExecutor``'s public surface: submit, arguments, exceptions,
context, statistics, ``run_in_executor`` and the loop's futures; over both
twins and both loop kinds.

Every wait is on an event or a generous timeout; nothing asserts a tight
duration (2 noisy vCPUs).
"""

import asyncio
import concurrent.futures
import contextvars
import operator
import os
import threading
import time

import pytest
from helpers.thread_pool_cases import Gate, add, pool_threads, raise_, stats
from helpers.waiting import wait_event, wait_until, wait_until_sync

from aiomisc_c import thread_pool
from aiomisc_c._context_vars import EVENT_LOOP


# --------------------------------------------------------------------------
# the public executor


def test_public_name_is_bound_to_the_chosen_twin(implementation):
    expected = (
        thread_pool._CThreadPoolExecutor if implementation == "c"
        else thread_pool._PyThreadPoolExecutor
    )
    assert thread_pool.ThreadPoolExecutor is expected


def test_is_a_concurrent_futures_thread_pool(implementation):
    executor = thread_pool.ThreadPoolExecutor(2)
    try:
        assert isinstance(executor, concurrent.futures.ThreadPoolExecutor)
        assert isinstance(executor, concurrent.futures.Executor)
    finally:
        executor.shutdown(wait=True)
    cls = thread_pool.ThreadPoolExecutor
    assert cls.DEFAULT_POOL_SIZE == min(max(os.cpu_count() or 1, 4), 32)
    assert cls.SHUTDOWN_TIMEOUT == 10
    assert issubclass(thread_pool.ThreadPoolException, RuntimeError)


def test_submit_returns_a_future_of_the_running_loop(loop, pool, run):
    async def main():
        future = pool.submit(divmod, 7, 2)
        assert isinstance(future, asyncio.Future)
        assert future.get_loop() is loop
        assert await future == (3, 1)

        via_loop = loop.run_in_executor(pool, divmod, 9, 4)
        assert isinstance(via_loop, asyncio.Future)
        assert via_loop.get_loop() is loop
        assert await via_loop == (2, 1)

        assert await pool.submit(lambda a, *, b: a + b, 1, b=2) == 3
        # asyncio's own helper goes through the default executor: our pool
        assert await asyncio.to_thread(operator.mul, 6, 7) == 42

    run(main())


def test_submit_without_a_running_loop_uses_the_current_loop(loop, pool):
    future = pool.submit(operator.add, 1, 2)
    assert future.get_loop() is loop
    assert loop.run_until_complete(asyncio.wait_for(future, 30)) == 3


@pytest.mark.parametrize("fn", [None, 42, "not callable"])
def test_submit_not_callable(loop, pool, pool_name, run, fn):
    async def main():
        with pytest.raises(ValueError, match="^First argument must be callable$"):
            pool.submit(fn)

    run(main())
    assert stats(pool_name)["submitted"] == 0


@pytest.mark.parametrize("max_workers", [0, -1])
def test_bad_max_workers_value(implementation, max_workers):
    with pytest.raises(ValueError, match="max_workers"):
        thread_pool.ThreadPoolExecutor(max_workers)


@pytest.mark.parametrize("max_workers", ["x", 1.5, True])
def test_bad_max_workers_type(implementation, max_workers):
    with pytest.raises(TypeError, match="max_workers"):
        thread_pool.ThreadPoolExecutor(max_workers)


# --------------------------------------------------------------------------
# exceptions


def test_stop_iteration_arrives_as_runtime_error(loop, pool, pool_name, run):
    def stop():
        raise StopIteration("inner")

    async def main():
        with pytest.raises(RuntimeError, match="StopIteration raised in a worker") as info:
            await pool.submit(stop)
        assert isinstance(info.value.__cause__, StopIteration)

        with pytest.raises(RuntimeError, match="StopIteration raised in a worker"):
            await pool.submit(next, iter(()))
        # the worker survived
        assert await pool.submit(operator.add, 1, 2) == 3

    run(main())
    counters = stats(pool_name)
    assert (counters["done"], counters["error"], counters["success"]) == (3, 2, 1)


class CustomBaseException(BaseException):
    pass


@pytest.mark.parametrize(
    "exc_type",
    [KeyboardInterrupt, SystemExit, GeneratorExit, CustomBaseException, ValueError],
)
def test_exceptions_propagate_unchanged(loop, pool, pool_name, run, exc_type):
    exc = exc_type("from the worker")

    async def main():
        caught = None
        try:
            await pool.submit(raise_, exc)
        except BaseException as e:  # noqa: BLE001 - the point of the test
            caught = e
        assert caught is exc
        # the worker keeps running after any exception
        assert await pool.submit(operator.add, 2, 3) == 5

        caught = None
        try:
            await thread_pool.threaded(raise_)(exc)
        except BaseException as e:  # noqa: BLE001
            caught = e
        assert caught is exc

    # Not through run(): from 3.13 on, a GeneratorExit crossing the
    # asyncio.wait_for that run() adds is replaced by a fresh one.
    loop.run_until_complete(main())
    counters = stats(pool_name)
    assert (counters["done"], counters["error"], counters["success"]) == (3, 2, 1)


# --------------------------------------------------------------------------
# context


VAR = contextvars.ContextVar("VAR", default="unset")


@pytest.mark.parametrize("pool_size", [1])
def test_context_copied_at_submit_and_never_written_back(loop, pool, run):
    gate = Gate()

    def read_after_gate():
        gate()
        return VAR.get()

    def write():
        VAR.set("worker")
        return VAR.get()

    async def main():
        VAR.set("before")
        future = pool.submit(read_after_gate)
        VAR.set("after-submit")
        gate.release.set()
        assert await future == "before"

        assert await pool.submit(write) == "worker"
        assert VAR.get() == "after-submit"
        # same worker thread, next item: a fresh copy of the submitter's context
        assert await pool.submit(VAR.get) == "after-submit"

    run(main())
    assert VAR.get() == "unset"


def test_event_loop_visible_in_workers(loop, pool, run):
    async def main():
        before = EVENT_LOOP.context_var.get(None)
        assert await pool.submit(EVENT_LOOP.get) is loop
        assert await thread_pool.threaded(EVENT_LOOP.get)() is loop
        assert EVENT_LOOP.context_var.get(None) is before

    run(main())


def test_event_loop_in_workers_is_the_submitting_loop(loop, pool, run):
    other = asyncio.new_event_loop()
    mine = object()

    def sets_its_own():
        EVENT_LOOP.set(mine)
        return EVENT_LOOP.get()

    def in_a_nested_copy():
        return contextvars.copy_context().run(EVENT_LOOP.get)

    async def main():
        # the submitter's context names another loop: the item still sees
        # the loop that submitted it
        EVENT_LOOP.set(other)
        assert await pool.submit(EVENT_LOOP.get) is loop
        assert await thread_pool.threaded(EVENT_LOOP.get)() is loop
        # a value the item sets itself wins, and stays in its context
        assert await pool.submit(sets_its_own) is mine
        assert await pool.submit(in_a_nested_copy) is loop
        assert EVENT_LOOP.get() is other

    try:
        run(main())
    finally:
        other.close()


# --------------------------------------------------------------------------
# statistics


def test_statistics_are_exact(loop, pool, pool_name, run):
    def fail():
        raise ValueError("counted")

    async def main():
        for i in range(10):
            assert await pool.submit(operator.neg, i) == -i
        for _ in range(3):
            with pytest.raises(ValueError):
                await pool.submit(fail)
        await asyncio.gather(*(pool.submit(time.sleep, 0.05) for _ in range(4)))
        await wait_until(lambda: stats(pool_name)["done"] == 17, message="done")

    run(main())
    counters = stats(pool_name)
    assert set(counters) == {
        "threads", "done", "error", "success", "submitted", "sum_time",
    }
    assert counters["submitted"] == 17
    assert counters["done"] == 17
    assert counters["success"] == 14
    assert counters["error"] == 3
    assert isinstance(counters["sum_time"], float)
    assert counters["sum_time"] >= 0.18      # four sleeps of 0.05 s
    spawned = len(pool_threads(pool_name))
    wait_until_sync(lambda: stats(pool_name)["threads"] == spawned, message="threads")


def test_statistic_class(implementation):
    stat = thread_pool.ThreadPoolStatistic("some-name")
    assert stat.__metrics__ == frozenset(
        {"threads", "done", "error", "success", "submitted", "sum_time"},
    )
    assert stat.name == "some-name"
    assert stat.threads == 0 and stat.sum_time == 0.0


# --------------------------------------------------------------------------
# run_in_executor


def test_run_in_executor_inside_a_loop_starts_now(loop, pool, run):
    started = threading.Event()

    def work(a, b):
        started.set()
        return a + b

    async def main():
        future = thread_pool.run_in_executor(work, args=(1,), kwargs={"b": 2})
        assert asyncio.isfuture(future)
        await wait_event(started)
        assert await future == 3
        assert await thread_pool.run_in_executor(add, pool, (5,)) == 5

    run(main())


def test_run_in_executor_outside_a_loop_is_lazy(loop, pool):
    started = threading.Event()

    def work(a, b):
        started.set()
        return a * b

    awaitable = thread_pool.run_in_executor(work, args=(6,), kwargs={"b": 7})
    assert asyncio.iscoroutine(awaitable)
    assert not started.wait(0.1)
    assert loop.run_until_complete(asyncio.wait_for(awaitable, 30)) == 42


def test_run_in_executor_with_a_foreign_executor(loop, pool, run):
    foreign = concurrent.futures.ThreadPoolExecutor(2)

    def read():
        return VAR.get(), EVENT_LOOP.get()

    async def main():
        VAR.set("visible")
        value, event_loop = await thread_pool.run_in_executor(read, foreign)
        assert value == "visible"
        assert event_loop is loop
        assert await thread_pool.run_in_executor(add, foreign, (1, 2)) == 3

    try:
        run(main())
    finally:
        foreign.shutdown(wait=True)


# --------------------------------------------------------------------------
# futures are made by the loop's create_future (a fast path is only allowed
# for the stock create_future)


class CustomFuture(asyncio.Future):
    pass


class CustomFutureLoop(asyncio.SelectorEventLoop):
    def create_future(self):
        return CustomFuture(loop=self)


def test_futures_come_from_the_loops_create_future(implementation, pool_name):
    custom_loop = CustomFutureLoop()
    executor = thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name)
    custom_loop.set_default_executor(executor)
    try:
        async def main():
            future = executor.submit(operator.add, 1, 2)
            assert type(future) is CustomFuture
            assert await future == 3
            via_threaded = thread_pool.threaded(operator.add)(2, 2)
            assert isinstance(via_threaded, CustomFuture)
            assert await via_threaded == 4

        custom_loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        custom_loop.close()
        executor.shutdown(wait=True)


# --------------------------------------------------------------------------
# making the future: Python code that runs inside asyncio.Future(loop=...)


class _DebugHookLoop(asyncio.SelectorEventLoop):
    """asyncio's loop (its stock create_future) whose get_debug(), which
    Future.__init__ calls, runs ``hook`` once."""

    hook = None

    def get_debug(self):
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return super().get_debug()


def test_a_submit_from_inside_future_creation(implementation):
    loop = _DebugHookLoop()
    nested = []
    try:
        with thread_pool.ThreadPoolExecutor(2) as pool:
            async def main():
                # set up the pool's channel to the loop first (watching a
                # descriptor calls get_debug() too)
                assert await pool.submit(add, 0, 0) == 0
                # the next future's __init__ submits again: both futures
                # belong to the loop and both calls run
                loop.hook = lambda: nested.append(pool.submit(add, 2, 3))
                outer = pool.submit(add, 1, 1)
                assert len(nested) == 1
                assert outer.get_loop() is loop
                assert nested[0].get_loop() is loop
                return await outer, await nested[0], await pool.submit(
                    add, 4, 4,
                )

            assert loop.run_until_complete(main()) == (2, 5, 8)
    finally:
        loop.close()


def test_a_failing_future_creation_queues_nothing(implementation):
    loop = _DebugHookLoop()
    calls = []

    def refuse():
        raise LookupError("no debug flag today")

    try:
        with thread_pool.ThreadPoolExecutor(2) as pool:
            async def main():
                assert await pool.submit(add, 0, 0) == 0
                loop.hook = refuse
                with pytest.raises(LookupError, match="no debug flag"):
                    pool.submit(calls.append, "never")
                # the next future is made as usual
                assert await pool.submit(add, 1, 2) == 3

            loop.run_until_complete(main())
        assert calls == []
    finally:
        loop.close()
