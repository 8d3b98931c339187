"""``aiomisc_c.pool.PoolBase``: a pool of at most ``maxsize`` instances.

Every test runs on both twins of the acquisition (``aiomisc_c._pool`` and
``aiomisc_c._pool_py``, through the ``loop`` fixture) and both loops.
"""
import asyncio
import logging
import random

import pytest

import aiomisc_c
from aiomisc_c import pool as pool_module
from aiomisc_c.pool import ContextManager, PoolBase


class Instance:
    def __init__(self, number):
        self.number = number
        self.destroyed = False

    def __repr__(self):
        return f"<Instance {self.number}>"


class Pool(PoolBase):
    """Counts what it does; ``live`` is created minus destroyed."""

    def __init__(self, *args, **kwargs):
        self.created = []
        self.destroyed = []
        self.max_live = 0
        self.check = lambda instance: True
        super().__init__(*args, **kwargs)

    @property
    def live(self):
        return len(self.created) - len(self.destroyed)

    async def _create_instance(self):
        await asyncio.sleep(0)
        instance = Instance(len(self.created))
        self.created.append(instance)
        self.max_live = max(self.max_live, self.live)
        return instance

    async def _destroy_instance(self, instance):
        assert not instance.destroyed
        instance.destroyed = True
        self.destroyed.append(instance)

    async def _check_instance(self, instance):
        assert not instance.destroyed, instance
        return self.check(instance)


def test_names():
    assert aiomisc_c.PoolBase is PoolBase
    assert aiomisc_c.pool is pool_module
    assert pool_module.__all__ == ("ContextManager", "PoolBase")


def test_bad_arguments(run):
    async def main():
        with pytest.raises(TypeError):
            PoolBase()
        for recycle in (0, -1):
            with pytest.raises(AssertionError) as info:
                Pool(recycle=recycle)
            assert str(info.value) == "recycle should be positive number or None"
        with pytest.raises(ValueError, match="maxsize"):
            Pool(maxsize=0)
        with pytest.raises(TypeError, match="maxsize"):
            Pool(maxsize="5")

    run(main())


def test_needs_a_running_loop():
    with pytest.raises(RuntimeError):
        Pool()


def test_concurrent_cycles_stay_within_maxsize(run):
    async def main():
        pool = Pool(maxsize=5)

        async def cycle():
            async with pool.acquire() as instance:
                assert isinstance(instance, Instance)
                await asyncio.sleep(0)

        await asyncio.gather(*[cycle() for _ in range(1000)])
        assert len(pool) == 5
        assert pool.max_live == 5
        await pool.close()
        assert pool.live == 0

    run(main())


def test_random_interleavings_with_cancellation(run):
    rng = random.Random(20261206)

    async def main():
        pool = Pool(maxsize=3)
        in_use = set()

        async def worker():
            async with pool.acquire() as instance:
                assert instance not in in_use
                in_use.add(instance)
                try:
                    await asyncio.sleep(rng.choice((0, 0, 0.001)))
                finally:
                    in_use.discard(instance)

        tasks = []
        for _ in range(300):
            tasks.append(asyncio.ensure_future(worker()))
            if rng.random() < 0.5:
                await asyncio.sleep(0)
            if rng.random() < 0.3:
                rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert any(task.cancelled() for task in tasks)
        assert pool.max_live <= 3
        assert len(pool) == pool.live <= 3
        # Everything came back: three acquisitions in a row need no wait.
        for _ in range(3):
            await asyncio.wait_for(worker(), 5)
        assert not [w for w in pool._waiters if not w.done()]
        await pool.close()

    run(main())


def test_cancelled_waiter_takes_nothing(run):
    async def main():
        pool = Pool(maxsize=1)
        holding = pool.acquire()
        first = await holding.__aenter__()

        waiting = asyncio.ensure_future(pool.acquire().__aenter__())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

        await holding.__aexit__(None, None, None)
        async with pool.acquire() as again:
            assert again is first
        assert len(pool) == 1 and len(pool.created) == 1
        await pool.close()

    run(main())


def test_release_hands_instance_to_waiter(run):
    async def main():
        pool = Pool(maxsize=1)
        order = []

        async def user(name, hold):
            async with pool.acquire() as instance:
                order.append((name, instance.number))
                await asyncio.sleep(hold)

        await asyncio.gather(user("a", 0.01), user("b", 0), user("c", 0))
        assert order == [("a", 0), ("b", 0), ("c", 0)]
        await pool.close()

    run(main())


def test_failed_check_replaces_instance(run):
    async def main():
        pool = Pool(maxsize=2)
        pool.check = lambda instance: instance.number >= checked_from[0]
        checked_from = [0]
        seen = []
        for _ in range(10):
            async with pool.acquire() as instance:
                seen.append(instance)
            # Invalidate everything made so far.
            checked_from[0] = len(pool.created)
        assert len(set(map(id, seen))) == 10
        assert len(pool) <= 2
        await pool.close()

    run(main())


def test_check_raising_is_logged_and_replaced(run, caplog):
    async def main():
        pool = Pool(maxsize=1)
        async with pool.acquire() as first:
            pass

        def broken(instance):
            if instance is first:
                raise RuntimeError("check failed")
            return True

        pool.check = broken
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.pool"):
            async with pool.acquire() as second:
                assert second is not first
        assert "Check instance" in caplog.text
        await asyncio.sleep(0.01)
        assert first.destroyed and not second.destroyed
        assert len(pool) == 1
        await pool.close()

    run(main())


def test_failed_creation_gives_slot_back(run):
    async def main():
        pool = Pool(maxsize=1)
        real_create = pool._create_instance
        failures = [RuntimeError("no connection")]

        async def flaky():
            if failures:
                raise failures.pop()
            return await real_create()

        pool._create_instance = flaky
        with pytest.raises(RuntimeError, match="no connection"):
            async with pool.acquire():
                pass
        async with pool.acquire() as instance:
            assert instance.number == 0
        assert len(pool) == 1
        await pool.close()

    run(main())


def test_recycle_deadline_has_jitter(run, monkeypatch):
    monkeypatch.setattr(pool_module, "random", lambda: 0.5)

    async def main():
        pool = Pool(maxsize=1, recycle=10)
        before = pool.loop.time()
        async with pool.acquire() as instance:
            deadline = pool._recycle_times[instance]
        after = pool.loop.time()
        assert before + 15 <= deadline <= after + 15
        await pool.close()

    run(main())


def test_recycled_on_release_after_deadline(run):
    async def main():
        pool = Pool(maxsize=1, recycle=0.05)
        async with pool.acquire() as first:
            # Twice the longest deadline (recycle * 2).
            await asyncio.sleep(0.15)
        async with pool.acquire() as second:
            pass
        assert second is not first
        await asyncio.sleep(0.01)
        assert first.destroyed
        assert len(pool) == 1
        await pool.close()

    run(main())


def test_recycling_wakes_a_waiting_acquirer(run):
    async def main():
        pool = Pool(maxsize=1, recycle=0.05)
        holding = pool.acquire()
        first = await holding.__aenter__()
        waiting = asyncio.ensure_future(pool.acquire().__aenter__())
        await asyncio.sleep(0.15)
        assert not waiting.done()
        await holding.__aexit__(None, None, None)   # recycled: slot freed
        second = await asyncio.wait_for(waiting, 5)
        assert second is not first
        assert len(pool) == 1
        await pool.close()

    run(main())


def test_reuse_of_context_manager(run):
    async def main():
        pool = Pool(maxsize=1)
        manager = pool.acquire()
        assert isinstance(manager, ContextManager)
        async with manager:
            pass
        with pytest.raises(RuntimeError) as info:
            async with manager:
                pass
        assert str(info.value) == "Reuse of context manager is not acceptable"
        await pool.close()

    run(main())


def test_context_manager_on_its_own(run):
    events = []

    async def enter():
        events.append("enter")
        return 42

    async def leave(value):
        events.append(("exit", value))

    async def main():
        async with ContextManager(enter, leave) as value:
            assert value == 42

    run(main())
    assert events == ["enter", ("exit", 42)]


def test_close_destroys_everything_concurrently(run):
    async def main():
        pool = Pool(maxsize=4)
        started = []
        all_started = asyncio.Event()

        async def destroy(instance):
            started.append(instance)
            if len(started) == 4:
                all_started.set()
            # Each waits for the others: sequential destruction would hang.
            await all_started.wait()

        pool._destroy_instance = destroy
        managers = [pool.acquire() for _ in range(4)]
        for manager in managers[:2]:
            await manager.__aenter__()
        async with managers[2], managers[3]:
            pass
        await pool.close(timeout=10)
        assert len(started) == 4
        assert not pool._tasks

    run(main())


def test_close_is_bounded_by_timeout(run, caplog):
    async def main():
        pool = Pool(maxsize=1)
        async with pool.acquire():
            pass

        async def hang(instance):
            await asyncio.Event().wait()

        pool._destroy_instance = hang
        with pytest.raises(asyncio.TimeoutError):
            await pool.close(timeout=0.05)
        assert not pool._tasks

    run(main())


def test_destroy_errors_are_logged(run, caplog):
    async def main():
        pool = Pool(maxsize=2)
        async with pool.acquire(), pool.acquire():
            pass

        async def broken(instance):
            raise RuntimeError("cannot destroy")

        pool._destroy_instance = broken
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.pool"):
            await pool.close()
        assert caplog.text.count("RuntimeError: cannot destroy") == 2

    run(main())


def test_acquire_in_an_async_exit_stack(run):
    from contextlib import AsyncExitStack

    async def main():
        pool = Pool(maxsize=2, recycle=60)
        async with AsyncExitStack() as stack:
            first = await stack.enter_async_context(pool.acquire())
            second = await stack.enter_async_context(pool.acquire())
            assert first is not second
            assert pool._used == {first, second}
        assert not pool._used and len(pool._idle) == 2
        await pool.close()

    run(main())
