"""The pure-Python twin of the thread pool (the C twin is ``aiomisc_c._thread_pool``).

This file is the readable source of truth for the semantics both twins share
(see ``Executor``).  The design rule of these machines is *few wake-ups, few
GIL hand-offs* (a cross-thread wake-up costs ~50 µs):

* a worker holding the GIL drains what is queued before it sleeps;
* a submit wakes a sleeping worker only when no worker is idle-awake, and a
  worker that takes an item while more are queued (and none is idle-awake)
  wakes one more, so blocking functions still run in parallel;
* completions go back to each loop in batches: one ``call_soon_threadsafe``
  per batch, not per item.

Shared counters (``_idle_awake``, ``_unfinished``...) are updated with the
GIL held by single read-modify-write statements that contain no call into
Python code, so no thread switch can split them; the sleep/wake hand-shake
itself runs under ``_cond``.
"""
from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import sys
import threading
import time
import weakref
from asyncio.events import _get_running_loop
from collections import deque
from contextvars import Context, copy_context
from functools import partial as _partial
from typing import (
    Any, Awaitable, Callable, Concatenate, Deque, Dict, Optional, ParamSpec,
    Set, Tuple, Type, TypeVar, Union, overload,
)

from ._context_vars import add_item_loop_lookup
from ._thread_pool_base import (
    _EVENT_LOOP_VAR, ThreadedBase, ThreadPoolExecutorBase, ThreadPoolStatistic,
    iscoroutinefunction, run_in_executor,
)

T = TypeVar("T")
P = ParamSpec("P")
BP = ParamSpec("BP")    # the parameters of a method, after ``self``
S = TypeVar("S")

log = logging.getLogger("aiomisc_c.thread_pool")

_Future = asyncio.Future
_BaseEventLoop = asyncio.BaseEventLoop
_perf_counter = time.perf_counter

# What the item a worker thread runs reads as EVENT_LOOP: (loop, the
# variable's value when the item started), or None between items.
_current_item = threading.local()


def item_loop(value: Any, /) -> Optional[asyncio.AbstractEventLoop]:
    """In a worker thread running an item: the item's loop, if ``value``
    (what EVENT_LOOP's variable holds now, None when unset) is what it held
    when the item started; else None."""
    running: Optional[Tuple[Optional[asyncio.AbstractEventLoop], Any]] = \
        getattr(_current_item, "running", None)
    if running is not None and value is running[1]:
        return running[0]
    return None


add_item_loop_lookup(item_loop)


def _has_stock_create_future(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop.create_future()`` is just ``asyncio.Future(loop=loop)``
    (asyncio's and uvloop's loops), so submit may skip the method call."""
    create_future = getattr(type(loop), "create_future", None)
    if create_future is _BaseEventLoop.create_future:
        return True
    return (
        type(loop).__module__.startswith("uvloop")
        and getattr(create_future, "__qualname__", "") == "Loop.create_future"
    )


# Loop types whose instances cannot have a ``_default_executor`` attribute
# (uvloop keeps it in a C field): skips a failing lookup on every call.
_LOOP_TYPES_WITHOUT_EXECUTOR_ATTR: Set[type] = set()
_MISSING: Any = object()


def default_pool(loop: Any, /) -> Optional[ThreadPoolExecutorBase]:
    """The loop's default executor when it is one of this package's thread
    pools (asyncio's loops show it, uvloop's are searched), else None.

    Read on every call, nothing cached, so ``loop.set_default_executor()``
    takes effect at once.
    """
    loop_type = type(loop)
    if loop_type not in _LOOP_TYPES_WITHOUT_EXECUTOR_ATTR:
        pool = getattr(loop, "_default_executor", _MISSING)
        if pool is not _MISSING:
            return pool if isinstance(pool, ThreadPoolExecutorBase) else None
        if not hasattr(loop, "__dict__"):
            _LOOP_TYPES_WITHOUT_EXECUTOR_ATTR.add(loop_type)
    # Hidden (uvloop): among the loop's own references only the default
    # executor can be one of our pools.
    for referent in gc.get_referents(loop):
        if isinstance(referent, ThreadPoolExecutorBase):
            return referent
    return None


# A completion travelling back to its loop: (future, succeeded, result or exc)
_Outcome = Tuple["asyncio.Future[Any]", bool, Any]


class _LoopChannel:
    """Completions on their way to one event loop.

    Worker threads append outcomes to ``pending``; the first outcome of a batch
    schedules one ``drain`` on the loop with ``call_soon_threadsafe``; later
    ones join the batch.  ``drain`` clears ``scheduled`` *before* emptying
    the deque and a worker appends *before* reading ``scheduled``, so an
    outcome is always either seen by a running drain or schedules a new one.

    The channel references its loop weakly (the pool keeps channels in a
    ``WeakKeyDictionary`` keyed by loop); futures in flight keep it alive.
    """

    __slots__ = (
        "loop_ref", "stock_future", "pending", "scheduled", "closed",
        "__weakref__",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.loop_ref: Callable[[], Any] = weakref.ref(loop)
        except TypeError:   # no weak references: hold it
            self.loop_ref = lambda: loop
        self.stock_future = _has_stock_create_future(loop)
        self.pending: Deque[_Outcome] = deque()
        self.scheduled = False
        self.closed = False   # the loop is closed or gone: deliver nothing

    def is_closed(self) -> bool:
        """Whether the loop is closed or gone (remembered once seen)."""
        if self.closed:
            return True
        loop = self.loop_ref()
        try:
            self.closed = loop is None or bool(loop.is_closed())
        except Exception:   # a loop that cannot tell counts as open
            return False
        return self.closed

    def push(self, outcome: _Outcome) -> int:
        """Deliver ``outcome`` (any thread, GIL held); returns how many
        outcomes were dropped because the loop is closed (log them with a
        :class:`_DropTally`)."""
        if self.closed:
            return 1
        self.pending.append(outcome)
        if not self.scheduled:
            return self.schedule()
        return 0

    def schedule(self) -> int:
        self.scheduled = True
        loop = self.loop_ref()
        try:
            if loop is None:
                raise RuntimeError("Event loop was garbage-collected")
            loop.call_soon_threadsafe(self.drain)
            return 0
        except BaseException as e:
            # Nobody will drain what is pending: drop it.
            dropped = 0
            while self.pending:
                try:
                    self.pending.popleft()
                except IndexError:
                    break
                dropped += 1
            self.scheduled = False
            if isinstance(e, RuntimeError):   # only this means "closed"
                self.closed = True
                return dropped
            if not sys.is_finalizing():
                log.error(
                    "Can not deliver %d thread pool result(s) to %r",
                    dropped, loop, exc_info=e,
                )
            return 0

    def drain(self) -> None:
        """Resolve every pending future (runs on the loop thread)."""
        self.scheduled = False
        popleft = self.pending.popleft
        while True:
            try:
                future, succeeded, value = popleft()
            except IndexError:
                return
            if future.done():   # e.g. the awaiting task was cancelled
                continue
            try:
                if succeeded:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            except Exception:   # pragma: no cover - a broken Future subclass
                log.exception("Can not deliver a thread pool result")


class _DropTally:
    """Calls dropped because their loop is closed, counted per channel so
    that one log line covers a batch (kept by one thread at a time)."""

    __slots__ = ("channel", "count")

    def __init__(self) -> None:
        self.channel: Optional[_LoopChannel] = None
        self.count = 0

    def add(self, channel: _LoopChannel, count: int) -> None:
        if count <= 0:
            return
        if channel is not self.channel:
            self.flush()
            self.channel = channel
        self.count += count

    def flush(self) -> None:
        channel, count = self.channel, self.count
        self.channel, self.count = None, 0
        # Silent while the interpreter finalizes: logging may be half torn
        # down there, its locks held by dead daemon threads.
        if channel is None or not count or sys.is_finalizing():
            return
        log.warning(
            "Event loop %r is closed. Dropping %d thread pool call(s)",
            channel.loop_ref(), count,
        )


def _stop_iteration_error(exc: StopIteration) -> RuntimeError:
    # An asyncio.Future refuses StopIteration.
    error = RuntimeError("StopIteration raised in a worker")
    error.__cause__ = exc
    return error


# A queued work item: (future, fn, args, kwargs, context, channel)
_WorkItem = Tuple[
    "asyncio.Future[Any]", Callable[..., Any], Tuple[Any, ...],
    Dict[str, Any], Context, _LoopChannel,
]


class Executor:
    """The core of a thread pool: one FIFO work queue plus the worker bodies.

    ``Executor(max_workers, statistic, spawn_thread, closed_exception)``;
    the shell (``ThreadPoolExecutorBase``) passes ``spawn_thread``, which
    starts one daemon thread running :meth:`run_worker`.
    """

    __slots__ = (
        "_max_workers", "_statistic", "_spawn_thread", "_closed_exception",
        "_queue", "_cond", "_grow_lock", "_channels", "_strong_channels",
        "_channels_lock",
        "_last_channel", "_shutdown", "_spawned", "_unfinished",
        "_idle_awake", "_sleepers", "_slots", "_submitted_slot", "_running",
        "__weakref__",
    )

    def __init__(
        self,
        max_workers: int,
        statistic: ThreadPoolStatistic,
        spawn_thread: Callable[[], object],
        closed_exception: Type[BaseException],
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(
                f"max_workers must be an int, not {type(max_workers).__name__}",
            )
        if max_workers < 1:
            raise ValueError("max_workers must be greater than 0")
        if not callable(spawn_thread):
            raise TypeError("spawn_thread must be callable")
        if not (
            isinstance(closed_exception, type)
            and issubclass(closed_exception, BaseException)
        ):
            raise TypeError("closed_exception must be an exception type")
        try:
            # (buffer, index) of each counter; see aiomisc_c.counters
            self._slots = {
                name: statistic._counter_slot(name) for name in (
                    "threads", "done", "error", "success", "submitted",
                    "sum_time",
                )
            }
        except (AttributeError, KeyError) as e:
            raise TypeError(
                "statistic must be a ThreadPoolStatistic-like Statistic",
            ) from e
        for name, (buffer, index) in self._slots.items():
            want = "d" if name == "sum_time" else "q"
            if (
                getattr(buffer, "typecode", None) != want
                or not isinstance(index, int)
                or not 0 <= index < len(buffer)
            ):
                raise TypeError(
                    f"statistic counter {name} is not an array({want!r}) slot",
                )
        self._submitted_slot = self._slots["submitted"]

        self._max_workers = max_workers
        self._statistic = statistic
        self._spawn_thread = spawn_thread
        self._closed_exception = closed_exception

        self._queue: Deque[_WorkItem] = deque()
        # RLock: shutdown() may run re-entrantly from a __del__ called by the
        # garbage collector in a thread that holds the lock.
        self._cond = threading.Condition(threading.RLock())
        self._grow_lock = threading.RLock()
        self._channels: "weakref.WeakKeyDictionary[Any, _LoopChannel]" = (
            weakref.WeakKeyDictionary()
        )
        self._strong_channels: Dict[Any, _LoopChannel] = {}
        self._channels_lock = threading.Lock()
        self._last_channel: Optional[_LoopChannel] = None

        self._shutdown = False
        self._spawned = 0        # threads requested from spawn_thread
        self._unfinished = 0     # queued + running items
        self._idle_awake = 0     # workers awake and not running an item
        self._sleepers = 0       # workers waiting on _cond, not yet notified
        # future -> channel of each call running now (shutdown fails them)
        self._running: Dict["asyncio.Future[Any]", _LoopChannel] = {}

    # -- read-only state -----------------------------------------------------

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def spawned_threads(self) -> int:
        return self._spawned

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def unfinished(self) -> int:
        return self._unfinished

    @property
    def is_shutdown(self) -> bool:
        return self._shutdown

    @property
    def statistic(self) -> ThreadPoolStatistic:
        return self._statistic

    # -- threads -------------------------------------------------------------

    def start(self, /) -> None:
        """Spawn the initial workers: 2, or 1 when ``max_workers <= 1``."""
        with self._grow_lock:
            if self._spawned == 0:
                self._spawn(min(2, self._max_workers))

    def _spawn(self, count: int) -> None:
        for _ in range(count):
            self._spawn_thread()
            self._spawned += 1

    def _grow(self) -> None:
        # Double the number of threads, capped by max_workers.
        with self._grow_lock:
            spawned = self._spawned
            if (
                self._shutdown
                or spawned >= self._max_workers
                or self._unfinished < spawned
            ):
                return
            count = min(spawned, self._max_workers - spawned)
            if spawned == 0:    # after fork: start afresh
                count = min(2, self._max_workers)
            try:
                self._spawn(count)
            except Exception:
                # With no thread at all nothing would run the item: raise
                # (submit queues nothing).  Else the live workers will.
                if not self._spawned:
                    raise
                log.warning("Can not start a new thread pool worker",
                            exc_info=True)

    # -- submit ----------------------------------------------------------------

    def _channel_for(self, loop: asyncio.AbstractEventLoop) -> _LoopChannel:
        with self._channels_lock:
            try:
                channel = self._channels.get(loop)
            except TypeError:   # a loop type without weak references
                channel = self._strong_channels.get(loop)
            if channel is None:
                channel = _LoopChannel(loop)
                try:
                    self._channels[loop] = channel
                except TypeError:
                    self._strong_channels[loop] = channel
        self._last_channel = channel
        return channel

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any,
    ) -> "asyncio.Future[T]":
        """Queue ``fn(*args, **kwargs)``; returns a future of the running
        loop (else of ``asyncio.get_event_loop()``)."""
        if fn is None or not callable(fn):
            raise ValueError("First argument must be callable")
        if self._shutdown:
            raise RuntimeError("Pool is shutdown")

        loop = _get_running_loop()
        if loop is None:
            loop = asyncio.get_event_loop()
        channel = self._last_channel
        if channel is None or channel.loop_ref() is not loop:
            channel = self._channel_for(loop)

        future = _Future(loop=loop) if channel.stock_future \
            else loop.create_future()
        # The item runs in a private copy of the submitter's context (where
        # EVENT_LOOP.get() answers the loop: see item_loop).
        context = copy_context()

        if self._spawned < self._max_workers \
                and self._unfinished >= self._spawned:
            self._grow()

        item = (future, fn, args, kwargs, context, channel)
        self._unfinished += 1
        self._queue.append(item)
        if self._shutdown:
            # shutdown() ran since the check above (the calls in between may
            # switch threads) and may have drained the queue already: take
            # the item back, as the C twin refuses it under its lock.  If it
            # is gone, shutdown or a worker owns it and will resolve it.
            try:
                self._queue.remove(item)
            except ValueError:
                pass
            else:
                self._unfinished -= 1
                raise RuntimeError("Pool is shutdown")
        buffer, index = self._submitted_slot
        buffer[index] += 1
        if not self._idle_awake and self._sleepers:
            self._wake_one()
        return future

    # -- workers -------------------------------------------------------------

    def _wake_one(self) -> None:
        with self._cond:
            # Re-checked under the lock; the waker does the accounting so
            # that one pending wake-up is never doubled.
            if self._sleepers and not self._idle_awake:
                self._sleepers -= 1
                self._idle_awake += 1
                self._cond.notify()

    def _sleep(self) -> bool:
        """Wait for work; False when the worker must exit."""
        with self._cond:
            # Leave the idle-awake count *before* looking at the queue: a
            # submitter that saw us idle-awake appended before this point.
            self._idle_awake -= 1
            if self._queue:
                self._idle_awake += 1
                return True
            if self._shutdown:
                self._idle_awake += 1   # run_worker's exit takes it off
                return False
            self._sleepers += 1
            self._cond.wait()
            return True

    def run_worker(self, /) -> None:
        """The body of a worker thread; returns after :meth:`shutdown`."""
        threads_buf, threads_i = self._slots["threads"]
        threads_buf[threads_i] += 1
        self._idle_awake += 1
        try:
            while True:
                try:
                    self._work()
                    return
                except Exception:   # pragma: no cover - a bug, not user code
                    # Never lose a worker: the pool counts on its threads.
                    log.exception("Unexpected error in a thread pool worker")
        finally:
            self._idle_awake -= 1
            threads_buf[threads_i] -= 1

    def _work(self) -> None:
        """Run items until shutdown (the worker is counted idle-awake)."""
        slots = self._slots
        done_buf, done_i = slots["done"]
        success_buf, success_i = slots["success"]
        error_buf, error_i = slots["error"]
        time_buf, time_i = slots["sum_time"]
        queue = self._queue
        popleft = queue.popleft
        perf_counter = _perf_counter
        running = self._running
        current_item = _current_item
        drops = _DropTally()

        while True:
            # (test first: raising IndexError costs more than the check)
            if not queue:
                drops.flush()
                if self._sleep():
                    continue
                return
            try:
                future, fn, args, kwargs, context, channel = popleft()
            except IndexError:    # another worker was faster
                continue

            self._idle_awake -= 1
            if queue and not self._idle_awake and self._sleepers:
                self._wake_one()

            if channel.is_closed():
                # Its loop is closed: nobody can receive the result.
                drops.add(channel, 1)
                self._unfinished -= 1
                self._idle_awake += 1
                future = fn = args = kwargs = context = channel = None  # type: ignore[assignment]  # noqa: E501
                continue
            if future.done():    # the caller gave up on it
                self._unfinished -= 1
                self._idle_awake += 1
                future = fn = args = kwargs = context = channel = None  # type: ignore[assignment]  # noqa: E501
                continue

            running[future] = channel
            outer_item = getattr(current_item, "running", None)
            current_item.running = (
                channel.loop_ref(), context.get(_EVENT_LOOP_VAR),
            )
            started = perf_counter()
            try:
                outcome = (future, True, context.run(fn, *args, **kwargs))
            except StopIteration as e:
                outcome = (future, False, _stop_iteration_error(e))
            except BaseException as e:
                outcome = (future, False, e)
            time_buf[time_i] += perf_counter() - started
            current_item.running = outer_item
            # Gone from the map: shutdown() failed the future meanwhile and
            # the outcome is dropped.
            abandoned = running.pop(future, None) is None
            done_buf[done_i] += 1
            if outcome[1]:
                success_buf[success_i] += 1
            else:
                error_buf[error_i] += 1

            if not abandoned:
                if channel.closed:
                    drops.add(channel, 1)
                else:
                    channel.pending.append(outcome)
            # Keep no reference to a finished item: its future must be
            # collectable once the caller drops it, and scheduling the
            # drain may hand the GIL to the loop thread.
            future = fn = args = kwargs = context = outcome = None  # type: ignore[assignment]  # noqa: E501
            if not abandoned and not channel.scheduled and not channel.closed:
                drops.add(channel, channel.schedule())
            channel = None  # type: ignore[assignment]

            self._unfinished -= 1
            self._idle_awake += 1

    # -- shutdown and fork -----------------------------------------------------

    def shutdown(self, /) -> None:
        """Refuse new work, let workers exit (no wait) and, like aiomisc,
        fail every unfinished future now: queued items never run, running
        calls' results are dropped."""
        with self._cond:
            if self._shutdown:
                return
            self._shutdown = True
            self._idle_awake += self._sleepers
            self._sleepers = 0
            self._cond.notify_all()
        running = []
        while self._running:
            try:
                running.append(self._running.popitem())
            except KeyError:   # a worker finished meanwhile
                break
        self._fail_unfinished(
            running, self._closed_exception("Pool closed"),
        )

    def _fail_unfinished(
        self,
        running: "list[Tuple[asyncio.Future[Any], _LoopChannel]]",
        exc: BaseException,
    ) -> None:
        queue = self._queue
        loop = _get_running_loop()
        drops = _DropTally()

        def fail(future: "asyncio.Future[Any]", channel: _LoopChannel) -> None:
            # Each future gets its own exception object (own traceback);
            # at once on the future's own loop thread.
            error = type(exc)(*exc.args)
            if loop is not None and channel.loop_ref() is loop:
                if not future.done():
                    future.set_exception(error)
            else:
                drops.add(channel, channel.push((future, False, error)))

        for future, channel in running:
            fail(future, channel)
        while True:
            try:
                future, _, _, _, _, channel = queue.popleft()
            except IndexError:
                break
            self._unfinished -= 1
            fail(future, channel)
        drops.flush()

    def after_fork_in_child(self, /) -> None:
        """Reset after ``os.fork()`` in the child, which has no workers."""
        self._cond = threading.Condition(threading.RLock())
        self._grow_lock = threading.RLock()
        self._channels_lock = threading.Lock()
        items = list(self._queue)
        self._queue.clear()
        self._running = {}   # calls of the parent's threads
        self._spawned = 0
        self._unfinished = 0
        self._idle_awake = 0
        self._sleepers = 0
        threads_buf, threads_i = self._slots["threads"]
        threads_buf[threads_i] = 0
        # Only futures of this thread's running loop can be failed without
        # touching another (non-existent) thread.
        loop = _get_running_loop()
        for future, *_ in items:
            if loop is not None and future.get_loop() is loop \
                    and not future.done():
                future.set_exception(
                    self._closed_exception("Pool was forked"),
                )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__module__}.{type(self).__qualname__} "
            f"threads={self._spawned}/{self._max_workers} "
            f"unfinished={self._unfinished} "
            f"{'shutdown' if self._shutdown else 'running'}>"
        )


class ThreadPoolExecutor(ThreadPoolExecutorBase):
    __doc__ = ThreadPoolExecutorBase.__doc__
    _core_type = Executor


# -- Threaded ------------------------------------------------------------------

def _unwrap(func: Any) -> Tuple[Callable[..., Any], type]:
    if isinstance(func, (staticmethod, classmethod)):
        return func.__func__, type(func)
    return func, type(func)


_METADATA = ("__module__", "__name__", "__qualname__", "__doc__")


class Threaded(ThreadedBase[P, T]):
    """Run ``func`` in the loop's default executor: ``await threaded_fn()``.

    ``func`` may be a function, a ``staticmethod`` or a ``classmethod``;
    ``sync_call`` calls it in the current thread.
    """

    __slots__ = ("func", "func_type")

    func: Callable[..., T]
    func_type: type

    def __init__(self, func: Callable[P, T]) -> None:
        unwrapped, func_type = _unwrap(func)
        if not callable(unwrapped):
            raise TypeError(f"Can not wrap non-callable object {unwrapped!r}")
        if iscoroutinefunction(unwrapped):
            raise TypeError("Can not wrap coroutine")
        if inspect.isgeneratorfunction(unwrapped):
            raise TypeError("Can not wrap generator function")
        self.func = unwrapped
        self.func_type = func_type
        for name in _METADATA:
            try:
                value = getattr(unwrapped, name)
            except AttributeError:
                continue
            setattr(self, name, value)
        self.__wrapped__ = unwrapped

    def async_call(self, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        """Start ``func(*args, **kwargs)`` in the default executor.

        Returns an ``asyncio.Future`` inside a running loop, otherwise a
        coroutine that starts the work when awaited.
        """
        loop = _get_running_loop()
        if loop is None:
            return run_in_executor(self.func, args=args, kwargs=kwargs)
        if isinstance(loop, _BaseEventLoop):
            executor = loop._default_executor  # type: ignore[attr-defined]
            if isinstance(executor, ThreadPoolExecutorBase):
                return executor.submit(self.func, *args, **kwargs)
            # A foreign executor (contract: like 17.x, a plain partial).
            return loop.run_in_executor(
                None, _partial(self.func, *args, **kwargs),
            )
        # uvloop does not expose its default executor: let it call submit.
        if kwargs:
            return loop.run_in_executor(
                None, _partial(self.func, *args, **kwargs),
            )
        return loop.run_in_executor(None, self.func, *args)

    # Threaded itself skips a frame; subclasses get ThreadedBase.__call__
    # (``self.async_call`` looked up at call time) from __init_subclass__.
    __call__ = async_call

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" not in cls.__dict__:
            cls.__call__ = ThreadedBase.__call__   # type: ignore[method-assign]

    def sync_call(self, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.func(*args, **kwargs)

    # Read from the class: the Threaded itself; from an instance: a
    # BoundThreaded without the ``self`` parameter.
    @overload
    def __get__(
        self, instance: None, owner: Optional[type] = None,
    ) -> "Threaded[P, T]":
        ...

    @overload
    def __get__(
        self: "Threaded[Concatenate[S, BP], T]", instance: S,
        owner: Optional[type] = None,
    ) -> "BoundThreaded[BP, T]":
        ...

    def __get__(
        self, instance: Any, owner: Optional[type] = None,
    ) -> Union["Threaded[P, T]", "BoundThreaded[Any, T]"]:
        func_type = self.func_type
        if func_type is staticmethod:
            return self
        if func_type is classmethod:
            return _bind(
                self.func, func_type,
                owner if owner is not None else type(instance),
            )
        if instance is None:
            return self
        return _bind(self.func, func_type, instance)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_func_name(self.func)} at {id(self):#x}>"


class _FromFunc:
    """``instance.<name>`` reads ``instance.func.<name>``; the class keeps
    ``class_value`` (used for ``__doc__``, read by ``help()`` on the class)."""

    def __init__(self, name: str, class_value: Any) -> None:
        self.name = name
        self.class_value = class_value

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self.class_value
        return getattr(instance.func, self.name, None)


class BoundThreaded(ThreadedBase[P, T]):
    """A :class:`Threaded` bound to ``instance`` (an object or a class)."""

    __slots__ = ("func", "func_type", "instance")

    func: Callable[..., T]
    func_type: type
    instance: Any

    def __init__(self, func: Callable[..., T], instance: Any) -> None:
        if not callable(func):
            raise TypeError(f"Can not wrap non-callable object {func!r}")
        self.func = func
        self.func_type = type(func)
        self.instance = instance

    def async_call(self, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        loop = _get_running_loop()
        if loop is None:
            return run_in_executor(
                self.func, args=(self.instance, *args), kwargs=kwargs,
            )
        if isinstance(loop, _BaseEventLoop):
            executor = loop._default_executor  # type: ignore[attr-defined]
            if isinstance(executor, ThreadPoolExecutorBase):
                return executor.submit(self.func, self.instance, *args, **kwargs)
            return loop.run_in_executor(
                None, _partial(self.func, self.instance, *args, **kwargs),
            )
        if kwargs:
            return loop.run_in_executor(
                None, _partial(self.func, self.instance, *args, **kwargs),
            )
        return loop.run_in_executor(None, self.func, self.instance, *args)

    __call__ = async_call

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" not in cls.__dict__:
            cls.__call__ = ThreadedBase.__call__   # type: ignore[method-assign]

    def sync_call(self, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.func(self.instance, *args, **kwargs)

    # update_wrapper-like metadata, read from ``func`` on demand (a bound
    # object is created on every attribute access: keep __init__ cheap).
    __doc__ = _FromFunc("__doc__", __doc__)

    def __getattr__(self, name: str) -> Any:
        if name in ("__name__", "__qualname__"):
            return getattr(self.func, name)
        if name == "__wrapped__":
            return self.func
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_func_name(self.func)} at {id(self):#x}>"



def _func_name(func: Any) -> str:
    # As 17.x: a functools.partial is named after the function it wraps.
    target = getattr(func, "func", func)
    return getattr(target, "__name__", type(target).__name__)


def _bind(
    func: Callable[..., T], func_type: type, instance: Any,
) -> "BoundThreaded[Any, T]":
    # Threaded.__get__ runs on every attribute access: skip __init__.
    bound = _new_bound(BoundThreaded)
    bound.func = func
    bound.func_type = func_type
    bound.instance = instance
    return bound


_new_bound = object.__new__
