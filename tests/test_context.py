"""``aiomisc_c.context``: the per-loop store of awaitable values.

Not twinned: the local ``loop`` fixture overrides the conftest one and makes
a fresh loop of each kind (asyncio, uvloop) only.
"""
import asyncio
import threading

import pytest

from aiomisc_c import context, counters
from aiomisc_c.context import Context, ContextStatistic, get_context

@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_module_names():
    assert context.__all__ == ("Context", "get_context")
    assert issubclass(ContextStatistic, counters.Statistic)
    assert ContextStatistic.__metrics__ == frozenset({"get", "set"})


def test_get_returns_pending_future(loop):
    ctx = Context(loop)
    future = ctx["missing"]
    assert isinstance(future, asyncio.Future)
    assert not future.done()
    assert ctx["missing"] is future
    ctx.close()


def test_set_then_get(run, loop):
    ctx = Context(loop)

    async def main():
        ctx["key"] = "value"
        await asyncio.sleep(0)
        assert await ctx["key"] == "value"

    run(main())
    ctx.close()


def test_waiting_reader_gets_value(run, loop):
    """Two "services": A awaits the key, B sets it later; either order."""
    ctx = Context(loop)

    async def reader():
        return await ctx["test"]

    async def writer():
        await asyncio.sleep(0.1)
        ctx["test"] = True

    async def main():
        results = await asyncio.gather(reader(), writer())
        assert results[0] is True
        results = await asyncio.gather(writer(), reader())
        assert results[1] is True

    run(main())
    ctx.close()


def test_successive_values(run, loop):
    ctx = Context(loop)

    async def main():
        seen = []
        for value in (True, False, None):
            ctx["key"] = value
            await asyncio.sleep(0.01)
            seen.append(await ctx["key"])
        assert seen == [True, False, None]

    run(main())
    ctx.close()


def test_set_is_asynchronous(run, loop):
    ctx = Context(loop)

    async def main():
        ctx["key"] = 1
        await asyncio.sleep(0.01)
        ctx["key"] = 2
        # Not applied yet: the update runs on a later loop iteration.
        assert ctx["key"].result() == 1
        await asyncio.sleep(0.01)
        assert ctx["key"].result() == 2

    run(main())
    ctx.close()


def test_set_from_thread(run, loop):
    ctx = Context(loop)

    async def main():
        waiting = ctx["key"]
        thread = threading.Thread(target=ctx.__setitem__, args=("key", 42))
        thread.start()
        assert await asyncio.wait_for(waiting, 30) == 42
        thread.join(30)

    run(main())
    ctx.close()


def test_cancelled_reader_does_not_break_key(run, loop):
    ctx = Context(loop)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ctx["key"], 0.01)
        ctx["key"] = "ok"
        await asyncio.sleep(0.01)
        assert await ctx["key"] == "ok"

    run(main())
    ctx.close()


def test_get_context(run, loop):
    ctx = Context(loop)
    assert get_context(loop) is ctx

    async def main():
        assert get_context() is ctx

    run(main())
    # A newer context replaces the older one.
    newer = Context(loop)
    assert get_context(loop) is newer
    newer.close()


def test_get_context_default_is_current_loop(loop):
    ctx = Context(loop)
    # new_event_loop() made ``loop`` the current loop of this thread.
    assert get_context() is ctx
    ctx.close()


def test_close(loop):
    ctx = Context(loop)
    ctx["a"]
    ctx.close()
    with pytest.raises(KeyError):
        get_context(loop)


def test_close_removes_newer_context(loop):
    older = Context(loop)
    Context(loop)
    older.close()
    with pytest.raises(KeyError):
        get_context(loop)


def test_get_context_without_context(loop):
    with pytest.raises(KeyError):
        get_context(loop)


def test_get_context_closed_loop(loop):
    ctx = Context(loop)
    loop.close()
    with pytest.raises(RuntimeError, match="event loop is closed"):
        get_context(loop)
    ctx.close()


def test_statistic(run, loop):
    ctx = Context(loop)

    async def main():
        ctx["a"] = 1
        ctx["b"] = 2
        await asyncio.sleep(0.01)
        await ctx["a"]
        await ctx["b"]
        ctx["c"]

    run(main())
    assert dict(ctx._statistic) == {"get": 3, "set": 2}
    # get_statistics reports this instance's counters.
    reported = [
        tuple(result) for result in counters.get_statistics(ContextStatistic)
    ]
    assert (ContextStatistic, None, "get", 3) in reported
    assert (ContextStatistic, None, "set", 2) in reported
    ctx.close()


@pytest.mark.parametrize("bad", [None, 42, "loop"])
def test_bad_loop(bad):
    with pytest.raises(TypeError):
        Context(bad)
