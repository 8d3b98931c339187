"""A result whose loop closed while its call ran, delivered when the pool's
recycled work items are at their limit; over both twins and both loops.

Regression: the worker read the channel of the work item that delivering
had just freed (a use after free; the memory is really released, not
recycled, once the free list of items is full, and ``make asan`` then
aborts here)."""
import asyncio
import logging
import threading

import pytest
from helpers.waiting import wait_until_sync

from aiomisc_c import thread_pool

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

# more than the items a pool module keeps for reuse, alive at once
BURST = 1100


def new_loop(loop_kind):
    if loop_kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Gate:
    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self):
        self.started.set()
        if not self.release.wait(30):
            raise AssertionError("gate never released")
        return "gate"


def dropped_records(caplog):
    return [
        r for r in caplog.records
        if r.name == "aiomisc_c.thread_pool" and "is closed" in r.getMessage()
    ]


def fill_free_items(loop_kind):
    """BURST work items alive at once, then all freed: the items' free list
    is full afterwards."""
    filler = thread_pool.ThreadPoolExecutor(1)
    gate = Gate()
    other = new_loop(loop_kind)
    try:
        async def burst():
            blocked = filler.submit(gate)
            futures = [filler.submit(int, i) for i in range(BURST)]
            gate.release.set()
            assert await blocked == "gate"
            return sum(await asyncio.gather(*futures))

        assert other.run_until_complete(burst()) == sum(range(BURST))
    finally:
        other.close()
        filler.shutdown(wait=True)


def test_result_of_a_loop_closed_while_its_call_ran(
    implementation, loop_kind, pool_name, caplog,
):
    caplog.set_level(logging.WARNING)
    executor = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    gate = Gate()
    closed_loop = new_loop(loop_kind)
    try:
        async def submit():
            executor.submit(gate)

        closed_loop.run_until_complete(submit())
        assert gate.started.wait(10)
    finally:
        closed_loop.close()
    try:
        fill_free_items(loop_kind)
        gate.release.set()      # its result now has nowhere to go
        wait_until_sync(
            lambda: dropped_records(caplog), message="the dropped call's log line",
        )
        # the pool still serves open loops
        other = new_loop(loop_kind)
        try:
            async def use():
                return await asyncio.wait_for(executor.submit(int, "12"), 30)

            assert other.run_until_complete(use()) == 12
        finally:
            other.close()
    finally:
        gate.release.set()
        executor.shutdown(wait=True)

    records = dropped_records(caplog)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].getMessage().endswith(
        "is closed. Dropping 1 thread pool call(s)",
    ), records[0].getMessage()
