"""Leak check of the C thread pool's hot paths (run by tests/test_leaks.py).

Usage: python tests/leakcheck.py [--loop asyncio|uvloop] [--calls N] [--warmup N]

Runs ``--warmup`` threaded calls, measures, runs ``--calls`` more, measures
again and prints one JSON line: ``{"before": {...}, "after": {...}}`` with the
reference counts of the objects every call touches (the function, a sentinel
result, the loop, the types involved) and the traced memory.  A leak of one
reference or one small block per call shows up as a growth proportional to
``--calls``.  Prints ``{"skip": reason}`` when the C twin is unavailable.
"""
import argparse
import asyncio
import gc
import json
import sys
import tracemalloc

CHUNK = 1000


class LeakCheckError(Exception):
    """Raised by the failing work function (a fresh instance per call)."""


SENTINEL = object()


def work(value=None, *, key=None):
    return SENTINEL


def fail(value=None):
    raise LeakCheckError(value)


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    from aiomisc_c import _compat, thread_pool, utils

    if not _compat.c_available("thread_pool"):
        print(json.dumps({"skip": str(_compat._C_MISSING.get("thread_pool"))}))
        return 0
    if thread_pool.ThreadPoolExecutor is not thread_pool._CThreadPoolExecutor:
        print(json.dumps({"skip": "the C twin is not selected"}))
        return 0

    if args.loop == "uvloop":
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
        """Mixes every path: Threaded via the default executor, direct submit
        with kwargs, BoundThreaded, exceptions, futures cancelled before
        they run and awaiters cancelled while waiting."""
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

    async def settle():
        for _ in range(10):
            await asyncio.sleep(0.01)

    def measure():
        loop.run_until_complete(settle())
        gc.collect()
        return {
            "work": sys.getrefcount(work),
            "fail": sys.getrefcount(fail),
            "sentinel": sys.getrefcount(SENTINEL),
            "loop": sys.getrefcount(loop),
            "executor": sys.getrefcount(executor),
            "threaded_work": sys.getrefcount(threaded_work),
            "holder": sys.getrefcount(holder),
            "type:Future": sys.getrefcount(asyncio.Future),
            "type:loop": sys.getrefcount(type(loop)),
            "type:LeakCheckError": sys.getrefcount(LeakCheckError),
            "type:Threaded": sys.getrefcount(thread_pool.Threaded),
            "type:BoundThreaded": sys.getrefcount(thread_pool.BoundThreaded),
            "type:Executor": sys.getrefcount(type(executor)),
            "type:int": sys.getrefcount(int),
            "type:tuple": sys.getrefcount(tuple),
            "type:dict": sys.getrefcount(dict),
            "objects": len(gc.get_objects()),
            "memory": tracemalloc.get_traced_memory()[0],
        }

    tracemalloc.start()
    loop.run_until_complete(batch(args.warmup))
    before = measure()
    loop.run_until_complete(batch(args.calls))
    after = measure()
    tracemalloc.stop()

    executor.shutdown(wait=True)
    loop.close()
    print(json.dumps({"before": before, "after": after, "calls": args.calls}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
