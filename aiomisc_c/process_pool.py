"""``concurrent.futures.ProcessPoolExecutor`` with statistics (mirror of
``aiomisc.process_pool``) and a shutdown that never waits forever.

Use it through ``loop.run_in_executor(pool, func, *args)``: ``submit``
returns a ``concurrent.futures.Future``, which is not awaitable.
"""
import asyncio
import concurrent.futures
import logging
import os
import time
from functools import partial
from typing import Any, Callable, List, ParamSpec, TypeVar

from .compat import EventLoopMixin
from .counters import Statistic

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ("ProcessPoolExecutor", "ProcessPoolStatistic")

log = logging.getLogger(__name__)


class ProcessPoolStatistic(Statistic):
    processes: int
    done: int
    error: int
    success: int
    submitted: int
    sum_time: float


class ProcessPoolExecutor(concurrent.futures.ProcessPoolExecutor, EventLoopMixin):
    """A process pool whose ``submit`` counts submitted, successful and
    failed calls and their time (``ProcessPoolStatistic``).

    ``shutdown(wait=True)`` waits at most ``SHUTDOWN_TIMEOUT`` seconds for the
    running calls, then terminates the worker processes.
    """

    DEFAULT_MAX_WORKERS: int = max(os.cpu_count() or 1, 4)
    SHUTDOWN_TIMEOUT: float = 10

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS, **kwargs: Any):
        if max_workers is None:
            max_workers = self.DEFAULT_MAX_WORKERS
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(
                f"max_workers must be an int, not {type(max_workers).__name__}",
            )
        super().__init__(max_workers=max_workers, **kwargs)
        self._statistic = ProcessPoolStatistic()
        self._statistic.processes = max_workers

    def _statistic_callback(
        self, future: concurrent.futures.Future[Any], start_time: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # Runs in the pool's management thread; loop.time() is a plain
        # monotonic clock read.
        if future.cancelled() or future.exception() is not None:
            self._statistic.error += 1
        else:
            self._statistic.success += 1
        self._statistic.done += 1
        self._statistic.sum_time += loop.time() - start_time

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs,
    ) -> concurrent.futures.Future[T]:
        """Submit ``fn(*args, **kwargs)``; needs a running event loop (its
        clock times the call)."""
        loop = asyncio.get_running_loop()
        start_time = loop.time()
        future = super().submit(fn, *args, **kwargs)
        self._statistic.submitted += 1
        future.add_done_callback(
            partial(self._statistic_callback, start_time=start_time, loop=loop),
        )
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # The base class forgets these in shutdown(): keep them to bound
        # the wait and to stop the processes that outlive it.
        manager = getattr(self, "_executor_manager_thread", None)
        processes = list((getattr(self, "_processes", None) or {}).values())
        super().shutdown(wait=False, cancel_futures=cancel_futures)
        if not wait:
            return
        if manager is not None:
            manager.join(self.SHUTDOWN_TIMEOUT)
            if manager.is_alive():
                log.warning(
                    "Process pool %r did not stop in %s seconds: "
                    "terminating its processes", self, self.SHUTDOWN_TIMEOUT,
                )
                _terminate(processes)
                manager.join(self.SHUTDOWN_TIMEOUT)
        for process in processes:
            # The manager thread joins them too; this reaps any it left.
            process.join(self.SHUTDOWN_TIMEOUT)

    def __del__(self) -> None:
        if "_statistic" in self.__dict__:
            try:
                super().shutdown(wait=False)
            except Exception:   # pragma: no cover - interpreter teardown
                pass


def _terminate(processes: List[Any]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + 1
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
