"""``ThreadPoolExecutor`` and its core, over both twins and both loop kinds.

Every wait is on an event or a generous timeout; nothing asserts a tight
duration (2 noisy vCPUs).
"""
import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import operator
import os
import random
import signal
import threading
import time
import weakref

import pytest
from helpers.waiting import wait_event, wait_until, wait_until_sync

from aiomisc_c import thread_pool
from aiomisc_c._context_vars import EVENT_LOOP
from aiomisc_c.counters import get_statistics

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


# --------------------------------------------------------------------------
# helpers


def stats(name):
    """Counters of the live ``ThreadPoolStatistic`` named ``name``."""
    return {
        result.metric: result.value
        for result in get_statistics(thread_pool.ThreadPoolStatistic)
        if result.name == name
    }


def pool_threads(name):
    suffix = f" from pool {name}"
    return [t for t in threading.enumerate() if t.name.endswith(suffix)]


def new_loop(loop_kind):
    if loop_kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Gate:
    """Holds a worker inside an item until released."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, result="gate"):
        self.started.set()
        if not self.release.wait(30):
            raise AssertionError("gate never released")
        return result


def raise_(exc):
    raise exc


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


def test_submit_after_shutdown(loop, pool, run):
    pool.shutdown(wait=True)

    async def main():
        with pytest.raises(RuntimeError, match="^Pool is shutdown$"):
            pool.submit(print)

    run(main())
    with pytest.raises(RuntimeError, match="^Pool is shutdown$"):
        pool.submit(print)


def test_shutdown_is_idempotent_and_joins_threads(loop, pool, pool_name, run):
    async def main():
        assert await pool.submit(operator.neg, 1) == -1

    run(main())
    wait_until_sync(lambda: stats(pool_name)["threads"] == 2, message="2 threads")
    pool.shutdown(wait=True)
    pool.shutdown(wait=True)
    pool.shutdown(wait=False)
    wait_until_sync(lambda: not pool_threads(pool_name), message="threads exit")
    assert stats(pool_name)["threads"] == 0


@pytest.mark.parametrize("pool_size", [1])
@pytest.mark.parametrize(
    "from_thread", [False, True], ids=["from-loop-thread", "from-other-thread"],
)
def test_shutdown_nowait_resolves_every_queued_future(
    loop, pool, pool_name, run, loop_errors, from_thread,
):
    gate = Gate()
    ran = []

    async def main():
        blocked = pool.submit(gate, "finished")
        await wait_event(gate.started)
        queued = [pool.submit(ran.append, i) for i in range(10_000)]

        if from_thread:
            closer = threading.Thread(target=pool.shutdown, kwargs={"wait": False})
            closer.start()
            closer.join(30)
            assert not closer.is_alive(), "shutdown(wait=False) blocked"
        else:
            pool.shutdown(wait=False)
        with pytest.raises(RuntimeError, match="^Pool is shutdown$"):
            pool.submit(print)

        # like aiomisc, the running call's future fails at once too
        with pytest.raises(thread_pool.ThreadPoolException, match="^Pool closed$"):
            await asyncio.wait_for(blocked, 30)
        gate.release.set()
        results = await asyncio.wait_for(
            asyncio.gather(*queued, return_exceptions=True), 60,
        )
        return results

    results = run(main())
    assert ran == []
    assert len(results) == 10_000
    assert all(type(r) is thread_pool.ThreadPoolException for r in results)
    assert {str(r) for r in results} == {"Pool closed"}
    assert all(isinstance(r, RuntimeError) for r in results)

    # the running call finishes after its future failed (result dropped)
    wait_until_sync(lambda: not pool_threads(pool_name), message="threads exit")
    counters = stats(pool_name)
    assert counters["submitted"] == 10_001
    assert counters["done"] == 1
    assert counters["success"] == 1
    assert counters["error"] == 0


@pytest.mark.parametrize("pool_size", [1])
def test_futures_failed_by_the_caller_are_skipped(
    loop, pool, pool_name, run, loop_errors,
):
    gate = Gate()
    ran = []

    async def main():
        blocked = pool.submit(gate)
        await wait_event(gate.started)
        futures = [pool.submit(ran.append, i) for i in range(5)]
        futures[1].set_exception(ValueError("failed by the caller"))
        futures[3].cancel()
        futures[4].set_result("set by the caller")
        gate.release.set()

        assert await blocked == "gate"
        assert await futures[0] is None
        assert await futures[2] is None
        with pytest.raises(ValueError, match="failed by the caller"):
            await futures[1]
        assert futures[3].cancelled()
        assert await futures[4] == "set by the caller"
        # the pool keeps working
        assert await pool.submit(operator.add, 2, 2) == 4

    run(main())
    assert ran == [0, 2]
    counters = stats(pool_name)
    assert counters["submitted"] == 7
    assert counters["done"] == 4
    assert counters["success"] == 4


def test_done_future_is_garbage_collected(loop, pool, run):
    collected = threading.Event()

    async def main():
        future = pool.submit(time.sleep, 0.2)
        weakref.finalize(future, collected.set)
        await future
        del future
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()

    run(main())
    assert collected.is_set(), "the pool kept a reference to a done future"


@pytest.mark.parametrize("pool_size", [1])
def test_cancelled_queued_future_is_released(loop, pool, pool_name, run):
    gate = Gate()
    collected = threading.Event()
    ran = []

    async def main():
        blocked = pool.submit(gate)
        await wait_event(gate.started)
        future = pool.submit(ran.append, 1)
        weakref.finalize(future, collected.set)
        future.cancel()
        del future
        gate.release.set()
        await blocked
        # the worker reaches the cancelled item and must drop it
        assert await pool.submit(operator.truth, 1) is True

        def released():
            gc.collect()
            return collected.is_set()

        await wait_until(released, message="the cancelled future to be freed")

    run(main())
    assert ran == []
    assert stats(pool_name)["done"] == 2


# --------------------------------------------------------------------------
# cancellation of the awaiting task


@pytest.mark.parametrize("pool_size", [1])
@pytest.mark.parametrize("outcome", ["result", "exception"])
def test_cancel_before_the_work_runs(loop, pool, pool_name, run, loop_errors, outcome):
    gate = Gate()
    ran = []

    def work():
        ran.append(1)
        if outcome == "exception":
            raise ValueError("never")
        return "never"

    async def main():
        blocked = pool.submit(gate)
        await wait_event(gate.started)

        async def awaiter():
            return await pool.submit(work)

        task = asyncio.ensure_future(awaiter())
        await asyncio.sleep(0)      # the task has submitted and waits
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.release.set()
        await blocked
        assert await pool.submit(operator.not_, 0) is True

    run(main())
    assert ran == []
    counters = stats(pool_name)
    assert counters["submitted"] == 3
    assert counters["done"] == 2


@pytest.mark.parametrize("pool_size", [1])
@pytest.mark.parametrize("outcome", ["result", "exception"])
def test_cancel_while_the_work_runs(loop, pool, pool_name, run, loop_errors, outcome):
    gate = Gate()

    def work():
        gate()
        if outcome == "exception":
            raise ValueError("late")
        return "late"

    async def main():
        future = pool.submit(work)

        async def awaiter():
            return await future

        waiter = asyncio.ensure_future(awaiter())
        await wait_event(gate.started)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release.set()
        # one worker: this item completes after the cancelled one
        assert await pool.submit(operator.neg, 5) == -5
        for _ in range(5):
            await asyncio.sleep(0)

    run(main())
    counters = stats(pool_name)
    assert counters["done"] == 2
    if outcome == "exception":
        assert (counters["success"], counters["error"]) == (1, 1)
    else:
        assert (counters["success"], counters["error"]) == (2, 0)


def test_cancel_after_the_work_finished(loop, pool, run, loop_errors):
    async def main():
        future = pool.submit(operator.add, 1, 1)
        task = asyncio.ensure_future(future)
        assert await task == 2
        assert not task.cancel()
        assert not future.cancel()
        assert future.result() == 2

        failing = pool.submit(raise_, ValueError("kept"))
        await asyncio.wait([failing])
        assert not failing.cancel()
        assert isinstance(failing.exception(), ValueError)

    run(main())


# --------------------------------------------------------------------------
# loop closed while work is in flight


def test_loop_closed_while_work_in_flight(implementation, loop_kind, pool_name, caplog):
    caplog.set_level(logging.WARNING)
    executor = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    gate = Gate()
    first_loop = new_loop(loop_kind)
    try:
        async def submit_two():
            running = executor.submit(gate, "dropped")
            queued = executor.submit(operator.add, 1, 2)
            return running, queued

        running, _queued = first_loop.run_until_complete(submit_two())
        assert gate.started.wait(10)
    finally:
        first_loop.close()
    gate.release.set()

    # both deliveries fail (closed loop); the worker must survive them
    wait_until_sync(
        lambda: stats(pool_name)["done"] >= 1,
        message="the running item to finish",
    )
    assert not running.done()

    second_loop = new_loop(loop_kind)
    try:
        async def use_again():
            return await asyncio.wait_for(executor.submit(operator.mul, 3, 4), 30)

        assert second_loop.run_until_complete(use_again()) == 12
    finally:
        second_loop.close()
        executor.shutdown(wait=True)

    assert stats(pool_name)["error"] == 0
    for record in caplog.records:
        assert record.levelno < logging.ERROR, record.getMessage()
    warnings_logged = [
        r for r in caplog.records if r.name == "aiomisc_c.thread_pool"
    ]
    assert all(r.levelno == logging.WARNING for r in warnings_logged)


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
# load


@pytest.mark.slow
def test_200k_threaded_calls_none_lost(loop, pool, pool_name, run):
    tasks, per_task, chunk = 8, 25_000, 1_000

    def work(value):
        if value % 1000 == 999:
            raise ValueError(value)
        return value

    threaded_work = thread_pool.threaded(work)

    async def producer(task_id):
        total = errors = 0
        base = task_id * per_task
        for start in range(base, base + per_task, chunk):
            results = await asyncio.gather(
                *(threaded_work(v) for v in range(start, start + chunk)),
                return_exceptions=True,
            )
            for value, result in zip(range(start, start + chunk), results):
                if isinstance(result, ValueError):
                    assert result.args == (value,)
                    errors += 1
                else:
                    assert result == value
                    total += result
        return total, errors

    async def main():
        return await asyncio.gather(*(producer(t) for t in range(tasks)))

    results = run(main(), timeout=240)
    calls = tasks * per_task
    expected_errors = calls // 1000
    assert sum(errors for _, errors in results) == expected_errors
    assert sum(total for total, _ in results) == (
        sum(range(calls)) - sum(v for v in range(calls) if v % 1000 == 999)
    )
    counters = stats(pool_name)
    assert counters["submitted"] == calls
    assert counters["done"] == calls
    assert counters["success"] == calls - expected_errors
    assert counters["error"] == expected_errors


def test_several_loops_in_several_threads_share_one_pool(
    implementation, loop_kind, pool_name,
):
    executor = thread_pool.ThreadPoolExecutor(4, statistic_name=pool_name)
    threads, per_thread = 4, 2_000
    failures = []

    def loop_thread(thread_id):
        own_loop = new_loop(loop_kind)
        try:
            async def main():
                futures = [
                    executor.submit(lambda i: (i, EVENT_LOOP.get()), i)
                    for i in range(per_thread)
                ]
                assert all(f.get_loop() is own_loop for f in futures)
                results = await asyncio.wait_for(asyncio.gather(*futures), 60)
                assert [i for i, _ in results] == list(range(per_thread))
                assert all(lp is own_loop for _, lp in results)

            own_loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001
            failures.append((thread_id, e))
        finally:
            own_loop.close()

    workers = [
        threading.Thread(target=loop_thread, args=(i,)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    try:
        assert not any(w.is_alive() for w in workers), "a loop thread hung"
        assert failures == []
        counters = stats(pool_name)
        total = threads * per_thread
        assert counters["submitted"] == total
        assert counters["done"] == total
        assert counters["success"] == total
    finally:
        executor.shutdown(wait=True)


@pytest.mark.parametrize("pool_size", [2])
def test_no_lost_wakeups_with_idle_gaps(loop, pool, run):
    rnd = random.Random(1234)

    async def main():
        for i in range(1_000):
            gap = rnd.choice((0, 0, 0.00005, 0.0002, 0.001))
            if gap:
                time.sleep(gap)  # noqa: ASYNC251 - let workers go idle
            assert await asyncio.wait_for(pool.submit(operator.neg, i), 10) == -i

    run(main())


def test_completions_are_batched(loop, loop_kind, pool, pool_name, run):
    """One ``call_soon_threadsafe`` per batch of completions, never one per
    item: while the loop thread is busy, later completions join the batch
    already scheduled."""
    if loop_kind != "asyncio":
        pytest.skip("uvloop's call_soon_threadsafe cannot be wrapped")
    calls = []
    original = loop.call_soon_threadsafe

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counting
    try:
        async def main():
            futures = [pool.submit(operator.neg, i) for i in range(1_000)]
            # keep the loop thread busy until every item has completed
            wait_until_sync(lambda: stats(pool_name)["done"] == 1_000, timeout=60)
            assert await asyncio.gather(*futures) == [-i for i in range(1_000)]

        run(main())
    finally:
        del loop.call_soon_threadsafe
    assert 1 <= len(calls) <= 4, f"{len(calls)} call_soon_threadsafe for 1000 items"


# --------------------------------------------------------------------------
# growth, names, threads


def test_lazy_growth_doubles_up_to_max_workers(implementation, loop_kind, pool_name):
    executor = thread_pool.ThreadPoolExecutor(5, statistic_name=pool_name)
    event_loop = new_loop(loop_kind)
    barrier = threading.Barrier(5, timeout=30)
    release = threading.Event()
    passed = []

    def block(index):
        if index < 5:
            barrier.wait()      # all five run concurrently, or this breaks
            passed.append(index)
        assert release.wait(30)
        return index

    try:
        assert pool_threads(pool_name) == []   # workers start on first use
        counts = []

        async def main():
            futures = []
            for index in range(7):
                futures.append(executor.submit(block, index))
                counts.append(len(pool_threads(pool_name)))
            await wait_until(lambda: len(passed) == 5 or barrier.broken,
                             timeout=40, message="five concurrent workers")
            assert not barrier.broken, "blocking items did not run concurrently"
            release.set()
            return await asyncio.wait_for(asyncio.gather(*futures), 60)

        assert event_loop.run_until_complete(main()) == list(range(7))
        assert counts[0] == 2
        assert counts[2] == 4
        assert counts[4] == 5
        assert counts[6] == 5
        assert counts == sorted(counts)
        assert set(counts) <= {2, 4, 5}

        threads = pool_threads(pool_name)
        assert sorted(t.name for t in threads) == [
            f"Thread {i} from pool {pool_name}" for i in range(5)
        ]
        assert all(t.daemon for t in threads)
        wait_until_sync(lambda: stats(pool_name)["threads"] == 5, message="threads")
    finally:
        release.set()
        event_loop.close()
        executor.shutdown(wait=True)
    wait_until_sync(lambda: not pool_threads(pool_name), message="threads exit")
    assert stats(pool_name)["threads"] == 0


def test_fresh_pool_starts_no_thread_until_the_first_call(
    implementation, loop_kind, pool_name,
):
    before = set(threading.enumerate())
    executor = thread_pool.ThreadPoolExecutor(4, statistic_name=pool_name)
    event_loop = new_loop(loop_kind)
    try:
        assert set(threading.enumerate()) - before == set()
        assert stats(pool_name)["threads"] == 0
        assert executor._core.spawned_threads == 0
        assert "threads=0/4" in repr(executor)

        async def main():
            # The default-executor path (uvloop calls submit itself).
            event_loop.set_default_executor(executor)
            first = await asyncio.wait_for(
                event_loop.run_in_executor(None, threading.current_thread), 30,
            )
            second = await asyncio.wait_for(executor.submit(operator.neg, 2), 30)
            return first, second

        worker, negated = event_loop.run_until_complete(main())
        assert negated == -2
        assert worker.name.endswith(f" from pool {pool_name}")
        started = set(threading.enumerate()) - before
        assert worker in started
        assert len(pool_threads(pool_name)) == 2
        wait_until_sync(lambda: stats(pool_name)["threads"] == 2, message="threads")
    finally:
        event_loop.close()
        executor.shutdown(wait=True)
    wait_until_sync(lambda: not pool_threads(pool_name), message="threads exit")
    assert stats(pool_name)["threads"] == 0


def test_shutdown_of_an_unused_pool_returns_at_once(implementation, pool_name):
    before = set(threading.enumerate())
    executor = thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name)
    started = time.monotonic()
    executor.shutdown(wait=True)
    executor.shutdown(wait=False)   # idempotent
    # Generous bound: nothing to join, so no wait for a timeout.
    assert time.monotonic() - started < executor.SHUTDOWN_TIMEOUT / 2
    assert set(threading.enumerate()) - before == set()
    assert executor._core.spawned_threads == 0
    assert stats(pool_name)["threads"] == 0
    event_loop = asyncio.new_event_loop()
    try:
        async def refused():
            with pytest.raises(RuntimeError, match="Pool is shutdown"):
                executor.submit(operator.neg, 1)

        event_loop.run_until_complete(refused())
    finally:
        event_loop.close()
    assert set(threading.enumerate()) - before == set()


def submit_once(executor):
    """Run one call in ``executor`` on a throwaway loop (starts workers)."""
    event_loop = asyncio.new_event_loop()
    try:
        async def main():
            return await asyncio.wait_for(executor.submit(operator.neg, 1), 30)

        assert event_loop.run_until_complete(main()) == -1
    finally:
        event_loop.close()


def test_single_worker_pool_and_unnamed_thread_names(implementation, pool_name):
    single = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    try:
        submit_once(single)
        assert [t.name for t in pool_threads(pool_name)] == [
            f"Thread 0 from pool {pool_name}",
        ]
    finally:
        single.shutdown(wait=True)

    before = set(threading.enumerate())
    unnamed = thread_pool.ThreadPoolExecutor(3)
    try:
        submit_once(unnamed)
        new = set(threading.enumerate()) - before
        assert sorted(t.name for t in new) == ["Thread 0", "Thread 1"]
        assert all(t.daemon for t in new)
    finally:
        unnamed.shutdown(wait=True)


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


@pytest.mark.parametrize(
    "index", [1, 2 ** 62, 2 ** 63 // 8, (2 ** 63 - 1) // 8 + 1, 2 ** 63 - 1],
)
def test_core_refuses_a_counter_slot_out_of_its_buffer(core_type, pool_name, index):
    """Regression: the C bounds check computed ``(index + 1) * 8``, which
    overflows for a huge index and let the core write anywhere."""
    from array import array

    class OddStatistic(thread_pool.ThreadPoolStatistic):
        def _counter_slot(self, metric):
            buffer, real_index = super()._counter_slot(metric)
            if metric == "done":
                return array(buffer.typecode, [0]), index
            return buffer, real_index

    stat = OddStatistic(pool_name)
    with pytest.raises(TypeError, match="statistic counter done"):
        core_type(1, stat, lambda: None, ClosedForTest)


# --------------------------------------------------------------------------
# run_in_executor


def add(a, b=0):
    return a + b


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
# the core: Executor(max_workers, statistic, spawn_thread, closed_exception)


class ClosedForTest(RuntimeError):
    pass


@pytest.fixture
def core_type(implementation):
    if implementation == "c":
        from aiomisc_c import _thread_pool
        return _thread_pool.Executor
    from aiomisc_c import _thread_pool_py
    return _thread_pool_py.Executor


class Harness:
    """A core plus the thread bookkeeping the shell normally does."""

    def __init__(self, core_type, max_workers, name, can_spawn=lambda: True):
        self.statistic = thread_pool.ThreadPoolStatistic(name)
        self.threads = []
        self.can_spawn = can_spawn
        self.core = core_type(
            max_workers, self.statistic, self.spawn, ClosedForTest,
        )

    def spawn(self):
        if not self.can_spawn():
            raise RuntimeError("can't start new thread")
        thread = threading.Thread(
            target=self.core.run_worker, daemon=True,
            name=f"core worker {len(self.threads)}",
        )
        self.threads.append(thread)
        thread.start()

    def close(self):
        self.core.shutdown()
        for thread in self.threads:
            thread.join(10)
        assert not any(t.is_alive() for t in self.threads), "run_worker hung"


@pytest.mark.parametrize("max_workers", [0, -1])
def test_core_rejects_bad_max_workers(core_type, pool_name, max_workers):
    stat = thread_pool.ThreadPoolStatistic(pool_name)
    with pytest.raises(ValueError, match="^max_workers must be greater than 0$"):
        core_type(max_workers, stat, lambda: None, ClosedForTest)


@pytest.mark.parametrize("max_workers", ["x", 1.5, None, True])
def test_core_rejects_non_int_max_workers(core_type, pool_name, max_workers):
    """Both twins must agree; a wrong type is a TypeError (as the shell)."""
    stat = thread_pool.ThreadPoolStatistic(pool_name)
    with pytest.raises(TypeError, match="max_workers"):
        core_type(max_workers, stat, lambda: None, ClosedForTest)


@pytest.mark.parametrize("max_workers, initial", [(1, 1), (2, 2), (8, 2)])
def test_core_start_spawns_initial_workers(core_type, pool_name, max_workers, initial):
    harness = Harness(core_type, max_workers, pool_name)
    try:
        core = harness.core
        assert harness.threads == []
        assert core.spawned_threads == 0 or core.spawned_threads == initial
        core.start()
        assert len(harness.threads) == initial
        assert core.spawned_threads == initial
        assert core.max_workers == max_workers
        assert core.queued == 0
        assert core.unfinished == 0
        assert core.is_shutdown is False
        wait_until_sync(lambda: harness.statistic.threads == initial)
    finally:
        harness.close()
    assert harness.core.is_shutdown is True
    assert harness.statistic.threads == 0


def test_core_queue_attributes_and_shutdown(core_type, loop, pool_name, run):
    harness = Harness(core_type, 1, pool_name)
    core = harness.core
    core.start()
    gate = Gate()

    async def main():
        running = core.submit(gate, "done")
        await wait_event(gate.started)
        queued = [core.submit(operator.add, i, 1) for i in range(3)]
        assert core.queued == 3
        assert core.unfinished == 4
        core.shutdown()
        core.shutdown()         # idempotent
        assert core.is_shutdown is True
        with pytest.raises(RuntimeError, match="^Pool is shutdown$"):
            core.submit(print)
        gate.release.set()
        with pytest.raises(ClosedForTest, match="^Pool closed$"):
            await asyncio.wait_for(running, 30)
        results = await asyncio.wait_for(
            asyncio.gather(*queued, return_exceptions=True), 30,
        )
        assert all(type(r) is ClosedForTest for r in results)
        assert {str(r) for r in results} == {"Pool closed"}

    try:
        run(main())
        for thread in harness.threads:
            thread.join(10)
        assert not any(t.is_alive() for t in harness.threads)
        assert core.queued == 0
        assert harness.statistic.submitted == 4
        assert harness.statistic.done == 1
        assert harness.statistic.threads == 0
    finally:
        gate.release.set()
        harness.close()


def test_core_growth_rule(core_type, loop, pool_name, run):
    harness = Harness(core_type, 8, pool_name)
    core = harness.core
    core.start()
    release = threading.Event()
    spawned = []

    async def main():
        futures = []
        for _ in range(9):
            futures.append(core.submit(release.wait, 30))
            spawned.append(core.spawned_threads)
        release.set()
        await asyncio.wait_for(asyncio.gather(*futures), 30)

    try:
        run(main())
    finally:
        release.set()
        harness.close()
    assert spawned[0] == 2
    assert spawned[2] == 4
    assert spawned[4] == 8
    assert spawned[-1] == 8
    assert len(harness.threads) == 8
    assert spawned == sorted(spawned)


def test_core_submit_validates_callable(core_type, loop, pool_name, run):
    harness = Harness(core_type, 2, pool_name)
    harness.core.start()

    async def main():
        with pytest.raises(ValueError, match="^First argument must be callable$"):
            harness.core.submit(None)
        with pytest.raises(ValueError, match="^First argument must be callable$"):
            harness.core.submit(1)
        assert await harness.core.submit(add, 1, b=2) == 3

    try:
        run(main())
    finally:
        harness.close()


# --------------------------------------------------------------------------
# a worker thread that can not be started


def test_core_submit_that_can_not_start_a_thread_leaves_nothing_queued(
    core_type, loop, pool_name, run,
):
    """Regression: the item was queued before the thread start failed, so a
    submit that raised still ran its work later (twice for a caller that
    retries) or, with no worker at all, left it queued forever."""
    can_start = []
    harness = Harness(core_type, 2, pool_name, can_spawn=lambda: can_start)
    core = harness.core
    ran = []

    async def main():
        with pytest.raises(RuntimeError, match="can't start new thread"):
            core.submit(ran.append, "refused")
        assert core.queued == 0
        assert core.unfinished == 0
        assert core.spawned_threads == 0
        assert harness.statistic.submitted == 0
        can_start.append(True)
        await asyncio.wait_for(core.submit(ran.append, "accepted"), 30)
        assert core.spawned_threads == 2

    try:
        run(main())
    finally:
        harness.close()
    assert ran == ["accepted"]


@pytest.fixture
def thread_start_fails():
    """Thread starts fail for real from now on: no address space can hold a
    2**47-byte stack (with any overcommit setting)."""
    def fail_thread_starts():
        threading.stack_size(2 ** 47)

    try:
        yield fail_thread_starts
    finally:
        threading.stack_size(0)


@pytest.mark.parametrize("pool_size", [4])
def test_growth_failure_with_live_workers_still_runs_the_item_once(
    loop, pool, pool_name, run, caplog, thread_start_fails,
):
    caplog.set_level(logging.WARNING)
    gates = [Gate(), Gate()]
    ran = []

    async def main():
        blocked = [pool.submit(gate) for gate in gates]
        for gate in gates:
            await wait_event(gate.started)
        thread_start_fails()
        # Growth is due (2 threads, 2 unfinished) and fails: the two live
        # workers will run the item, so the submit succeeds.
        future = pool.submit(ran.append, "once")
        threading.stack_size(0)
        for gate in gates:
            gate.release.set()
        await asyncio.wait_for(asyncio.gather(future, *blocked), 30)
        # the pool still grows when it can
        await asyncio.wait_for(
            asyncio.gather(*(pool.submit(time.sleep, 0.01) for _ in range(8))),
            30,
        )

    run(main())
    assert ran == ["once"]
    assert len(pool_threads(pool_name)) == 4
    messages = [
        r for r in caplog.records
        if r.getMessage() == "Can not start a new thread pool worker"
    ]
    assert len(messages) == 1
    assert messages[0].levelno == logging.WARNING
    assert "can't start new thread" in str(messages[0].exc_info[1])


def test_pool_that_can_not_start_any_thread_raises(
    implementation, pool_name, thread_start_fails,
):
    thread_start_fails()
    # Construction starts no thread, so it succeeds; the first submit must
    # start one, can not, raises and queues nothing.
    executor = thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name)
    event_loop = asyncio.new_event_loop()
    try:
        async def refused():
            with pytest.raises(RuntimeError, match="can't start new thread"):
                executor.submit(operator.neg, 1)

        event_loop.run_until_complete(refused())
        assert executor._core.queued == 0 and executor._core.unfinished == 0
        assert executor._core.spawned_threads == 0
        assert stats(pool_name)["submitted"] == 0
        assert pool_threads(pool_name) == []

        threading.stack_size(0)
        submit_once(executor)   # threads start once they can
        assert stats(pool_name)["submitted"] == 1
    finally:
        threading.stack_size(0)
        event_loop.close()
        executor.shutdown(wait=True)
    assert pool_threads(pool_name) == []


def test_submit_during_a_failing_first_start_queues_nothing(implementation, pool_name):
    """Regression: while one submit was starting a fresh pool's first workers,
    a submit from another thread queued its item for them; when they failed
    to start, that item had no thread to run it.  Now the second submit
    waits for the outcome and, as nothing can start, raises too."""
    other_done = threading.Event()
    outcome = []

    def submit_from_another_thread(executor):
        event_loop = asyncio.new_event_loop()

        async def main():
            executor.submit(operator.neg, 2)

        try:
            event_loop.run_until_complete(main())
            outcome.append("queued")
        except RuntimeError as e:
            outcome.append(e)
        finally:
            event_loop.close()
            other_done.set()

    class FailingPool(thread_pool.ThreadPoolExecutor):
        calls = 0

        def _spawn_thread(self):
            FailingPool.calls += 1
            if FailingPool.calls == 1:
                threading.Thread(
                    target=submit_from_another_thread, args=(self,),
                ).start()
                # Without the fix the other submit returns at once.
                other_done.wait(0.5)
            raise RuntimeError("can't start new thread")

    executor = FailingPool(2, statistic_name=pool_name)
    event_loop = asyncio.new_event_loop()
    try:
        async def first():
            with pytest.raises(RuntimeError, match="can't start new thread"):
                executor.submit(operator.neg, 1)

        event_loop.run_until_complete(first())
        assert other_done.wait(30)
        assert len(outcome) == 1
        assert isinstance(outcome[0], RuntimeError), outcome
        assert "can't start new thread" in str(outcome[0])
        assert executor._core.queued == 0 and executor._core.unfinished == 0
        assert executor._core.spawned_threads == 0
        assert stats(pool_name)["submitted"] == 0
    finally:
        event_loop.close()
        executor.shutdown(wait=True)


# --------------------------------------------------------------------------
# shutdown(wait=True) gives up after SHUTDOWN_TIMEOUT


def test_shutdown_wait_gives_up_after_the_timeout(implementation, pool_name, caplog):
    from unittest import mock

    caplog.set_level(logging.WARNING)
    executor = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    gate = Gate()
    event_loop = asyncio.new_event_loop()
    try:
        async def submit():
            return executor.submit(gate)

        running = event_loop.run_until_complete(submit())
        assert gate.started.wait(10)
        with mock.patch.object(type(executor), "SHUTDOWN_TIMEOUT", 0.3):
            started = time.monotonic()
            executor.shutdown(wait=True)
            assert time.monotonic() - started < 8, "shutdown ignored its timeout"
        assert any(r.levelno == logging.WARNING for r in caplog.records)
        gate.release.set()
        with pytest.raises(thread_pool.ThreadPoolException, match="^Pool closed$"):
            event_loop.run_until_complete(asyncio.wait_for(running, 30))
    finally:
        gate.release.set()
        event_loop.close()
    wait_until_sync(lambda: not pool_threads(pool_name), message="threads exit")


# --------------------------------------------------------------------------
# semi-internal pieces of aiomisc 17: WorkItem, thread_pool_thread_loop


def test_work_item(loop, pool_name, run):
    import dataclasses

    stat = thread_pool.ThreadPoolStatistic(pool_name)

    def run_in_thread(item, **kwargs):
        thread = threading.Thread(target=item, kwargs=kwargs)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()

    async def main():
        future = loop.create_future()
        item = thread_pool.WorkItem(
            func=add, statistic=stat, future=future, loop=loop,
            args=(1,), kwargs={"b": 2},
        )
        assert isinstance(item, thread_pool.WorkItemBase)
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.func = print
        run_in_thread(item)
        assert await asyncio.wait_for(future, 10) == 3

        failing = loop.create_future()
        run_in_thread(thread_pool.WorkItem(
            func=raise_, statistic=stat, future=failing, loop=loop,
            args=(KeyError("work item"),),
        ))
        with pytest.raises(KeyError, match="work item"):
            await asyncio.wait_for(failing, 10)

        silent = loop.create_future()
        run_in_thread(
            thread_pool.WorkItem(func=add, statistic=stat, future=silent, loop=loop, args=(1,)),
            no_return=True,
        )
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert not silent.done()
        silent.cancel()

        calls = []
        done_already = loop.create_future()
        done_already.cancel()
        thread_pool.WorkItem(
            func=calls.append, statistic=stat, future=done_already, loop=loop, args=(1,),
        )()
        assert calls == []

    run(main())
    assert (stat.done, stat.success, stat.error) == (3, 2, 1)


def test_thread_pool_thread_loop(loop, pool_name, run):
    stat = thread_pool.ThreadPoolStatistic(pool_name)
    tasks = thread_pool.TaskChannel()
    stop_event, shutdown_event = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=thread_pool.thread_pool_thread_loop,
        args=(tasks, stat, stop_event, shutdown_event),
    )
    thread.start()

    async def main():
        await wait_until(lambda: stat.threads == 1, message="the thread to start")
        future = loop.create_future()
        tasks.put(thread_pool.WorkItem(
            func=operator.mul, statistic=stat, future=future, loop=loop, args=(6, 7),
        ))
        assert await asyncio.wait_for(future, 10) == 42

    try:
        run(main())
    finally:
        tasks.close()
        thread.join(10)
    assert not thread.is_alive()
    assert stop_event.is_set()
    assert stat.threads == 0
    assert stat.done == 1


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
# shutdown from unusual places


@pytest.mark.parametrize("pool_size", [2])
def test_shutdown_called_from_a_worker(loop, pool, pool_name, run):
    def stop_pool():
        pool.shutdown(wait=False)
        return "stopped from inside"

    async def main():
        # the calling item is unfinished too: its future fails, as in aiomisc
        with pytest.raises(thread_pool.ThreadPoolException, match="^Pool closed$"):
            await asyncio.wait_for(pool.submit(stop_pool), 30)
        with pytest.raises(RuntimeError, match="^Pool is shutdown$"):
            pool.submit(print)

    run(main())
    wait_until_sync(lambda: not pool_threads(pool_name), message="threads exit")


def test_shutdown_fails_queued_futures_of_several_loops(
    implementation, loop_kind, loop, pool_name, run,
):
    executor = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    gate = Gate()
    other_ready = threading.Event()
    other_results = []

    def other_loop_thread():
        own_loop = new_loop(loop_kind)
        try:
            async def main():
                futures = [executor.submit(operator.neg, i) for i in range(1_000)]
                other_ready.set()
                return await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), 60,
                )

            other_results.extend(own_loop.run_until_complete(main()))
        finally:
            own_loop.close()

    async def main():
        running = executor.submit(gate)
        await wait_event(gate.started)
        other = threading.Thread(target=other_loop_thread)
        other.start()
        await wait_event(other_ready)
        mine = [executor.submit(operator.neg, i) for i in range(1_000)]
        executor.shutdown(wait=False)
        gate.release.set()
        results = await asyncio.wait_for(asyncio.gather(*mine, return_exceptions=True), 60)
        with pytest.raises(thread_pool.ThreadPoolException, match="^Pool closed$"):
            await running
        other.join(60)
        assert not other.is_alive()
        return results

    try:
        results = run(main())
    finally:
        gate.release.set()
        executor.shutdown(wait=True)
    for batch in (results, other_results):
        assert len(batch) == 1_000
        assert all(type(r) is thread_pool.ThreadPoolException for r in batch)
        assert {str(r) for r in batch} == {"Pool closed"}


# --------------------------------------------------------------------------
# races and lifetimes


def test_closed_loops_are_not_kept_alive(implementation, loop_kind, pool_name):
    """Per-loop delivery channels must not keep dead loops alive."""
    executor = thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name)
    refs = []
    try:
        for i in range(20):
            event_loop = new_loop(loop_kind)

            async def main(value=i):
                return await asyncio.wait_for(executor.submit(operator.neg, value), 30)

            assert event_loop.run_until_complete(main()) == -i
            event_loop.close()
            refs.append(weakref.ref(event_loop))
            del event_loop

        def all_dead():
            gc.collect()
            return all(ref() is None for ref in refs)

        wait_until_sync(all_dead, timeout=3, message="closed loops to be freed")
    finally:
        executor.shutdown(wait=True)


@pytest.mark.slow
def test_submit_racing_shutdown_leaves_no_future_unresolved(
    implementation, loop_kind, pool_name,
):
    executor = thread_pool.ThreadPoolExecutor(4, statistic_name=pool_name)
    threads, outcomes, failures = 4, [], []
    submitting = threading.Barrier(threads + 1, timeout=30)

    def submitter():
        own_loop = new_loop(loop_kind)
        try:
            async def main():
                futures = []
                submitting.wait()
                while True:
                    try:
                        futures.append(executor.submit(operator.neg, len(futures)))
                    except RuntimeError as e:
                        assert str(e) == "Pool is shutdown"
                        break
                    if len(futures) % 100 == 0:
                        await asyncio.sleep(0)
                results = await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), 60,
                )
                for index, result in enumerate(results):
                    if isinstance(result, BaseException):
                        assert type(result) is thread_pool.ThreadPoolException, result
                        assert str(result) == "Pool closed"
                    else:
                        assert result == -index
                return len(results)

            outcomes.append(own_loop.run_until_complete(main()))
        except BaseException as e:  # noqa: BLE001
            failures.append(e)
        finally:
            own_loop.close()

    workers = [threading.Thread(target=submitter) for _ in range(threads)]
    for worker in workers:
        worker.start()
    submitting.wait()
    time.sleep(0.2)
    executor.shutdown(wait=False)
    for worker in workers:
        worker.join(120)
    executor.shutdown(wait=True)
    assert not any(w.is_alive() for w in workers), "a submitter hung"
    assert failures == []
    assert len(outcomes) == threads
    assert stats(pool_name)["submitted"] == sum(outcomes)


def test_dropped_pool_stops_its_threads(implementation, pool_name):
    executor = thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name)
    submit_once(executor)
    assert len(pool_threads(pool_name)) == 2
    del executor

    def gone():
        gc.collect()
        return not pool_threads(pool_name)

    wait_until_sync(gone, message="the threads of a dropped pool to exit")


def test_py_submit_racing_shutdown_refuses_the_item(plain_loop, monkeypatch):
    """Regression (Python twin): shutdown() running between submit's first
    shutdown check and its append left the item in a queue nobody drains,
    its future pending forever.  The C twin re-checks under its lock; the
    race is forced here by running shutdown() inside submit."""
    from aiomisc_c import _thread_pool_py

    pool = _thread_pool_py.ThreadPoolExecutor(2)
    real_copy_context = _thread_pool_py.copy_context

    def copy_context_then_shutdown():
        pool.shutdown(wait=False)
        return real_copy_context()

    monkeypatch.setattr(_thread_pool_py, "copy_context", copy_context_then_shutdown)

    async def main():
        with pytest.raises(RuntimeError, match="Pool is shutdown"):
            pool.submit(operator.neg, 1)

    plain_loop.run_until_complete(main())
    assert pool._core.queued == 0 and pool._core.unfinished == 0


def _blocked_signals():
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX only")
def test_worker_threads_leave_sigint_and_sigterm_to_the_main_thread(loop, pool):
    """Regression: a SIGTERM the kernel handed to a worker thread left the
    main thread asleep in epoll_wait, so a Python handler (a graceful
    shutdown, the log flush) waited for the next loop wake-up.  Threads of
    the package block SIGINT/SIGTERM; the creating thread's mask is kept."""
    before = _blocked_signals()

    async def main():
        in_pool = await pool.submit(_blocked_signals)
        in_new_thread = await thread_pool.run_in_new_thread(_blocked_signals)
        return in_pool, in_new_thread

    in_pool, in_new_thread = loop.run_until_complete(main())
    for mask in (in_pool, in_new_thread):
        assert {signal.SIGINT, signal.SIGTERM} <= mask
    assert _blocked_signals() == before
