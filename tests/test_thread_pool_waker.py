"""How finished calls wake their loop, and what that leaves behind.

The C pool wakes a loop through a descriptor the loop watches (one per
pool and loop, made when the loop's own thread first submits), signalled
by a worker after it lets the GIL go; the Python twin and loops that cannot
watch descriptors go through ``call_soon_threadsafe``.  Either way every
result arrives, a shut-down pool stops being watched, and no descriptor
outlives its pool and loop.
"""

import asyncio
import gc
import operator
import os

import pytest
from helpers.thread_pool_cases import new_loop, pool_threads, stats
from helpers.waiting import wait_until, wait_until_sync

from aiomisc_c import thread_pool


def open_fds():
    return len(os.listdir("/proc/self/fd"))


pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd",
)


def test_results_pending_at_shutdown_still_arrive(loop, pool, pool_name, run):
    """A batch signalled before the pool shut down is drained before the
    loop stops watching the pool: those results are not lost."""

    async def main():
        futures = [pool.submit(operator.neg, i) for i in range(10)]
        # The loop thread stays busy: every result waits in the batch.
        wait_until_sync(lambda: stats(pool_name)["done"] == 10, timeout=30)
        pool.shutdown(wait=False)
        return await asyncio.gather(*futures)

    assert run(main()) == [-i for i in range(10)]


def test_pool_shut_down_on_a_running_loop_leaves_no_descriptor(
    implementation, loop_kind,
):
    event_loop = new_loop(loop_kind)
    try:
        async def cycle():
            executor = thread_pool.ThreadPoolExecutor(2)
            assert await executor.submit(operator.neg, 1) == -1
            executor.shutdown(wait=True)
            # the loop lets the pool go at its next wake-up
            for _ in range(3):
                await asyncio.sleep(0)

        event_loop.run_until_complete(cycle())  # warm-up
        gc.collect()
        before = open_fds()
        for _ in range(20):
            event_loop.run_until_complete(cycle())
        gc.collect()
        assert open_fds() == before
        # the loop still runs: nothing it watches is stale
        event_loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        event_loop.close()


def test_closed_loops_leave_no_descriptor(implementation, loop_kind, pool_name):
    def cycle():
        event_loop = new_loop(loop_kind)
        # closing the loop shuts its default executor down
        event_loop.set_default_executor(
            thread_pool.ThreadPoolExecutor(2, statistic_name=pool_name),
        )
        try:
            assert event_loop.run_until_complete(
                thread_pool.threaded(operator.neg)(3),
            ) == -3
        finally:
            event_loop.close()

    def descriptors_left():
        # a pool shut down by loop.close() (wait=False) lives until its
        # last worker thread has left
        gc.collect()
        return open_fds()

    cycle()
    wait_until_sync(lambda: not pool_threads(pool_name), timeout=30)
    before = descriptors_left()
    for _ in range(20):
        cycle()
    wait_until_sync(lambda: not pool_threads(pool_name), timeout=30)
    assert descriptors_left() <= before


def test_one_pool_serves_many_loops(implementation, loop_kind):
    """A pool shared by several loops in turn (each watching it) delivers to
    each, and a loop that closes does not disturb the others."""
    executor = thread_pool.ThreadPoolExecutor(2)
    loops = [new_loop(loop_kind) for _ in range(4)]

    async def call(func, *args):
        return await asyncio.wait_for(executor.submit(func, *args), 30)

    try:
        for round_ in range(3):
            for index, event_loop in enumerate(loops):
                assert event_loop.run_until_complete(
                    call(operator.add, index, round_),
                ) == index + round_
        loops.pop().close()
        for index, event_loop in enumerate(loops):
            assert event_loop.run_until_complete(
                call(operator.neg, index),
            ) == -index
    finally:
        executor.shutdown(wait=True)
        for event_loop in loops:
            event_loop.close()


class DescriptorlessLoop(asyncio.SelectorEventLoop):
    """A loop that cannot watch descriptors (as some custom loops)."""

    def add_reader(self, *args, **kwargs):
        raise NotImplementedError("this loop does not watch descriptors")


def test_loop_that_cannot_watch_descriptors_is_served(implementation):
    event_loop = DescriptorlessLoop()
    executor = thread_pool.ThreadPoolExecutor(2)
    try:
        async def main():
            results = []
            for i in range(50):
                results.append(await executor.submit(operator.neg, i))
            results += await asyncio.gather(
                *(executor.submit(operator.neg, i) for i in range(50, 100)),
            )
            return results

        assert event_loop.run_until_complete(
            asyncio.wait_for(main(), 30),
        ) == [-i for i in range(100)]
    finally:
        executor.shutdown(wait=True)
        event_loop.close()


def test_submit_from_another_thread_is_served(loop, pool, run):
    """A channel made off the loop's thread cannot be watched (asyncio's
    selector is not thread-safe): such calls are delivered all the same."""
    import threading

    def submit_elsewhere(box):
        asyncio.set_event_loop(loop)
        try:
            box.append(pool.submit(operator.neg, 7))
        finally:
            asyncio.set_event_loop(None)

    async def main():
        box = []
        thread = threading.Thread(target=submit_elsewhere, args=(box,))
        thread.start()
        await wait_until(lambda: not thread.is_alive(), timeout=30)
        return await box[0]

    assert run(main()) == -7


def test_watching_keeps_no_context_alive(loop, pool, run):
    """The loop keeps the watch for as long as it serves the pool: the
    context variables of whoever submitted first must not live that long."""
    import contextvars
    import weakref

    var = contextvars.ContextVar("var")

    class Payload:
        pass

    async def first_submit():
        var.set(Payload())
        assert await pool.submit(operator.neg, 1) == -1
        return weakref.ref(var.get())

    payload = run(first_submit())
    gc.collect()
    assert payload() is None
    assert run(pool.submit(operator.neg, 2)) == -2
