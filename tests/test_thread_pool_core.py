"""The thread pool's core ``Executor(max_workers, statistic, spawn_thread,
closed_exception)`` of both twins, worker threads that can not be started,
and the semi-internal ``WorkItem`` and ``thread_pool_thread_loop``.

Every wait is on an event or a generous timeout; nothing asserts a tight
duration (2 noisy vCPUs).
"""

import array
import asyncio
import logging
import operator
import threading
import time

import pytest
from helpers.thread_pool_cases import (
    Gate, add, pool_threads, raise_, stats, submit_once,
)
from helpers.waiting import wait_event, wait_until, wait_until_sync

from aiomisc_c import thread_pool


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


@pytest.mark.parametrize(
    "make_buffer",
    [
        lambda typecode: array.array("d" if typecode == "q" else "q", [0]),
        lambda typecode: bytes(8),
        lambda typecode: [0],
    ],
    ids=["other typecode", "read-only bytes", "not a buffer"],
)
def test_core_refuses_a_counter_slot_of_another_kind(core_type, pool_name, make_buffer):
    """Both twins name the counter whatever is wrong with its buffer."""

    class OddStatistic(thread_pool.ThreadPoolStatistic):
        def _counter_slot(self, metric):
            buffer, index = super()._counter_slot(metric)
            if metric == "done":
                return make_buffer(buffer.typecode), 0
            return buffer, index

    stat = OddStatistic(pool_name)
    with pytest.raises(
        TypeError, match=r"^statistic counter done is not an array\('q'\) slot$",
    ):
        core_type(1, stat, lambda: None, ClosedForTest)


def test_core_sum_time_covers_each_call(core_type, loop, pool_name, run):
    """sum_time is read on time.monotonic()'s clock, before and after the
    call: it can never be less than what the function itself measured."""
    harness = Harness(core_type, 1, pool_name)
    harness.core.start()

    def timed():
        started = time.monotonic()
        time.sleep(0.001)
        return time.monotonic() - started

    async def main():
        return [await harness.core.submit(timed) for _ in range(20)]

    try:
        durations = run(main())
        assert harness.statistic.done == 20
        assert harness.statistic.sum_time >= sum(durations) > 0
    finally:
        harness.close()


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
