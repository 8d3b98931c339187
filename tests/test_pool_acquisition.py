"""What ``PoolBase.acquire()`` returns, on both twins (``aiomisc_c._pool``
and ``aiomisc_c._pool_py``) and both loops: the check of an idle instance
driven by the acquisition itself, whatever the check does (finish at once,
suspend, fail, raise, be cancelled, be closed), and the coroutine protocol of
the awaitable ``__aenter__()`` returns.
"""
import asyncio
import logging

import pytest

from aiomisc_c import _compat
from aiomisc_c import pool as pool_module
from aiomisc_c.pool import ContextManager, PoolBase


class Pool(PoolBase):
    """``check`` is an async function of the instance (the test sets it);
    ``created`` / ``destroyed`` list what happened."""

    def __init__(self, *args, **kwargs):
        self.created = []
        self.destroyed = []
        self.check = None
        super().__init__(*args, **kwargs)

    async def _create_instance(self):
        instance = f"instance-{len(self.created)}"
        self.created.append(instance)
        return instance

    async def _destroy_instance(self, instance):
        self.destroyed.append(instance)

    async def _check_instance(self, instance):
        if self.check is None:
            return True
        return await self.check(instance)


async def ready_pool(**kwargs):
    """A pool whose one instance was created and is idle now."""
    pool = Pool(maxsize=1, **kwargs)
    async with pool.acquire():
        pass
    assert list(pool._idle) == ["instance-0"]
    return pool


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_acquire_returns_the_current_twin(run, implementation):
    async def main():
        pool = await ready_pool()
        manager = pool.acquire()
        twin = pool_module._CAcquisition if implementation == "c" else (
            pool_module._PyAcquisition
        )
        assert type(manager) is twin
        assert isinstance(manager, ContextManager)
        assert _compat.implementation["pool"] == implementation
        await pool.close()

    run(main())


def test_ready_instance_goes_in_use_and_comes_back(run):
    async def main():
        pool = await ready_pool()
        async with pool.acquire() as instance:
            assert instance == "instance-0"
            assert pool._used == {instance}
            assert not pool._idle
        assert not pool._used
        assert list(pool._idle) == ["instance-0"]
        assert pool.created == ["instance-0"]
        await pool.close()

    run(main())


def test_check_that_suspends(run):
    async def main():
        pool = await ready_pool()
        checked = []

        async def check(instance):
            await asyncio.sleep(0)
            checked.append(instance)
            await asyncio.sleep(0.001)
            return True

        pool.check = check
        async with pool.acquire() as instance:
            assert instance == "instance-0"
        assert checked == ["instance-0"]
        assert pool.created == ["instance-0"]
        await pool.close()

    run(main())


def test_check_that_suspends_then_says_no(run):
    async def main():
        pool = await ready_pool()

        async def check(instance):
            await asyncio.sleep(0)
            return instance != "instance-0"

        pool.check = check
        async with pool.acquire() as instance:
            assert instance == "instance-1"
        await settle()
        assert pool.destroyed == ["instance-0"]
        assert len(pool) == 1
        await pool.close()

    run(main())


def test_check_that_raises_after_suspending(run, caplog):
    async def main():
        pool = await ready_pool()

        async def check(instance):
            await asyncio.sleep(0)
            if instance == "instance-0":
                raise LookupError("gone")
            return True

        pool.check = check
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.pool"):
            async with pool.acquire() as instance:
                assert instance == "instance-1"
        records = [r for r in caplog.records if "Check instance" in r.message]
        assert len(records) == 1
        assert records[0].getMessage() == "Check instance 'instance-0' failed"
        assert isinstance(records[0].exc_info[1], LookupError)
        await settle()
        assert pool.destroyed == ["instance-0"]
        await pool.close()

    run(main())


def test_cancelled_during_check_puts_the_instance_back(run):
    async def main():
        pool = await ready_pool()
        started = asyncio.Event()

        async def check(instance):
            started.set()
            await asyncio.sleep(3600)
            return True

        pool.check = check

        async def user():
            async with pool.acquire():
                raise AssertionError("never entered")

        task = asyncio.ensure_future(user())
        await started.wait()
        assert not pool._idle
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # unchecked, but not lost: idle again, nothing destroyed or created
        assert list(pool._idle) == ["instance-0"]
        assert not pool._used
        pool.check = None
        async with pool.acquire() as instance:
            assert instance == "instance-0"
        assert pool.created == ["instance-0"] and not pool.destroyed
        await pool.close()

    run(main())


def test_cancelled_during_check_hands_the_instance_to_a_waiter(run):
    async def main():
        pool = await ready_pool()
        started = asyncio.Event()

        async def check(instance):
            if not started.is_set():
                started.set()
                await asyncio.sleep(3600)
            return True

        pool.check = check

        async def user():
            async with pool.acquire() as instance:
                return instance

        first = asyncio.ensure_future(user())
        await started.wait()
        second = asyncio.ensure_future(user())
        await settle()
        assert not second.done()        # waits: no slot, nothing idle
        first.cancel()
        assert await asyncio.wait_for(second, 5) == "instance-0"
        assert first.cancelled()
        assert pool.created == ["instance-0"]
        await pool.close()

    run(main())


def test_closing_the_awaitable_during_check_puts_the_instance_back(run):
    async def main():
        pool = await ready_pool()
        closed = []

        async def check(instance):
            try:
                await asyncio.sleep(3600)
            except GeneratorExit:
                closed.append(instance)
                raise
            return True

        pool.check = check
        manager = pool.acquire()
        iterator = manager.__aenter__().__await__()
        future = iterator.send(None)        # suspended inside the check
        assert isinstance(future, asyncio.Future)
        assert not pool._idle
        iterator.close()
        assert closed == ["instance-0"]
        assert list(pool._idle) == ["instance-0"]
        iterator.close()                    # closing again is a no-op
        future.cancel()
        pool.check = None
        async with pool.acquire() as instance:
            assert instance == "instance-0"
        await pool.close()

    run(main())


def test_throw_into_the_check(run, caplog):
    """An exception thrown in while the check waits is the check's: an
    ``Exception`` replaces the instance, a cancellation gives it back."""
    async def main():
        pool = await ready_pool()

        async def check(instance):
            await asyncio.sleep(3600)
            return True

        pool.check = check
        iterator = pool.acquire().__aenter__().__await__()
        future = iterator.send(None)
        with pytest.raises(asyncio.CancelledError):
            iterator.throw(asyncio.CancelledError())
        future.cancel()
        assert list(pool._idle) == ["instance-0"]

        pool.check = check
        manager = pool.acquire()
        iterator = manager.__aenter__().__await__()
        future = iterator.send(None)
        pool.check = None       # the replacement's check passes
        with caplog.at_level(logging.ERROR, logger="aiomisc_c.pool"):
            with pytest.raises(StopIteration) as stop:
                # replaced at once: the new instance needs no suspension
                iterator.throw(LookupError("thrown"))
        future.cancel()
        assert stop.value.value == "instance-1"
        assert "Check instance 'instance-0' failed" in caplog.text
        await manager.__aexit__(None, None, None)
        await settle()
        assert pool.destroyed == ["instance-0"]
        await pool.close()

    run(main())


def test_check_returning_a_value_to_a_thrown_exception(run):
    async def main():
        pool = await ready_pool()

        async def check(instance):
            try:
                await asyncio.sleep(3600)
            except KeyError:
                return True     # the check swallows it and says yes
            return False

        pool.check = check
        manager = pool.acquire()
        iterator = manager.__aenter__().__await__()
        future = iterator.send(None)
        with pytest.raises(StopIteration) as stop:
            iterator.throw(KeyError("ignored"))
        future.cancel()
        assert stop.value.value == "instance-0"
        assert pool._used == {"instance-0"}
        await manager.__aexit__(None, None, None)
        assert list(pool._idle) == ["instance-0"]
        await pool.close()

    run(main())


def test_the_awaitable_follows_the_coroutine_protocol(run):
    async def main():
        pool = await ready_pool()
        manager = pool.acquire()
        awaitable = manager.__aenter__()
        assert asyncio.iscoroutine(awaitable)
        iterator = awaitable.__await__()
        with pytest.raises(TypeError, match="non-None"):
            iterator.send(1)
        if hasattr(awaitable, "close"):
            awaitable.close()

        awaitable = manager.__aenter__()
        assert await awaitable == "instance-0"
        with pytest.raises(RuntimeError, match="cannot reuse already awaited"):
            await awaitable
        await manager.__aexit__(None, None, None)

        # thrown in before the first step: raised as it is, nothing taken
        awaitable = pool.acquire().__aenter__()
        with pytest.raises(KeyError):
            awaitable.throw(KeyError("early"))
        assert list(pool._idle) == ["instance-0"]
        await pool.close()

    run(main())


def test_create_task_of_the_awaitable(run):
    async def main():
        pool = await ready_pool()
        manager = pool.acquire()
        instance = await asyncio.get_running_loop().create_task(
            manager.__aenter__(),
        )
        assert instance == "instance-0"
        await manager.__aexit__(None, None, None)
        await pool.close()

    run(main())


def test_exit_without_enter_is_refused(run):
    async def main():
        pool = await ready_pool()
        with pytest.raises(RuntimeError, match="not entered"):
            await pool.acquire().__aexit__(None, None, None)
        assert list(pool._idle) == ["instance-0"]
        await pool.close()

    run(main())


def test_reuse_allowed_after_a_failed_enter(run):
    """As in aiomisc: only a successful enter makes a manager used."""
    async def main():
        pool = await ready_pool()
        manager = pool.acquire()

        async def check(instance):
            raise asyncio.CancelledError

        pool.check = check
        with pytest.raises(asyncio.CancelledError):
            await manager.__aenter__()
        pool.check = None
        async with manager as instance:
            assert instance == "instance-0"
        with pytest.raises(RuntimeError, match="Reuse"):
            await manager.__aenter__()
        await pool.close()

    run(main())


def test_a_free_slot_is_used_before_an_idle_instance(run):
    async def main():
        pool = Pool(maxsize=2)
        async with pool.acquire():
            pass
        async with pool.acquire() as instance:
            # a slot was free: a second instance exists now, the oldest
            # idle one is still preferred
            assert instance == "instance-0"
        assert pool.created == ["instance-0", "instance-1"]
        assert sorted(pool._idle) == ["instance-0", "instance-1"]
        await pool.close()

    run(main())


def test_hot_parts_survive_close(run):
    async def main():
        pool = await ready_pool()
        hot = pool._hot
        await pool.close()
        assert hot[0] is pool._idle and hot[3] is pool._used
        assert hot[4] is pool._waiters and hot[6] is pool._released

    run(main())


def test_acquisition_arguments():
    for twin in (pool_module._PyAcquisition, pool_module._CAcquisition):
        if twin is None:
            continue
        with pytest.raises(TypeError):
            twin()
        with pytest.raises(TypeError):
            twin(1, 2)
        with pytest.raises(TypeError):
            twin(pool=1)


def test_closing_the_awaitable_while_waiting_leaves_no_waiter(run):
    """Regression: an acquisition closed while it waited for a release left
    its waiter behind, and the next release handed the instance to nobody."""
    async def main():
        pool = await ready_pool()
        holding = pool.acquire()
        await holding.__aenter__()
        iterator = pool.acquire().__aenter__().__await__()
        iterator.send(None)                 # waiting: nothing idle, no slot
        assert len(pool._waiters) == 1
        iterator.close()
        await holding.__aexit__(None, None, None)
        assert list(pool._idle) == ["instance-0"]
        async with pool.acquire() as instance:
            assert instance == "instance-0"
        await pool.close()

    run(main())
