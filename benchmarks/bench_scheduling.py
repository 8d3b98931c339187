"""Scheduling and batching: ``@aggregate``, ``PoolBase``, ``PeriodicCallback``.

* ``aggregate_max_count``: 100 callers gathered at once into a function
  decorated with ``@aggregate(leeway_ms=1000, max_count=100)``: each batch
  closes when its hundredth argument arrives. ns per call (gather included;
  its cost alone is the floor ``gather_100``).
* ``aggregate_leeway``: the same with ``@aggregate(leeway_ms=0.001)``: each
  batch closes on its timer.
* ``pool_acquire``: ``async with pool.acquire()`` of a ready instance (a
  ``PoolBase`` of one instance, created beforehand), nothing done inside.
* ``periodic_async`` / ``periodic_sync``: ticks of a ``PeriodicCallback``
  started with an interval of 1 ns, calling a no-op coroutine function /
  plain function; ns per tick, from start to the last tick. Their floor,
  ``timer_chain``, is a chain of bare ``loop.call_later`` callbacks.

Subjects: ``C`` (aiomisc_c with its C extensions: the pool's acquisition is
``aiomisc_c._pool``), ``Py`` (``AIOMISC_C_NO_EXTENSIONS=1``: its Python twin)
and aiomisc 17.x.  ``@aggregate`` and ``PeriodicCallback`` have no C twin:
both aiomisc_c subjects run the same Python code for them.

What bounds each ratio:

* ``aggregate_*``: every caller is a coroutine run by a task of the gather
  (the floor ``gather_100``), and every caller but the last suspends once,
  on a future of its own, until the batch has run: one more task step, and
  one ``loop.call_soon`` to wake it, per call (``gather_100_suspended``: 100
  gathered coroutines that each await a private future the last one sets).
  Only the bookkeeping above that second floor is the aggregator's own.
* ``pool_acquire``: the body is an ``async with`` (the floor
  ``plain_async_with``: two trivial coroutines) plus what no implementation
  avoids: making the context manager and running the subclass's own
  ``_check_instance`` coroutine.  The C twin adds no coroutine or task of its
  own; the Python twin adds its ``__aenter__`` coroutine.
* ``periodic_*``: one loop timer per tick (the floor ``timer_chain``).

Run alone: ``python -m benchmarks --only scheduling``.
"""
import asyncio
from typing import Any, Dict, List

from ._harness import (
    AIOMISC, AIOMISC_C, AIOMISC_C_PY, Case, Fixture, aiomisc_c_facts,
    import_peer, loop_policy, require_aiomisc_c,
)

TITLE = "Scheduling and batching"

SUBJECTS = (AIOMISC_C, AIOMISC_C_PY, AIOMISC)
BASELINE = AIOMISC.name
REFERENCES = ()
LOOPS = ("asyncio", "uvloop")

CASES = (
    Case("aggregate_max_count",
         "@aggregate(max_count=100): 100 gathered calls per batch",
         ops=100, iterations=300, floor="gather_100_suspended",
         short="aggregate, max_count"),
    Case("aggregate_leeway",
         "@aggregate(leeway_ms=0.001): 100 gathered calls per batch",
         ops=100, iterations=300, floor="gather_100_suspended",
         short="aggregate, leeway"),
    Case("pool_acquire", "async with PoolBase.acquire(): ready instance",
         iterations=50_000, floor="plain_async_with", short="pool acquire"),
    Case("periodic_async", "PeriodicCallback tick, async no-op, interval 1 ns",
         iterations=20_000, floor="timer_chain", short="periodic tick (async)"),
    Case("periodic_sync", "PeriodicCallback tick, sync no-op, interval 1 ns",
         iterations=20_000, floor="timer_chain", short="periodic tick (sync)"),
    Case("gather_100", "floor: gather of 100 trivial coroutines", ops=100,
         iterations=300, kind="floor"),
    Case("gather_100_suspended",
         "floor: gather of 100 coroutines, each awaits its own future",
         ops=100, iterations=300, kind="floor"),
    Case("plain_async_with", "floor: async with a trivial context manager",
         iterations=100_000, kind="floor"),
    Case("timer_chain", "floor: a chain of loop.call_later(1 ns) callbacks",
         iterations=20_000, kind="floor"),
)


async def echo(value: Any) -> Any:
    return value


class TrivialContext:
    async def __aenter__(self) -> int:
        return 1

    async def __aexit__(self, *exc: Any) -> None:
        return None


async def suspended_gather(iterations: int) -> None:
    """100 gathered coroutines: each but the last awaits a future of its
    own; the last sets them all (what any batching of coroutine callers
    costs at least)."""
    loop = asyncio.get_running_loop()
    gather = asyncio.gather
    for _ in range(iterations):
        futures: List[asyncio.Future[int]] = []

        async def caller(value: int) -> int:
            if value == 99:
                for index, future in enumerate(futures):
                    future.set_result(index)
                return value
            future = loop.create_future()
            futures.append(future)
            return await future

        await gather(*[caller(value) for value in range(100)])


def gather_body(func: Any) -> Any:
    values = range(100)

    async def body(iterations: int) -> None:
        gather = asyncio.gather
        for _ in range(iterations):
            await gather(*[func(value) for value in values])

    return body


async def timer_chain(iterations: int) -> None:
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == iterations:
            finished.set_result(None)
        else:
            loop.call_later(1e-9, tick)

    loop.call_later(1e-9, tick)
    await finished


def pool_body(pool: Any) -> Any:
    async def body(iterations: int) -> None:
        acquire = pool.acquire
        for _ in range(iterations):
            async with acquire():
                pass

    return body


def periodic_body(module: Any, asynchronous: bool) -> Any:
    async def body(iterations: int) -> None:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            if count == iterations and not finished.done():
                finished.set_result(None)

        async def async_tick() -> None:
            tick()

        periodic = module.PeriodicCallback(async_tick if asynchronous else tick)
        periodic.start(1e-9)
        await finished
        await periodic.stop(return_exceptions=True)

    return body


def aiomisc_like(aggregate_module: Any, pool_module: Any, periodic_module: Any) -> Dict[str, Any]:
    async def squares(*values: int) -> Any:
        return [value * value for value in values]

    by_count = aggregate_module.aggregate(leeway_ms=1000, max_count=100)(squares)
    by_leeway = aggregate_module.aggregate(leeway_ms=0.001)(squares)

    class Pool(pool_module.PoolBase):
        async def _create_instance(self) -> object:
            return object()

        async def _destroy_instance(self, instance: Any) -> None:
            return None

        async def _check_instance(self, instance: Any) -> bool:
            return True

    async def make_pool() -> Any:
        pool = Pool(maxsize=1)
        async with pool.acquire():
            pass
        return pool

    pool = asyncio.get_event_loop().run_until_complete(make_pool())
    return {
        "aggregate_max_count": gather_body(by_count),
        "aggregate_leeway": gather_body(by_leeway),
        "pool_acquire": pool_body(pool),
        "periodic_async": periodic_body(periodic_module, True),
        "periodic_sync": periodic_body(periodic_module, False),
    }


def setup(subject: str, loop_kind: str) -> Fixture:
    policy = loop_policy(loop_kind)
    facts: Dict[str, Any] = {"loop_kind": loop_kind}
    asyncio.set_event_loop_policy(policy)
    loop = policy.new_event_loop()
    asyncio.set_event_loop(loop)
    bodies: Dict[str, Any] = {
        "gather_100": gather_body(echo),
        "gather_100_suspended": suspended_gather,
        "plain_async_with": pool_body(type("P", (), {"acquire": TrivialContext})),
        "timer_chain": timer_chain,
    }

    if subject in (AIOMISC_C.name, AIOMISC_C_PY.name):
        import importlib

        require_aiomisc_c(subject, "pool")
        facts.update(aiomisc_c_facts("pool"))
        bodies.update(aiomisc_like(*(
            importlib.import_module(f"aiomisc_c.{name}")
            for name in ("aggregate", "pool", "periodic")
        )))
    elif subject == AIOMISC.name:
        aiomisc_aggregate, facts["version"] = import_peer("aiomisc.aggregate")
        aiomisc_pool, _ = import_peer("aiomisc.pool")
        aiomisc_periodic, _ = import_peer("aiomisc.periodic")
        bodies.update(aiomisc_like(aiomisc_aggregate, aiomisc_pool, aiomisc_periodic))
    else:
        raise ValueError(f"unknown subject {subject!r}")

    return Fixture(loop=loop, bodies=bodies, facts=facts)


if __name__ == "__main__":
    from .run import main
    main(["--only", "scheduling"])
