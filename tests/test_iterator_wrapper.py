"""Iterators run in threads: ``threaded_iterable``,
``threaded_iterable_separate``, ``IteratorWrapper``, ``FromThreadChannel``,
the queue helpers and ``TaskChannel``.

The producers run in the pool of the twin under test (``pool`` fixture) or in
new threads; both loop kinds.
"""
import asyncio
import concurrent.futures
import itertools
import queue
import threading
import uuid

import pytest
from helpers.waiting import wait_event, wait_until

from aiomisc_c import iterator_wrapper, thread_pool
from aiomisc_c.counters import get_statistics


def stats(kind, name):
    return {
        result.metric: result.value
        for result in get_statistics(kind)
        if result.name == name
    }


def count_up(n):
    yield from range(n)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# decorators


def test_threaded_iterable_bare_and_with_arguments(implementation):
    bare = thread_pool.threaded_iterable(count_up)
    assert isinstance(bare, thread_pool.ThreadedIterable)
    assert isinstance(bare, thread_pool.ThreadedIterableBase)
    assert bare.func is count_up
    assert bare.max_size == 0
    assert list(bare.sync_call(3)) == [0, 1, 2]

    sized = thread_pool.threaded_iterable(max_size=3)(count_up)
    assert isinstance(sized, thread_pool.ThreadedIterable)
    assert sized.max_size == 3

    separate = thread_pool.threaded_iterable_separate(count_up)
    assert isinstance(separate, thread_pool.ThreadedIterableSeparate)
    assert separate.max_size == 0
    separate_sized = thread_pool.threaded_iterable_separate(max_size=2)(count_up)
    assert isinstance(separate_sized, thread_pool.ThreadedIterableSeparate)
    assert separate_sized.max_size == 2


def test_calls_build_new_wrappers(loop, pool, run):
    wrapped = thread_pool.threaded_iterable(count_up, max_size=2)

    async def main():
        first, second = wrapped(3), wrapped.async_call(4)
        third = wrapped.create_wrapper(5)
        assert all(
            type(w) is thread_pool.IteratorWrapper for w in (first, second, third)
        )
        assert first is not wrapped(3)
        assert [x async for x in first] == [0, 1, 2]
        assert [x async for x in second] == [0, 1, 2, 3]
        assert [x async for x in third] == [0, 1, 2, 3, 4]

    run(main())


@pytest.mark.parametrize("separate", [False, True], ids=["pool", "separate"])
def test_producer_runs_in_a_worker_thread(loop, pool, pool_name, run, separate):
    def where():
        yield threading.current_thread().name
        yield threading.current_thread() is threading.main_thread()

    decorator = (
        thread_pool.threaded_iterable_separate if separate
        else thread_pool.threaded_iterable
    )
    wrapped = decorator(where)

    async def main():
        return [x async for x in wrapped()]

    name, in_main = run(main())
    assert in_main is False
    if separate:
        assert not name.endswith(f" from pool {pool_name}")
        assert type(wrapped()) is thread_pool.IteratorWrapperSeparate
    else:
        assert name.endswith(f" from pool {pool_name}")


class Sequences:
    def __init__(self, n):
        self.n = n


def _make_iterable_class():
    threaded_iterable = thread_pool.threaded_iterable

    class Local(Sequences):
        @threaded_iterable
        def items(self, start):
            yield from range(start, self.n)

        @threaded_iterable(max_size=1)
        @staticmethod
        def static_items(n):
            yield from range(n)

        @threaded_iterable
        @classmethod
        def class_items(cls, n):
            for i in range(n):
                yield cls, i

    return Local


def test_method_staticmethod_classmethod(loop, pool, run):
    cls = _make_iterable_class()
    obj = cls(4)
    assert isinstance(obj.items, thread_pool.BoundThreadedIterable)
    assert cls.__dict__["items"] is cls.items
    assert obj.static_items is cls.__dict__["static_items"]
    assert isinstance(cls.class_items, thread_pool.BoundThreadedIterable)

    async def main():
        assert list(obj.items.sync_call(1)) == [x async for x in obj.items(1)] == \
            [x async for x in obj.items.async_call(1)] == [1, 2, 3]
        assert list(obj.static_items.sync_call(3)) == \
            [x async for x in obj.static_items(3)] == [0, 1, 2]
        assert list(obj.class_items.sync_call(2)) == \
            [x async for x in obj.class_items(2)] == \
            [x async for x in cls.class_items(2)] == [(cls, 0), (cls, 1)]

    run(main())


# --------------------------------------------------------------------------
# IteratorWrapper behaviour


def test_items_in_order_and_statistics(loop, pool, run):
    name = unique("iter")

    async def main():
        wrapper = thread_pool.IteratorWrapper(
            lambda: count_up(1000), max_size=3, statistic_name=name,
        )
        assert wrapper.closed is False
        assert stats(iterator_wrapper.IteratorWrapperStatistic, name)["queue_size"] == 3
        items = [x async for x in wrapper]
        await asyncio.wait_for(wrapper.wait_closed(), 10)
        assert wrapper.closed is True
        counters = stats(iterator_wrapper.IteratorWrapperStatistic, name)
        return items, counters

    items, counters = run(main())
    assert items == list(range(1000))
    assert counters["yielded"] == 1000
    assert counters["enqueued"] == 1000
    assert counters["started"] == 0
    assert counters["queue_size"] == 3


def test_any_iterable_is_accepted(loop, pool, run):
    async def main():
        assert [x async for x in thread_pool.IteratorWrapper(lambda: [1, 2, 3])] == [1, 2, 3]
        assert [x async for x in thread_pool.IteratorWrapper(lambda: "ab")] == ["a", "b"]

    run(main())


def test_explicit_executor(loop, pool, run):
    foreign = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="foreign")

    def names():
        yield threading.current_thread().name

    async def main():
        wrapper = thread_pool.IteratorWrapper(names, executor=foreign)
        assert wrapper.executor is foreign
        return [x async for x in wrapper]

    try:
        [name] = run(main())
        assert name.startswith("foreign")
    finally:
        foreign.shutdown(wait=True)


def test_exception_after_ten_items_with_max_size_1(loop, pool, run):
    def gen():
        yield from range(10)
        raise ValueError("after ten")

    wrapped = thread_pool.threaded(gen)
    wrapped_small = thread_pool.threaded_iterable(gen, max_size=1)

    async def main():
        for source in (wrapped, wrapped_small):
            items = []
            with pytest.raises(ValueError, match="after ten"):
                async for item in source():
                    items.append(item)
            assert items == list(range(10))

    run(main())


def test_exception_before_the_first_item(loop, pool, run):
    def gen():
        raise KeyError("first")
        yield  # pragma: no cover

    async def main():
        items = []
        with pytest.raises(KeyError, match="first"):
            async for item in thread_pool.threaded_iterable(gen, max_size=1)():
                items.append(item)
        assert items == []

    run(main())


@pytest.mark.parametrize("max_size", [0, 1])
@pytest.mark.parametrize("use_async_with", [False, True], ids=["bare", "async-with"])
def test_finally_runs_after_break(loop, pool, pool_name, run, max_size, use_async_with):
    finalized = threading.Event()
    finally_thread = []
    limit = 10_000 if max_size == 0 else None

    def gen():
        try:
            for i in itertools.count():
                if limit is not None and i >= limit:
                    return
                yield i
        finally:
            finally_thread.append(threading.current_thread().name)
            finalized.set()

    wrapped = thread_pool.threaded_iterable(gen, max_size=max_size)

    async def main():
        wrapper = wrapped()
        if use_async_with:
            async with wrapper:
                async for item in wrapper:
                    assert item == 0
                    break
            # breaking dropped the proxy, which closed the wrapper already, so
            # __aexit__ had nothing to wait for (as in 17.x)
            await wait_event(finalized)
            await asyncio.wait_for(wrapper.wait_closed(), 10)
        else:
            async for item in wrapper:
                assert item == 0
                break
            # the proxy was dropped: its finalizer closes the wrapper
            await wait_event(finalized)
            await asyncio.wait_for(wrapper.wait_closed(), 10)
        assert wrapper.closed
        # the worker is free again
        await wait_until(lambda: get_done(pool_name) >= 1, message="producer done")

    run(main())
    assert finally_thread[0].endswith(f" from pool {pool_name}")


@pytest.mark.parametrize("max_size", [0, 1])
def test_aexit_waits_for_the_producer(loop, pool, run, max_size):
    finalized = threading.Event()

    def gen():
        try:
            yield from range(10_000)
        finally:
            finalized.set()

    async def main():
        async with thread_pool.threaded_iterable(gen, max_size=max_size)() as wrapper:
            assert await wrapper.__anext__() == 0
            assert await wrapper.__anext__() == 1
        # __aexit__ closed the wrapper and waited for the producer to finish
        assert finalized.is_set()
        assert wrapper.closed

    run(main())


def get_done(name):
    return stats(thread_pool.ThreadPoolStatistic, name).get("done", 0)


def test_async_with_starts_the_producer(loop, pool, run):
    started = threading.Event()

    def gen():
        started.set()
        yield 1

    async def main():
        wrapper = thread_pool.threaded_iterable(gen)()
        await asyncio.sleep(0.1)
        assert not started.is_set(), "the producer started before being asked"
        async with wrapper:
            await wait_event(started)
            assert [x async for x in wrapper] == [1]

    run(main())


def test_close_unblocks_a_producer_on_a_full_buffer(loop, pool, pool_name, run):
    finalized = threading.Event()
    name = unique("full")

    def gen():
        try:
            yield from itertools.count()
        finally:
            finalized.set()

    async def main():
        wrapper = thread_pool.IteratorWrapper(gen, max_size=1, statistic_name=name)
        iterator = wrapper.__aiter__()
        assert await iterator.__anext__() == 0
        # let the producer fill the buffer and block on put()
        await wait_until(
            lambda: stats(iterator_wrapper.IteratorWrapperStatistic, name)["enqueued"] >= 2,
            message="the producer to fill the buffer",
        )
        assert stats(iterator_wrapper.IteratorWrapperStatistic, name)["started"] == 1
        await asyncio.wait_for(wrapper.close(), 10)
        assert finalized.is_set()
        assert wrapper.closed
        assert stats(iterator_wrapper.IteratorWrapperStatistic, name)["started"] == 0

    run(main())


@pytest.mark.parametrize("pool_size", [2])
def test_separate_consumer_break_leaves_no_thread(loop, pool, run):
    finalized = threading.Event()

    def gen():
        try:
            yield from itertools.count()
        finally:
            finalized.set()

    wrapped = thread_pool.threaded_iterable_separate(gen, max_size=1)

    async def main():
        before = set(threading.enumerate())
        wrapper = wrapped()
        async for item in wrapper:
            assert item == 0
            break
        await wait_event(finalized)
        await asyncio.wait_for(wrapper.wait_closed(), 10)
        await wait_until(
            lambda: not (set(threading.enumerate()) - before),
            message="the producer thread to exit",
        )

    run(main())


def test_aiter_requires_a_running_loop(loop, pool):
    wrapper = thread_pool.IteratorWrapper(lambda: count_up(1), loop=loop)
    assert wrapper.loop is loop
    with pytest.raises(RuntimeError, match="Event loop is not running"):
        wrapper.__aiter__()


# --------------------------------------------------------------------------
# FromThreadChannel


def test_from_thread_channel_bounded_feed(loop, pool, run):
    channel = iterator_wrapper.FromThreadChannel(maxsize=2)
    assert isinstance(channel.queue, iterator_wrapper.QueueWrapper)

    def feed():
        with channel:
            for i in range(10):
                channel.put(i)

    async def main():
        producer = threading.Thread(target=feed)
        producer.start()
        items = []
        try:
            while True:
                items.append(await asyncio.wait_for(channel.get(), 10))
        except iterator_wrapper.ChannelClosed:
            pass
        producer.join(10)
        assert not producer.is_alive()
        return items

    assert run(main()) == list(range(10))
    assert channel.is_closed


def test_from_thread_channel_buffered_items_after_close(loop, pool, run):
    channel = iterator_wrapper.FromThreadChannel()
    assert isinstance(channel.queue, iterator_wrapper.DequeWrapper)
    assert channel.is_closed is False
    for i in range(3):
        channel.put(i)
    channel.close()
    assert channel.is_closed is True
    with pytest.raises(iterator_wrapper.ChannelClosed):
        channel.put(4)
    assert issubclass(iterator_wrapper.ChannelClosed, RuntimeError)

    async def main():
        items = [await channel, await channel.get(), await channel]
        with pytest.raises(iterator_wrapper.ChannelClosed):
            await asyncio.wait_for(channel.get(), 10)
        return items

    assert run(main()) == [0, 1, 2]


def test_from_thread_channel_waits_while_open_and_empty(loop, pool, run):
    channel = iterator_wrapper.FromThreadChannel()

    async def main():
        getter = asyncio.ensure_future(channel.get())
        await asyncio.sleep(0.05)
        assert not getter.done()
        timer = threading.Timer(0.05, channel.put, args=("late",))
        timer.start()
        try:
            assert await asyncio.wait_for(getter, 10) == "late"
        finally:
            timer.join()

    run(main())


def test_queue_helpers(implementation):
    unbounded = iterator_wrapper.make_queue()
    assert isinstance(unbounded, iterator_wrapper.DequeWrapper)
    assert isinstance(unbounded, iterator_wrapper.QueueWrapperBase)
    with pytest.raises(queue.Empty):
        unbounded.get()
    unbounded.put(1)
    unbounded.put(2)
    assert (unbounded.get(), unbounded.get()) == (1, 2)

    bounded = iterator_wrapper.make_queue(max_size=1)
    assert isinstance(bounded, iterator_wrapper.QueueWrapper)
    bounded.put("x")
    assert bounded.get() == "x"
    with pytest.raises(queue.Empty):
        bounded.get()
    assert isinstance(iterator_wrapper.make_queue(0), iterator_wrapper.DequeWrapper)


# --------------------------------------------------------------------------
# TaskChannel (semi-internal in aiomisc 17)


def test_task_channel_close_releases_500_consumers(implementation):
    channel = thread_pool.TaskChannel()
    assert isinstance(channel, queue.SimpleQueue)
    assert isinstance(channel.closed_event, type(threading.Event()))
    assert issubclass(thread_pool.TaskChannelCloseException, RuntimeError)

    channel.put("item")
    assert channel.get() == "item"

    released = []
    lock = threading.Lock()

    def consumer():
        try:
            channel.get()
        except thread_pool.TaskChannelCloseException:
            with lock:
                released.append(1)

    consumers = [threading.Thread(target=consumer) for _ in range(500)]
    for thread in consumers:
        thread.start()
    channel.close()
    assert channel.closed_event.is_set()
    for thread in consumers:
        thread.join(30)
    assert not any(t.is_alive() for t in consumers)
    assert len(released) == 500
    with pytest.raises(thread_pool.TaskChannelCloseException):
        channel.get()
