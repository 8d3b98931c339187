"""Reference and memory leak check of the C thread pool.

A child process runs threaded calls over every hot path (``Threaded`` via the
default executor, direct submit with keyword arguments, ``BoundThreaded``,
exceptions, futures cancelled before they run) and ``leakcheck`` judges the
growth by its one rule: nothing may grow in every measured run.
"""
import pytest

from aiomisc_c import _compat, thread_pool  # noqa: F401 - registers the twins
from helpers.leakcheck import assert_no_leaks, run_leak_script

CALLS = 30_000

CHILD = r'''
import asyncio, sys
from aiomisc_c import _compat, thread_pool, utils
from helpers.leakcheck import measure, print_report

assert thread_pool.ThreadPoolExecutor is thread_pool._CThreadPoolExecutor
CALLS, LOOP = int(sys.argv[1]), sys.argv[2]
CHUNK = 1000


class LeakCheckError(Exception):
    """Raised by the failing work function (a fresh instance per call)."""


SENTINEL = object()


def work(value=None, *, key=None):
    return SENTINEL


def fail(value=None):
    raise LeakCheckError(value)


if LOOP == "uvloop":
    import uvloop
    policy = uvloop.EventLoopPolicy()
else:
    policy = asyncio.DefaultEventLoopPolicy()
loop = utils.new_event_loop(pool_size=4, policy=policy)
threaded_work = thread_pool.threaded(work)


class Holder:
    @thread_pool.threaded
    def method(self, value):
        return SENTINEL


holder = Holder()
executor = thread_pool.ThreadPoolExecutor(4, statistic_name="leakcheck")


async def batch(count):
    for start in range(0, count, CHUNK):
        futures = []
        for i in range(start, start + CHUNK):
            kind = i % 6
            if kind == 0:
                futures.append(threaded_work(i))
            elif kind == 1:
                futures.append(executor.submit(work, i, key=i))
            elif kind == 2:
                futures.append(holder.method(i))
            elif kind == 3:
                futures.append(executor.submit(fail, i))
            elif kind == 4:
                future = executor.submit(work, i)
                future.cancel()
                futures.append(future)
            else:
                futures.append(threaded_work(key=i))
        results = await asyncio.gather(*futures, return_exceptions=True)
        for i, result in zip(range(start, start + CHUNK), results):
            kind = i % 6
            if kind == 3:
                assert isinstance(result, LeakCheckError), result
            elif kind == 4:
                assert isinstance(result, asyncio.CancelledError), result
            else:
                assert result is SENTINEL, result
        del futures, results, result


async def pause():
    for _ in range(10):
        await asyncio.sleep(0.01)


report = measure(
    lambda calls: loop.run_until_complete(batch(calls)), CALLS,
    settle=lambda: loop.run_until_complete(pause()),
    watched={
        "work": work, "fail": fail, "sentinel": SENTINEL, "loop": loop,
        "executor": executor, "threaded_work": threaded_work,
        "holder": holder, "Future": asyncio.Future, "loop_type": type(loop),
        "LeakCheckError": LeakCheckError, "Threaded": thread_pool.Threaded,
        "BoundThreaded": thread_pool.BoundThreaded,
        "Executor": type(executor), "int": int, "tuple": tuple, "dict": dict,
    },
)
executor.shutdown(wait=True)
loop.close()
print_report(report)
'''


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.c_extension
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_threaded_calls_do_not_leak(loop_kind):
    if not _compat.c_available("thread_pool"):
        pytest.skip(f"C thread pool unavailable: {_compat._C_MISSING.get('thread_pool')}")
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    assert_no_leaks(run_leak_script(CHILD, str(CALLS), loop_kind))
