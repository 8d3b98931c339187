"""The 17.x work item and task channel (aiomisc ``thread_pool`` internals).

The package's pools do not use them; they are kept for code that builds its
own workers on top of them, and re-exported by ``aiomisc_c.thread_pool``.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any, Callable, Dict, Optional, Tuple

from ._thread_pool_base import ThreadPoolStatistic

__all__ = (
    "TaskChannel",
    "TaskChannelCloseException",
    "WorkItem",
    "WorkItemBase",
    "thread_pool_thread_loop",
)

log = logging.getLogger("aiomisc_c.thread_pool")


@dataclass(frozen=True)
class WorkItemBase:
    func: Callable[..., Any]
    statistic: ThreadPoolStatistic
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    args: Tuple[Any, ...] = field(default_factory=tuple)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    context: contextvars.Context = field(
        default_factory=contextvars.copy_context,
    )


def _set_future(
    future: asyncio.Future[Any], succeeded: bool, value: Any,
) -> None:
    if future.done():
        return
    if succeeded:
        future.set_result(value)
    else:
        future.set_exception(value)


class WorkItem(WorkItemBase):
    """One call of ``func`` in ``context``, result sent to ``future``."""

    def __call__(self, no_return: bool = False) -> None:
        if self.future.done():
            return
        if self.loop.is_closed():
            log.warning("Event loop is closed. Ignoring %r", self.func)
            return

        statistic = self.statistic
        started = time.perf_counter()
        try:
            value = self.context.run(self.func, *self.args, **self.kwargs)
            succeeded = True
            statistic.success += 1
        except StopIteration as e:
            value = RuntimeError("StopIteration raised in a worker")
            value.__cause__ = e
            succeeded = False
            statistic.error += 1
        except BaseException as e:
            value, succeeded = e, False
            statistic.error += 1
        finally:
            statistic.sum_time += time.perf_counter() - started
            statistic.done += 1

        if no_return:
            return
        try:
            self.loop.call_soon_threadsafe(
                _set_future, self.future, succeeded, value,
            )
        except RuntimeError:
            log.warning(
                "Event loop is closed. Forget execution result for %r",
                self.func,
            )


class TaskChannelCloseException(RuntimeError):
    pass


class TaskChannel(SimpleQueue):  # type: ignore[type-arg]
    closed_event: threading.Event

    def __init__(self) -> None:
        super().__init__()
        self.closed_event = threading.Event()

    def get(self, *args: Any, **kwargs: Any) -> WorkItem:
        if self.closed_event.is_set():
            raise TaskChannelCloseException()
        item: Optional[WorkItem] = super().get(*args, **kwargs)
        if item is None:
            # The close sentinel: leave it for the other consumers.
            self.put(None)
            raise TaskChannelCloseException()
        return item

    def close(self) -> None:
        self.closed_event.set()
        self.put(None)


def thread_pool_thread_loop(
    tasks: TaskChannel,
    statistic: ThreadPoolStatistic,
    stop_event: threading.Event,
    pool_shutdown_event: threading.Event,
) -> None:
    """The body of a 17.x pool thread (kept for code that uses it)."""
    statistic.threads += 1
    try:
        while not pool_shutdown_event.is_set():
            tasks.get()()
    except (TaskChannelCloseException, asyncio.CancelledError):
        return None
    finally:
        stop_event.set()
        statistic.threads -= 1
