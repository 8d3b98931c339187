"""Iterate a (blocking) generator in a worker thread from async code.

:class:`IteratorWrapper` runs ``gen_func()`` in an executor and hands its
items to the event loop through a :class:`FromThreadChannel`.  The channel
wakes a waiting consumer with one ``call_soon_threadsafe`` when an item or
the close arrives (no polling); a producer on a bounded channel blocks while
the buffer is full.
"""
import asyncio
import inspect
import threading
from abc import abstractmethod
from asyncio.events import _get_running_loop
from collections import deque
from concurrent.futures import Executor
from queue import Empty as QueueEmpty, Queue
from types import TracebackType
from typing import (
    Any, AsyncIterator, Awaitable, Callable, Deque, Generator, Generic,
    Iterable, NoReturn, Optional, ParamSpec, Tuple, Type, TypeVar,
)
from weakref import finalize

from .compat import EventLoopMixin
from .counters import Statistic

__all__ = (
    "ChannelClosed",
    "DequeWrapper",
    "FromThreadChannel",
    "FuncType",
    "GenType",
    "IteratorProxy",
    "IteratorWrapper",
    "IteratorWrapperStatistic",
    "QueueWrapper",
    "QueueWrapperBase",
    "make_queue",
)

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

GenType = Generator[T, None, None]
FuncType = Callable[[], GenType[Any]]


class ChannelClosed(RuntimeError):
    pass


class QueueWrapperBase:
    @abstractmethod
    def put(self, item: Any) -> None:
        raise NotImplementedError

    def get(self) -> Any:
        raise NotImplementedError


class DequeWrapper(QueueWrapperBase):
    """Unbounded; ``get()`` raises ``queue.Empty`` when empty."""

    __slots__ = ("queue",)

    def __init__(self) -> None:
        self.queue: Deque[Any] = deque()

    def get(self) -> Any:
        try:
            return self.queue.popleft()
        except IndexError:
            raise QueueEmpty from None

    def put(self, item: Any) -> None:
        self.queue.append(item)


class QueueWrapper(QueueWrapperBase):
    """Bounded: ``put`` blocks while full, ``get`` never blocks."""

    __slots__ = ("queue",)

    def __init__(self, max_size: int) -> None:
        self.queue: "Queue[Any]" = Queue(maxsize=max_size)

    def put(self, item: Any) -> None:
        self.queue.put(item)

    def get(self) -> Any:
        return self.queue.get_nowait()


def make_queue(max_size: int = 0) -> QueueWrapperBase:
    if max_size > 0:
        return QueueWrapper(max_size)
    return DequeWrapper()


def _wake(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


class FromThreadChannel:
    """Items from a thread (``put``) to a coroutine (``await channel.get()``).

    Buffered items are returned even after ``close()``; closed and empty
    raises :class:`ChannelClosed`.  A consumer finding the channel empty
    registers a waiter future; ``put``/``close`` resolve it thread-safely.
    """

    # 17.x polling constants, kept for compatibility (not used).
    SLEEP_LOW_THRESHOLD = 0.0001
    SLEEP_DIFFERENCE_DIVIDER = 10

    __slots__ = ("queue", "__closed", "__lock", "__waiter", "__weakref__")

    def __init__(self, maxsize: int = 0):
        self.queue: QueueWrapperBase = make_queue(max_size=maxsize)
        self.__closed = False
        self.__lock = threading.Lock()
        self.__waiter: Optional[
            Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]
        ] = None

    def close(self) -> None:
        self.__closed = True
        self.__notify()

    @property
    def is_closed(self) -> bool:
        return self.__closed

    def __enter__(self) -> "FromThreadChannel":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def put(self, item: Any) -> None:
        """Add ``item`` (blocks while a bounded channel is full)."""
        if self.__closed:
            raise ChannelClosed
        self.queue.put(item)
        self.__notify()

    def __notify(self) -> None:
        # Checked without the lock first: the common case has no waiter.
        if self.__waiter is None:
            return
        with self.__lock:
            waiter, self.__waiter = self.__waiter, None
        if waiter is None:
            return
        loop, future = waiter
        if loop is _get_running_loop():
            _wake(future)
            return
        try:
            loop.call_soon_threadsafe(_wake, future)
        except RuntimeError:    # the consumer's loop is closed
            pass

    def __await__(self) -> Generator[Any, None, Any]:
        while True:
            try:
                return self.queue.get()
            except QueueEmpty:
                pass
            if self.__closed:
                raise ChannelClosed

            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            with self.__lock:
                # Re-check under the lock: a put/close that ran before this
                # point is visible now, a later one sees our waiter.
                try:
                    return self.queue.get()
                except QueueEmpty:
                    pass
                if self.__closed:
                    raise ChannelClosed
                self.__waiter = (loop, waiter)
            try:
                yield from waiter.__await__()
            finally:
                if self.__waiter is not None and self.__waiter[1] is waiter:
                    with self.__lock:
                        if self.__waiter is not None \
                                and self.__waiter[1] is waiter:
                            self.__waiter = None

    async def get(self) -> Any:
        return await self


class IteratorWrapperStatistic(Statistic):
    started: int
    queue_size: int
    queue_length: int
    yielded: int
    enqueued: int


def _reraise(exc: BaseException) -> NoReturn:
    raise exc


class _CloseAwaitable:
    """What ``close()`` returns off the loop thread: awaiting it waits for
    the producer (no coroutine object exists until someone awaits)."""

    __slots__ = ("wrapper",)

    def __init__(self, wrapper: "IteratorWrapper[Any, Any]") -> None:
        self.wrapper = wrapper

    def __await__(self) -> Generator[Any, None, None]:
        return self.wrapper.wait_closed().__await__()


class IteratorWrapper(Generic[P, T], AsyncIterator[T], EventLoopMixin):
    """An async iterator over ``gen_func()``, which runs in ``executor``
    (``None``: the loop's default executor)."""

    def __init__(
        self,
        gen_func: Callable[P, Iterable[T]],
        loop: Optional[asyncio.AbstractEventLoop] = None,
        max_size: int = 0,
        executor: Optional[Executor] = None,
        statistic_name: Optional[str] = None,
    ):
        self._loop = loop
        self.executor = executor
        self.__channel = FromThreadChannel(maxsize=max_size)
        self.__gen_func: Callable[[], Iterable[T]] = gen_func
        self.__gen_task: Optional[asyncio.Future[Any]] = None
        self._statistic = IteratorWrapperStatistic(statistic_name)
        self._statistic.queue_size = max_size
        # Per-item counters are bumped in their buffers directly (no
        # descriptor call per item).
        self.__yielded = self._statistic._counter_slot("yielded")
        self._run_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self.__channel.is_closed

    def _in_thread(self) -> None:
        """The producer (runs in a worker thread)."""
        statistic = self._statistic
        channel = self.__channel
        statistic.started += 1
        try:
            with channel:
                self.__produce(channel, statistic._counter_slot("enqueued"))
        finally:
            statistic.started -= 1

    def __produce(
        self, channel: FromThreadChannel, enqueued: Tuple[Any, int],
    ) -> None:
        enqueued_buf, enqueued_i = enqueued
        try:
            iterator = iter(self.__gen_func())
        except BaseException as e:
            self.__put_error(channel, e)
            return

        is_generator = inspect.isgenerator(iterator)
        throw = iterator.throw if is_generator else _reraise  # type: ignore
        try:
            while not channel.is_closed:
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                try:
                    channel.put((item, False))
                except ChannelClosed as e:
                    # The consumer is gone: let the generator's finally
                    # blocks run here, in the worker thread.
                    del item
                    throw(e)
                    return
                del item
                enqueued_buf[enqueued_i] += 1
        except ChannelClosed:
            return
        except BaseException as e:
            self.__put_error(channel, e)
        finally:
            if is_generator:
                iterator.close()   # type: ignore[attr-defined]

    @staticmethod
    def __put_error(channel: FromThreadChannel, exc: BaseException) -> None:
        try:
            channel.put((exc, True))
        except ChannelClosed:
            pass

    def __unblock_producer(self) -> None:
        # A producer stuck in put() on a full bounded buffer needs a free
        # slot to notice the close (17.x: discard one buffered item).
        queue = self.__channel.queue
        if isinstance(queue, QueueWrapper) and queue.queue.full():
            try:
                queue.get()
            except QueueEmpty:
                pass

    def close(self) -> Awaitable[None]:
        """Close the channel; returns an awaitable done when the producer
        has finished."""
        self.__channel.close()
        self.__unblock_producer()
        loop = _get_running_loop()
        if loop is None or loop is not self._loop:
            return _CloseAwaitable(self)
        done = loop.create_future()
        task = self.__gen_task
        if task is None or task.done():
            done.set_result(None)
        else:
            task.add_done_callback(lambda _: _wake(done))
        return done

    async def wait_closed(self) -> None:
        """Wait until the producer has finished (at once if never started)."""
        task = self.__gen_task
        if task is not None and not task.done():
            await asyncio.wait((task,))

    def _run(self) -> Any:
        return self.loop.run_in_executor(self.executor, self._in_thread)

    def __on_producer_done(self, task: asyncio.Future[Any]) -> None:
        # The producer may never have run (pool shut down, cancelled): make
        # sure a waiting consumer wakes up.
        if not task.cancelled():
            task.exception()    # retrieved: no "never retrieved" warning
        self.__channel.close()

    def __start_generator(self) -> None:
        if not self.loop.is_running():
            raise RuntimeError("Event loop is not running")

        with self._run_lock:
            if self.__gen_task is not None:
                return
            gen_task = self._run()
            if gen_task is None:
                raise RuntimeError("Iterator task was not created")
            gen_task = asyncio.ensure_future(gen_task, loop=self.loop)
            gen_task.add_done_callback(self.__on_producer_done)
            self.__gen_task = gen_task

    def __aiter__(self) -> AsyncIterator[T]:
        self.__start_generator()
        return IteratorProxy(self, self.close)

    async def __anext__(self) -> T:
        channel = self.__channel
        try:
            # Fast path: a buffered item needs no suspension.
            item, is_exc = channel.queue.get()
        except QueueEmpty:
            try:
                item, is_exc = await channel
            except ChannelClosed:
                await self.wait_closed()
                raise StopAsyncIteration from None

        if is_exc:
            await self.close()
            raise item

        yielded_buf, yielded_i = self.__yielded
        yielded_buf[yielded_i] += 1
        return item  # type: ignore[no-any-return]

    async def __aenter__(self) -> "IteratorWrapper[P, T]":
        self.__start_generator()
        return self

    async def __aexit__(
        self, exc_type: Any, exc_val: Any, exc_tb: Any,
    ) -> None:
        if self.closed:
            return
        await self.close()


class IteratorProxy(Generic[T], AsyncIterator[T]):
    """Returned by ``IteratorWrapper.__aiter__``: its garbage collection
    closes the wrapper (``async for ...: break`` stops the producer)."""

    def __init__(
        self, iterator: AsyncIterator[T], finalizer: Callable[[], Any],
    ):
        self.__iterator = iterator
        finalize(self, finalizer)

    def __anext__(self) -> Awaitable[T]:
        return self.__iterator.__anext__()


class IteratorWrapperSeparate(IteratorWrapper[P, T]):
    """An ``IteratorWrapper`` whose producer runs in a new thread
    (``aiomisc_c.thread_pool.IteratorWrapperSeparate``)."""

    def _run(self) -> Any:
        from .thread_pool import run_in_new_thread

        return run_in_new_thread(self._in_thread)
