"""The thread pool's worker threads under load: no lost calls, shared pools,
batched completions, lazy growth and thread names.

Every wait is on an event or a generous timeout; nothing asserts a tight
duration (2 noisy vCPUs).
"""

import asyncio
import operator
import random
import threading
import time

import pytest
from helpers.thread_pool_cases import new_loop, pool_threads, stats, submit_once
from helpers.waiting import wait_until, wait_until_sync

from aiomisc_c import thread_pool
from aiomisc_c._context_vars import EVENT_LOOP


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
    """One loop wake-up per batch of completions, never one per item: while
    the loop thread is busy, later completions join the batch already
    scheduled.  A wake-up is a ``call_soon_threadsafe`` (the Python twin)
    or a signal of the descriptor the loop watches for the pool (C)."""
    if loop_kind != "asyncio":
        pytest.skip("uvloop's methods cannot be wrapped")
    wakeups = []
    original_call_soon = loop.call_soon_threadsafe
    original_add_reader = loop.add_reader

    def counting_call_soon(*args, **kwargs):
        wakeups.append(args[0])
        return original_call_soon(*args, **kwargs)

    def counting_add_reader(fd, callback, *args):
        def counting_callback(*args):
            wakeups.append(callback)
            return callback(*args)

        return original_add_reader(fd, counting_callback, *args)

    loop.call_soon_threadsafe = counting_call_soon
    loop.add_reader = counting_add_reader
    try:
        async def main():
            futures = [pool.submit(operator.neg, i) for i in range(1_000)]
            # keep the loop thread busy until every item has completed
            wait_until_sync(lambda: stats(pool_name)["done"] == 1_000, timeout=60)
            assert await asyncio.gather(*futures) == [-i for i in range(1_000)]

        run(main())
    finally:
        del loop.call_soon_threadsafe
        del loop.add_reader
    assert 1 <= len(wakeups) <= 4, f"{len(wakeups)} wake-ups for 1000 items"


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
