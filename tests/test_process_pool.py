"""ProcessPoolExecutor: real worker processes, statistics, bounded shutdown."""
import asyncio
import multiprocessing
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

import aiomisc_c
from aiomisc_c.process_pool import ProcessPoolExecutor, ProcessPoolStatistic
from helpers.processes import descendants
from helpers.waiting import wait_until

pytestmark = [pytest.mark.timeout(60), pytest.mark.subprocess]

# The fork server starts workers without forking this threaded process.
MP_CONTEXT = multiprocessing.get_context("forkserver")


@pytest.fixture
def loop(plain_loop):
    return plain_loop


@pytest.fixture
def pool():
    with ProcessPoolExecutor(4, mp_context=MP_CONTEXT) as pool:
        yield pool


def multiprocessing_helpers():
    from multiprocessing import forkserver, resource_tracker

    return {
        getattr(forkserver._forkserver, "_forkserver_pid", None),
        getattr(resource_tracker._resource_tracker, "_pid", None),
    }


def kill_self(signum):
    os.kill(os.getpid(), signum)


def test_top_level_name():
    assert aiomisc_c.ProcessPoolExecutor is ProcessPoolExecutor
    assert ProcessPoolExecutor.DEFAULT_MAX_WORKERS == max(os.cpu_count(), 4)


def test_run_in_executor(pool, run, loop):
    async def main():
        now = await loop.run_in_executor(pool, time.time)
        assert abs(now - time.time()) < 60
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(pool, divmod, 1, 0)

    run(main())


def test_calls_run_in_parallel(pool, run, loop):
    async def main():
        # Start the four workers first.
        await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.05) for _ in range(4)))
        started = time.monotonic()
        await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.5) for _ in range(4)))
        return time.monotonic() - started

    # One after another would take 2 s.
    assert run(main()) < 1.9


def test_statistics(pool, run, loop):
    async def main():
        await asyncio.gather(*(loop.run_in_executor(pool, abs, -i) for i in range(5)))
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(pool, divmod, 1, 0)

    run(main())
    stats = {
        metric: value
        for kind, _, metric, value in aiomisc_c.get_statistics(ProcessPoolStatistic)
        if kind is ProcessPoolStatistic
    }
    assert set(stats) == {"processes", "done", "error", "success", "submitted", "sum_time"}
    assert pool._statistic.processes == 4
    assert pool._statistic.submitted == 6
    assert pool._statistic.done == 6
    assert pool._statistic.success == 5
    assert pool._statistic.error == 1
    assert pool._statistic.sum_time > 0


def test_submit_needs_a_running_loop(pool):
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)


def test_bad_arguments():
    with pytest.raises(ValueError):
        ProcessPoolExecutor(0)
    with pytest.raises(TypeError, match="max_workers must be an int"):
        ProcessPoolExecutor("4")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_workers_that_die_do_not_hang_the_caller(run, loop, signum):
    pool = ProcessPoolExecutor(2, mp_context=MP_CONTEXT)

    async def main():
        results = await asyncio.wait_for(
            asyncio.gather(
                *(loop.run_in_executor(pool, kill_self, signum) for _ in range(4)),
                return_exceptions=True,
            ),
            30,
        )
        assert all(isinstance(result, BrokenProcessPool) for result in results), results

    try:
        run(main())
    finally:
        pool.shutdown(wait=True)


def test_shutdown_is_bounded(run, loop):
    before = descendants()
    pool = ProcessPoolExecutor(2, mp_context=MP_CONTEXT)
    pool.SHUTDOWN_TIMEOUT = 0.3

    async def main():
        await loop.run_in_executor(pool, abs, 1)
        pending = loop.run_in_executor(pool, time.sleep, 600)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        pool.shutdown(wait=True)
        elapsed = time.monotonic() - started
        with pytest.raises(BrokenProcessPool):
            await pending
        return elapsed

    assert run(main()) < 10
    run(wait_until(
        lambda: not (descendants() - before - multiprocessing_helpers()),
        message="workers reaped",
    ))
