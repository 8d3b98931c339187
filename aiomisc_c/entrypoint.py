"""The entrypoint: an event loop, its thread pool, logging, a ``Context``,
the running services and graceful shutdown (mirror of ``aiomisc.entrypoint``).

Shutdown order (``graceful_shutdown``): cancel the ``start()`` tasks still
running, call every service's ``stop()``, cancel the loop's other tasks (owned
loop only), shut down async generators.  Unlike aiomisc 17.x, shutdown never
waits forever:

* the whole of it is bounded by ``shutdown_timeout`` (plus a short grace for
  cancelled tasks to finish), also when it is triggered by leaving the
  ``with``/``async with`` block;
* a ``stop()`` that raises does not keep the other services from stopping
  (all stops run to completion, then the first error propagates);
* a task that ignores cancellation is logged and left behind.

OS signals (``catch_signals``, default SIGINT and SIGTERM in the main
thread) start one graceful shutdown; repeated signals are logged and
ignored; the previous handlers come back when the entrypoint exits.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable, MutableSet
from concurrent.futures import Executor
from contextlib import suppress
from types import TracebackType
from typing import Any, TypeVar
from weakref import WeakSet

from . import _entrypoint_hooks, _signal_wakeup
from . import log as aiomisc_log
from . import utils
from ._compat import process_signals_blocked
from ._context_vars import EVENT_LOOP, StrictContextVar
from ._loop_py import DEFAULT_POLICY, resolve_policy
from .compat import final
from .context import Context, get_context
from .log import LogFormat
from .log._env import read_log_env
from .service import Service
from .signal import Signal

__all__ = (
    "CURRENT_ENTRYPOINT",
    "Entrypoint",
    "entrypoint",
    "get_context",
    "run",
)

ExecutorType = Executor
T = TypeVar("T")
log = logging.getLogger(__name__)

asyncio_all_tasks = asyncio.all_tasks
asyncio_current_task = asyncio.current_task

# Seconds a cancelled task gets to finish once its time is up; past that it
# is logged as ignoring cancellation and left behind.
CANCEL_GRACE = 1.0


def _do_nothing() -> None:
    pass


def is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _get_env_bool(name: str, default: str) -> bool:
    enable_variants = {"1", "enable", "enabled", "on", "true", "yes"}
    return os.getenv(name, default).lower() in enable_variants


def _get_env_convert(name: str, converter: Callable[..., T], default: T) -> T:
    value = os.getenv(name)
    if value is None:
        return default
    return converter(value)


class OSSignalHandler:
    """Installs ``handler(sig)`` for ``sig``; ``restore()`` puts back the
    handler that was there when this object was made."""

    def __init__(self, sig: int, handler: Callable[[int], None]):
        self.default_handler = signal.getsignal(sig)
        self.signal = sig
        self.handler = handler

    def __callback(self, *_: Any) -> None:
        self.handler(self.signal)

    def apply(self) -> None:
        signal.signal(self.signal, self.__callback)

    def restore(self) -> None:
        signal.signal(self.signal, self.default_handler)


_LOG_ENV = read_log_env()


async def _cancel_and_wait(
    tasks: Iterable["asyncio.Future[Any]"], timeout: float, what: str,
) -> None:
    """Cancel ``tasks`` and wait up to ``timeout`` seconds for them; those
    still running then are logged (they ignore cancellation) and left."""
    tasks = list(tasks)
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    still_pending: set[asyncio.Future[Any]] = set()
    if pending:
        _, still_pending = await asyncio.wait(pending, timeout=timeout)
    for task in tasks:
        # Retrieve every outcome: no "exception was never retrieved" later.
        if task.done() and not task.cancelled() and task.exception():
            log.warning("%s %r failed", what, task, exc_info=task.exception())
    for task in still_pending:
        log.warning(
            "%s %r did not finish %.3g seconds after cancellation, "
            "leaving it behind", what, task, timeout,
        )


@final
class Entrypoint:
    DEFAULT_LOG_LEVEL: str = _LOG_ENV.level
    DEFAULT_LOG_FORMAT: str = _LOG_ENV.format
    DEFAULT_LOG_DATE_FORMAT: str | None = _LOG_ENV.date_format

    DEFAULT_AIOMISC_DEBUG: bool = _get_env_bool("AIOMISC_DEBUG", "0")
    DEFAULT_AIOMISC_LOG_CONFIG: bool = _LOG_ENV.config
    DEFAULT_AIOMISC_LOG_FLUSH: float = _LOG_ENV.flush_interval
    DEFAULT_AIOMISC_BUFFERING: bool = _LOG_ENV.buffering
    DEFAULT_AIOMISC_BUFFER_SIZE: int = _LOG_ENV.buffer_size
    DEFAULT_AIOMISC_POOL_SIZE: int | None = _get_env_convert(
        "AIOMISC_POOL_SIZE", int, None,
    )
    AIOMISC_SHUTDOWN_TIMEOUT: float = _get_env_convert(
        "AIOMISC_SHUTDOWN_TIMEOUT", float, 60.0,
    )

    PRE_START = Signal()
    POST_START = Signal()
    PRE_STOP = Signal()
    POST_STOP = Signal()

    @classmethod
    def get_current(cls) -> "Entrypoint":
        return CURRENT_ENTRYPOINT.get()

    def __init__(
        self,
        *services: Service,
        loop: asyncio.AbstractEventLoop | None = None,
        pool_size: int | None = DEFAULT_AIOMISC_POOL_SIZE,
        log_level: int | str = DEFAULT_LOG_LEVEL,
        log_format: str | LogFormat = DEFAULT_LOG_FORMAT,
        log_buffering: bool = DEFAULT_AIOMISC_BUFFERING,
        log_buffer_size: int = DEFAULT_AIOMISC_BUFFER_SIZE,
        log_date_format: str | None = DEFAULT_LOG_DATE_FORMAT,
        log_flush_interval: float = DEFAULT_AIOMISC_LOG_FLUSH,
        log_config: bool = DEFAULT_AIOMISC_LOG_CONFIG,
        log_handlers: Iterable[logging.Handler] = (),
        policy: asyncio.AbstractEventLoopPolicy = DEFAULT_POLICY,
        debug: bool = DEFAULT_AIOMISC_DEBUG,
        catch_signals: tuple[int, ...] | None = None,
        shutdown_timeout: float = AIOMISC_SHUTDOWN_TIMEOUT,
        **kwargs: Any,
    ):
        """
        :param services: services started on entry
        :param loop: a loop to borrow (never closed by the entrypoint)
        :param pool_size: default thread pool size of an owned loop
        :param log_level: logging level (lower-case name or int)
        :param log_format: ``LogFormat`` member or name
        :param log_buffering: buffer log records in a writer thread
        :param log_buffer_size: records queued before the writer is woken
        :param log_date_format: date format of the log formatter
        :param log_flush_interval: seconds between log flushes
        :param log_config: ``False``: never touch logging
        :param log_handlers: extra logging handlers
        :param policy: event loop policy used to create the loop
            (``loop_factory=``, the 18.x spelling, is accepted too)
        :param debug: ``loop.set_debug`` of an owned loop
        :param catch_signals: OS signals that start a graceful shutdown
        :param shutdown_timeout: seconds a shutdown may take
        """
        loop_factory = kwargs.pop("loop_factory", None)
        if kwargs:
            raise TypeError(
                "Entrypoint() got unexpected keyword arguments: "
                + ", ".join(map(repr, kwargs)),
            )
        self._loop_factory = loop_factory

        self.__passed_services: frozenset[Service] = frozenset(services)
        self._services: set[Service] = set()
        self._debug = debug
        self._loop = loop
        self._loop_owner = False
        self._thread_pool: ExecutorType | None = None
        # start() tasks of services that set start_event and keep running.
        self._tasks: MutableSet[asyncio.Task[Any]] = WeakSet()
        # Tasks driving the shutdown: never cancelled as "other tasks".
        self._shutdown_tasks: MutableSet[asyncio.Future[Any]] = WeakSet()

        if catch_signals is None and is_main_thread():
            # Signal handlers can only be set from the main thread.
            catch_signals = (signal.SIGINT, signal.SIGTERM)
        self._signal_handlers = [
            OSSignalHandler(sig, self._on_interrupt_callback)
            for sig in catch_signals or ()
        ]
        self._signal_handlers_applied = False

        self.catch_signals = catch_signals
        self.shutdown_timeout = float(shutdown_timeout)
        self.ctx: Context | None = None
        self.log_buffer_size = log_buffer_size
        self.log_buffering = log_buffering
        self.log_config = log_config
        self.log_date_format = log_date_format
        self.log_flush_interval = log_flush_interval
        self.log_format = log_format
        self.log_handlers = tuple(log_handlers)
        self.log_level = log_level
        self.policy = resolve_policy(policy)
        self.pool_size = pool_size

        # Unfrozen copies: later class-level receivers do not reach us.
        self.pre_start = self.PRE_START.copy()
        self.post_start = self.POST_START.copy()
        self.pre_stop = self.PRE_STOP.copy()
        self.post_stop = self.POST_STOP.copy()

        # Created on the loop, lazily (asyncio primitives bind to it).
        self.__closing: asyncio.Event | None = None
        self.__shutdown_lock: asyncio.Lock | None = None
        self.__shutdown_finished: asyncio.Event | None = None
        self._interrupt_task: asyncio.Task[None] | None = None
        self._interrupt_reported = False
        self._exiting = False
        self._shutdown_timed_out = False
        self._timeout_logged = False
        self._finalized = False

        if self.log_config:
            # Looked up at call time: tests patch aiomisc_c.log.core.basic_config.
            aiomisc_log.core.basic_config(
                level=self.log_level,
                log_format=self.log_format,
                date_format=self.log_date_format,
            )

        if self._loop is not None:
            EVENT_LOOP.set(self._loop)

        CURRENT_ENTRYPOINT.set(self)

    # ----------------------------------------------------------------- state

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(self._services)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            if self._loop_factory is not None:
                self._loop, self._thread_pool = self._loop_from_factory()
            else:
                self._loop, self._thread_pool = (
                    utils.create_default_event_loop(
                        pool_size=self.pool_size, policy=self.policy,
                        debug=self._debug,
                    )
                )
            self._loop_owner = True
            EVENT_LOOP.set(self._loop)
        return self._loop

    def _loop_from_factory(self) -> tuple[asyncio.AbstractEventLoop, Executor]:
        """``create_default_event_loop`` with the 18.x ``loop_factory``
        in place of the policy (no policy is installed)."""
        from . import thread_pool

        if asyncio._get_running_loop() is not None:
            raise RuntimeError(
                "Trying to create new event loop instance but another "
                "default loop in this thread is running right now.",
            )
        loop = self._loop_factory()
        try:
            loop.set_debug(self._debug)
            pool_class = thread_pool.ThreadPoolExecutor
            pool = pool_class(
                self.pool_size or pool_class.DEFAULT_POOL_SIZE,
                statistic_name="default",
            )
            loop.set_default_executor(pool)
            asyncio.set_event_loop(loop)
        except BaseException:
            loop.close()
            raise
        return loop, pool

    @property
    def _closing(self) -> asyncio.Event:
        if self.__closing is None:
            self.__closing = asyncio.Event()
        return self.__closing

    @property
    def _shutdown_lock(self) -> asyncio.Lock:
        if self.__shutdown_lock is None:
            self.__shutdown_lock = asyncio.Lock()
        return self.__shutdown_lock

    @property
    def _shutdown_finished(self) -> asyncio.Event:
        if self.__shutdown_finished is None:
            self.__shutdown_finished = asyncio.Event()
        return self.__shutdown_finished

    async def closing(self) -> None:
        """Resolves once graceful shutdown has begun."""
        await self._closing.wait()

    def __del__(self) -> None:
        loop = self.__dict__.get("_loop")
        if loop is None or loop.is_closed():
            return
        if self.__dict__.get("_loop_owner"):
            loop.close()

    # ------------------------------------------------------ context managers

    def __enter__(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        try:
            loop.run_until_complete(self.__aenter__())
        except BaseException as e:
            # The with-body never runs, so __exit__ would not be called:
            # stop what started, restore logging, close an owned loop.
            # The start error is what the caller gets.
            try:
                self.__exit__(type(e), e, e.__traceback__)
            except Exception:
                log.exception("Shutdown after a failed start failed")
            raise
        return loop

    def __exit__(
        self, exc_type: type[BaseException] | None,
        exc_val: BaseException | None, exc_tb: TracebackType | None,
    ) -> None:
        loop = self.loop
        if loop.is_closed():
            return

        if self.log_config:
            # Unbuffered first: this writes every record still queued.
            aiomisc_log.basic_config(
                level=self.log_level,
                log_format=self.log_format,
                date_format=self.log_date_format,
                buffered=False,
                loop=loop,
            )

        try:
            loop.run_until_complete(self.__aexit__(exc_type, exc_val, exc_tb))
        finally:
            if self._loop_owner:
                loop.close()

    async def __aenter__(self) -> "Entrypoint":  # noqa: PYI034
        if self._loop is None:
            # async with without __enter__: borrow the running loop.
            self._loop = asyncio.get_running_loop()

        self.ctx = Context(loop=self.loop)
        try:
            await self._start()
        except BaseException as e:
            # Stop the services that did start; the start error is what
            # the caller gets.
            try:
                await self.__aexit__(type(e), e, e.__traceback__)
            except Exception:
                log.exception("Shutdown after a failed start failed")
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None,
        exc_val: BaseException | None, exc_tb: TracebackType | None,
    ) -> None:
        # From now on a signal-driven shutdown leaves stopping the loop and
        # the exit status to us.
        self._exiting = True
        await self._stop(exc_val)
        if (
            self._interrupt_task is not None
            and not self._interrupt_reported
            and self._shutdown_timed_out
        ):
            self._interrupt_reported = True
            raise SystemExit(70)

    # ----------------------------------------------------------------- start

    async def _start(self) -> None:
        if self.log_config:
            aiomisc_log.basic_config(
                level=self.log_level,
                log_format=self.log_format,
                date_format=self.log_date_format,
                buffered=self.log_buffering,
                loop=self.loop,
                handlers=self.log_handlers,
                buffer_size=self.log_buffer_size,
                flush_interval=self.log_flush_interval,
            )

        CURRENT_ENTRYPOINT.set(self)
        EVENT_LOOP.set(self.loop)

        for sig in (self.pre_start, self.post_start, self.pre_stop,
                    self.post_stop):
            sig.freeze()

        # Consumed: entering the same entrypoint twice is unsupported.
        services = self.__passed_services
        del self.__passed_services
        await self.start_services(*services)

        # Only after every service started.
        self._apply_signal_handlers()

    async def _start_service(self, svc: Service) -> None:
        loop = self.loop
        svc.set_loop(loop)
        start_task = asyncio.ensure_future(svc.start(), loop=loop)
        # Tracked at once, so a shutdown during the start cancels it.
        self._tasks.add(start_task)
        self._services.add(svc)

        event_task = loop.create_task(svc.start_event.wait())
        try:
            await asyncio.wait(
                (start_task, event_task), return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not event_task.done():
                event_task.cancel()
        # Mark the service ready (next iteration) when start() returned.
        loop.call_soon(svc.start_event.set)

        if start_task.done():
            self._tasks.discard(start_task)
            await start_task        # a failed start() raises here

    async def start_services(self, *svc: Service) -> None:
        await self.pre_start.call(entrypoint=self, services=svc)
        try:
            await self._start_all(svc)
        finally:
            await self.post_start.call(entrypoint=self, services=svc)

    async def _start_all(self, services: tuple[Service, ...]) -> None:
        tasks = [
            self.loop.create_task(self._start_service(s)) for s in services
        ]
        if not tasks:
            return
        try:
            # Return at the first failure.  The services still starting
            # stay in the running set: the shutdown that follows cancels
            # their start() and calls their stop().
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        errors = [
            task.exception() for task in tasks
            if task.done() and not task.cancelled()
            and task.exception() is not None
        ]
        for task in tasks:
            if not task.done():
                # Still waiting for start() or start_event: stop waiting.
                task.cancel()
        if errors:
            for error in errors[1:]:
                log.error("Service start failed", exc_info=error)
            raise errors[0]  # type: ignore[misc]  # not None: filtered

    # ------------------------------------------------------------------ stop

    async def stop_services(
        self, *svc: Service, exc: Exception | None = None,
    ) -> None:
        await self._stop_services(svc, exc, timeout=None)

    async def _stop_services(
        self, svc: tuple[Service, ...], exc: Exception | None,
        timeout: float | None,
    ) -> None:
        await self.pre_stop.call(entrypoint=self, services=svc)

        if not svc:
            await self.post_stop.call(entrypoint=self, services=svc)
            return

        tasks: list[asyncio.Future[Any]] = []
        stopping: dict[Service, asyncio.Future[Any]] = {}
        try:
            for s in svc:
                try:
                    log.debug("Stopping service %r", s)
                    coro = s.stop(exc)
                    if hasattr(coro, "__await__"):
                        task = asyncio.ensure_future(coro, loop=self.loop)
                        stopping[s] = task
                        tasks.append(task)
                except TypeError as e:
                    log.warning("Failed to stop service %r:\n%r", s, e)
                    log.debug("Service stop failed traceback", exc_info=True)

            if tasks:
                # Every stop() runs to completion (or to the timeout): one
                # failing stop() does not cut the others short.
                done, pending = await asyncio.wait(tasks, timeout=timeout)
                if pending:
                    self._shutdown_timed_out = True
                    log.warning(
                        "%d service(s) did not stop in %.3g seconds: %s",
                        len(pending), timeout,
                        ", ".join(
                            repr(s) for s, t in stopping.items()
                            if t in pending
                        ),
                    )
                errors = [
                    task.exception() for task in tasks
                    if task in done and not task.cancelled()
                    and task.exception() is not None
                ]
                if errors:
                    for error in errors[1:]:
                        log.error("Service stop failed", exc_info=error)
                    raise errors[0]  # type: ignore[misc]  # not None: filtered
        finally:
            await _cancel_and_wait(tasks, CANCEL_GRACE, "Service stop task")
            for s in svc:
                self._services.discard(s)
            await self.post_stop.call(entrypoint=self, services=svc)

    def _remaining(self, deadline: float) -> float:
        return max(deadline - self.loop.time(), 0.0)

    async def _cancel_background_tasks(self, deadline: float) -> None:
        current_task = asyncio_current_task(self.loop)
        keep: set[Any] = set(self._shutdown_tasks)
        keep.add(current_task)
        tasks = [t for t in asyncio_all_tasks(self.loop) if t not in keep]
        await _cancel_and_wait(
            tasks, max(self._remaining(deadline), CANCEL_GRACE), "Task",
        )

    async def graceful_shutdown(self, exception: Exception | None) -> None:
        async with self._shutdown_lock:
            if self._closing.is_set():
                return
            self._closing.set()

        deadline = self.loop.time() + self.shutdown_timeout
        try:
            await _cancel_and_wait(
                set(self._tasks), max(self._remaining(deadline), CANCEL_GRACE),
                "Service start task",
            )
            try:
                await self._stop_services(
                    tuple(self._services), exception,
                    timeout=self._remaining(deadline),
                )
            finally:
                if self._loop_owner:
                    await self._cancel_background_tasks(deadline)
                await self._wait_bounded(
                    self.loop.shutdown_asyncgens(), CANCEL_GRACE,
                    "Async generators shutdown",
                )
        finally:
            self._shutdown_finished.set()

    async def _wait_bounded(
        self, coro: Coroutine[Any, Any, Any], timeout: float, what: str,
    ) -> None:
        task = self.loop.create_task(coro)
        self._shutdown_tasks.add(task)
        done, _ = await asyncio.wait((task,), timeout=timeout)
        if done:
            task.result()
            return
        log.warning("%s did not finish in %.3g seconds", what, timeout)
        await _cancel_and_wait((task,), CANCEL_GRACE, what)

    async def _stop(self, exc: BaseException | None) -> None:
        loop = self.loop
        current = asyncio_current_task(loop)
        if current is not None:
            self._shutdown_tasks.add(current)
        if loop.is_closed():
            self._restore_signal_handlers()
            return
        deadline = loop.time() + self.shutdown_timeout
        try:
            await self._bounded_shutdown(exc)
            await self._wait_interrupt_shutdown(current)
        finally:
            self._restore_signal_handlers()
            await self._finalize(deadline)

    async def _wait_interrupt_shutdown(
        self, current: "asyncio.Task[Any] | None",
    ) -> None:
        """Leaving the entrypoint while a signal-driven shutdown still runs
        (e.g. its cancelling the main task ended ``run_until_complete``):
        let it finish, so that the loop is not closed under it."""
        task = self._interrupt_task
        if task is None or task is current or task.done():
            return
        limit = self.shutdown_timeout + 4 * CANCEL_GRACE
        await asyncio.wait((task,), timeout=limit)
        if not task.done():
            self._shutdown_timed_out = True
            await _cancel_and_wait((task,), CANCEL_GRACE, "Shutdown")

    async def _bounded_shutdown(self, exc: BaseException | None) -> None:
        # graceful_shutdown bounds each of its steps; this is the backstop
        # for the rest (e.g. a signal receiver that hangs).
        limit = self.shutdown_timeout + 4 * CANCEL_GRACE
        task = self.loop.create_task(self.graceful_shutdown(exc))  # type: ignore
        self._shutdown_tasks.add(task)
        try:
            done, _ = await asyncio.wait((task,), timeout=limit)
        except BaseException:
            task.cancel()
            raise
        if done:
            task.result()
        else:
            self._shutdown_timed_out = True
            await _cancel_and_wait((task,), CANCEL_GRACE, "Shutdown")

        # A shutdown begun elsewhere (an OS signal) may still be running.
        if not self._shutdown_finished.is_set():
            try:
                await asyncio.wait_for(
                    self._shutdown_finished.wait(), timeout=limit,
                )
            except asyncio.TimeoutError:
                self._shutdown_timed_out = True

        if self._shutdown_timed_out and not self._timeout_logged:
            self._timeout_logged = True
            log.warning(
                "Shutdown did not happen in %s seconds, aborting.",
                self.shutdown_timeout,
            )

    async def _finalize(self, deadline: float) -> None:
        if self._finalized:
            return
        self._finalized = True
        if self.ctx is not None:
            # Closed, but still referenced.
            self.ctx.close()
        if self._thread_pool is not None and not self.loop.is_closed():
            await self._shutdown_thread_pool(
                self._thread_pool, max(self._remaining(deadline), CANCEL_GRACE),
            )

    async def _shutdown_thread_pool(
        self, pool: Executor, timeout: float,
    ) -> None:
        """``loop.shutdown_default_executor()``, but a worker thread stuck
        in a blocking call holds us for ``timeout`` seconds at most (the
        loop's own version cannot be abandoned cleanly on uvloop)."""
        loop = self.loop
        joined = loop.create_future()

        def set_joined() -> None:
            if not joined.done():
                joined.set_result(None)

        def join() -> None:
            try:
                pool.shutdown(wait=True)
            finally:
                with suppress(RuntimeError):    # the loop is closed already
                    loop.call_soon_threadsafe(set_joined)

        with process_signals_blocked():
            threading.Thread(
                target=join, name="aiomisc_c-entrypoint-pool-shutdown",
                daemon=True,
            ).start()
        done, _ = await asyncio.wait((joined,), timeout=timeout)
        if not done:
            joined.cancel()
            log.warning(
                "Thread pool shutdown did not finish in %.3g seconds, "
                "leaving its threads behind", timeout,
            )

    # ------------------------------------------------------------ OS signals

    def _apply_signal_handlers(self) -> None:
        if not self._signal_handlers:
            return
        if not is_main_thread():
            log.warning(
                "OS signal handlers can only be set from the main thread; "
                "not catching %r", self.catch_signals,
            )
            return
        for handler in self._signal_handlers:
            handler.apply()
            # A signal that missed the main thread's epoll_wait would wait
            # for the next loop wake-up: wake the loop then.
            _signal_wakeup.watch(handler.signal, self._wake_loop)
        self._signal_handlers_applied = True

    def _restore_signal_handlers(self) -> None:
        if not self._signal_handlers_applied:
            return
        self._signal_handlers_applied = False
        for handler in self._signal_handlers:
            handler.restore()
            _signal_wakeup.unwatch(handler.signal, self._wake_loop)

    def _wake_loop(self) -> None:
        # From the wake-up watcher thread: once the main thread runs again
        # it calls the pending Python signal handler.
        loop = self._loop
        if loop is not None:
            with suppress(RuntimeError):    # closed meanwhile
                loop.call_soon_threadsafe(_do_nothing)

    def _on_interrupt_callback(self, _: Any) -> None:
        # Runs in the main thread between two bytecodes: only hand over.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._on_interrupt, loop)

    def _on_interrupt(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._interrupt_task is not None or self._closing.is_set():
            log.warning("Interrupt signal received, already shutting down")
            return
        log.warning("Interrupt signal received, shutting down...")
        task = loop.create_task(
            self._stop(RuntimeError("Interrupt signal received")),
        )
        self._interrupt_task = task
        self._shutdown_tasks.add(task)

        def on_shutdown_finish(task: "asyncio.Future[None]") -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("Shutdown failed", exc_info=task.exception())
            if task.cancelled():
                self._shutdown_timed_out = True
            if self._exiting:
                return      # __aexit__ waits for this task and reports
            loop.stop()
            if self._shutdown_timed_out:
                self._interrupt_reported = True
                # 70 from sysexits.h means "internal software error"
                raise SystemExit(70)

        task.add_done_callback(on_shutdown_finish)


CURRENT_ENTRYPOINT: StrictContextVar[Entrypoint] = StrictContextVar(
    "CURRENT_ENTRYPOINT", RuntimeError("no current entrypoint is set"),
)
entrypoint = Entrypoint

# Plugins set up before this module was imported connect their receivers now.
_entrypoint_hooks.connect_pending(Entrypoint)


def run(
    coro: Coroutine[None, Any, T], *services: Service, **kwargs: Any,
) -> T:
    """Run ``coro`` to completion inside ``entrypoint(*services, **kwargs)``."""
    with entrypoint(*services, **kwargs) as loop:
        return loop.run_until_complete(coro)
