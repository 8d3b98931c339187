"""``ThreadPoolExecutor.shutdown``: what happens to queued and running work,
the timeout of a waiting shutdown, and shutdown from unusual places.

Every wait is on an event or a generous timeout; nothing asserts a tight
duration (2 noisy vCPUs).
"""

import asyncio
import logging
import operator
import threading
import time

import pytest
from helpers.thread_pool_cases import Gate, new_loop, pool_threads, stats
from helpers.waiting import wait_event, wait_until_sync

from aiomisc_c import thread_pool


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
