"""Helpers shared by the thread pool's test modules."""

import asyncio
import operator
import threading

import pytest

from aiomisc_c import thread_pool
from aiomisc_c.counters import get_statistics

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


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


def submit_once(executor):
    """Run one call in ``executor`` on a throwaway loop (starts workers)."""
    event_loop = asyncio.new_event_loop()
    try:
        async def main():
            return await asyncio.wait_for(executor.submit(operator.neg, 1), 30)

        assert event_loop.run_until_complete(main()) == -1
    finally:
        event_loop.close()


def add(a, b=0):
    return a + b
