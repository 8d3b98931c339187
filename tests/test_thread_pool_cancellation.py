"""Cancelling the task that awaits a thread pool call, and closing its loop
while the work is in flight.

Every wait is on an event or a generous timeout; nothing asserts a tight
duration (2 noisy vCPUs).
"""

import asyncio
import gc
import logging
import operator
import threading
import weakref

import pytest
from helpers.thread_pool_cases import Gate, new_loop, raise_, stats
from helpers.waiting import wait_event, wait_until, wait_until_sync

from aiomisc_c import thread_pool


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
