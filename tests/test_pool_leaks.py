"""Leak check of the C pool acquisition (``aiomisc_c._pool``).

A child process runs every path of the acquisition many times (a ready
instance; a check that suspends, says no, raises, is cancelled, is closed,
has an exception thrown in; a release to a waiter; recycling) and
``leakcheck`` judges the growth of the reference counts of the objects those
paths touch (every reference, on a debug interpreter), of the tracked
objects and of the traced memory by its one rule.
"""
import textwrap

import pytest

import aiomisc_c.pool  # noqa: F401  (registers the twins)
from aiomisc_c import _compat
from helpers.leakcheck import assert_no_leaks, run_leak_script

pytestmark = [
    pytest.mark.c_extension,
    pytest.mark.skipif(
        not _compat.c_available("pool"), reason="C extension not built",
    ),
]

ROUNDS = 2_000

CHILD = textwrap.dedent(r'''
    import asyncio, logging, sys

    from helpers.leakcheck import measure, print_report

    from aiomisc_c import _compat, _pool
    from aiomisc_c.pool import PoolBase

    assert _compat.implementation["pool"] == "c"
    ROUNDS, LOOP = int(sys.argv[1]), sys.argv[2]
    if LOOP == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    logging.getLogger("aiomisc_c.pool").disabled = True


    class Boom(Exception):
        pass


    class Instance:
        pass


    class Pool(PoolBase):
        mode = "ok"

        async def _create_instance(self):
            return Instance()

        async def _destroy_instance(self, instance):
            pass

        async def _check_instance(self, instance):
            mode = self.mode
            if mode == "ok":
                return True
            if mode == "no":
                self.mode = "ok"
                return False
            if mode == "raise":
                self.mode = "ok"
                raise Boom("check")
            if mode == "suspend":
                await asyncio.sleep(0)
                return True
            await asyncio.sleep(3600)       # "hang"
            return True


    async def one_round(pool, recycled):
        async with pool.acquire():
            pass
        pool.mode = "no"
        async with pool.acquire():
            pass
        pool.mode = "raise"
        async with pool.acquire():
            pass
        pool.mode = "suspend"
        async with pool.acquire():
            pass
        # cancelled while the check hangs
        pool.mode = "hang"
        task = asyncio.ensure_future(pool.acquire().__aenter__())
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        # closed, and thrown into, while the check hangs
        iterator = pool.acquire().__aenter__().__await__()
        future = iterator.send(None)
        iterator.close()
        future.cancel()
        manager = pool.acquire()
        iterator = manager.__aenter__().__await__()
        future = iterator.send(None)
        pool.mode = "ok"
        try:
            iterator.throw(Boom("thrown"))      # replaced at once
        except StopIteration:
            pass
        future.cancel()
        await manager.__aexit__(None, None, None)
        # released to a waiter
        holding = pool.acquire()
        await holding.__aenter__()
        waiting = pool.acquire()
        waiter = asyncio.ensure_future(waiting.__aenter__())
        await asyncio.sleep(0)
        await holding.__aexit__(None, None, None)
        await waiter
        await waiting.__aexit__(None, None, None)
        # an acquisition made and dropped, an awaitable never awaited
        pool.acquire()
        pool.acquire().__aenter__()
        # recycling on release
        async with recycled.acquire():
            pass
        await asyncio.sleep(0)


    async def main():
        pool = Pool(maxsize=1)
        recycled = Pool(maxsize=1, recycle=1e-9)

        async def run(rounds):
            for _ in range(rounds):
                await one_round(pool, recycled)
            assert len(pool) == 1 and list(pool._idle) and not pool._used

        watched = {
            "Pool": Pool,
            "Instance": Instance,
            "Boom": Boom,
            "pool": pool,
            "recycled": recycled,
            "pool._hot": pool._hot,
            "pool._released": pool._released,
            "Acquisition": _pool.Acquisition,
            "Enter": type(pool.acquire().__aenter__()),
        }
        return run, watched, pool, recycled


    run, watched, pool, recycled = loop.run_until_complete(main())
    report = measure(
        lambda rounds: loop.run_until_complete(run(rounds)), ROUNDS,
        watched=watched,
        settle=lambda: loop.run_until_complete(asyncio.sleep(0.01)),
    )
    loop.run_until_complete(pool.close())
    loop.run_until_complete(recycled.close())
    loop.close()
    print_report(report, sizes={"pool": len(pool), "recycled": len(recycled)})
''')


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_acquisition_does_not_leak(loop_kind):
    report = run_leak_script(CHILD, str(ROUNDS), loop_kind)
    assert_no_leaks(report)
