"""Calls a function on a cron schedule (mirror of ``aiomisc.cron``).

Needs the ``croniter`` package: ``pip install 'aiomisc_c[cron]'``.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable, Optional

try:
    from croniter import croniter as croniter  # re-exported
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    # Same class as the original (ModuleNotFoundError when croniter is not
    # installed), with the extra to install in the message.
    raise type(exc)(
        "aiomisc_c.cron needs croniter: pip install 'aiomisc_c[cron]' "
        f"({exc})",
        name=exc.name,
    ) from exc

from .compat import EventLoopMixin
from .recurring import ExceptionsType, RecurringCallback

__all__ = ("CronCallback",)

log = logging.getLogger(__name__)


class CronCallback(EventLoopMixin):
    """Calls ``coroutine_func(*args, **kwargs)`` at the times a cron spec
    gives, once started; the keyword ``name`` names it (and its
    statistics).  Calls never overlap: a call still running when the next
    time comes delays the next call."""

    __slots__ = ("_recurring_cb", "_task") + EventLoopMixin.__slots__

    def __init__(self, coroutine_func: Callable[..., Any], *args: Any, **kwargs: Any):
        self._recurring_cb = RecurringCallback(coroutine_func, *args, **kwargs)
        self._task: Optional[asyncio.Task[Any]] = None

    @staticmethod
    def get_next(cron: croniter, _: RecurringCallback) -> float:
        """Seconds from now (UTC wall clock) to the next time of ``cron``."""
        timestamp = datetime.now(timezone.utc).timestamp()
        # A loop timer may fire a little early (uvloop rounds to whole
        # milliseconds): start after the time just served (croniter keeps
        # it in "cur"), or that time would come round again at once.
        start = max(timestamp, getattr(cron, "cur", timestamp))
        next_time: float = cron.get_next(float, start)
        return next_time - timestamp

    def start(
        self,
        spec: str,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        *,
        shield: bool = False,
        suppress_exceptions: ExceptionsType = (),
    ) -> None:
        if self._task is not None and not self._task.done():
            raise asyncio.InvalidStateError
        if not isinstance(spec, str):
            raise TypeError(f"spec must be str, not {type(spec).__name__}")
        # croniter raises its CroniterBadCronError (a ValueError) at once
        # for a bad spec.
        cron = croniter(spec)
        self._loop = loop
        # Looked up now, so that a patched get_next is used.
        strategy = partial(self.get_next, cron)
        self._task = self._recurring_cb.start(
            strategy=strategy,
            loop=loop,
            shield=shield,
            suppress_exceptions=suppress_exceptions,
        )

    def stop(self) -> asyncio.Future[Any]:
        if self._task is None:
            failed = self.loop.create_future()
            failed.set_exception(RuntimeError("Callback not started"))
            return failed
        if not self._task.done():
            self._task.cancel()
        return self._task

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}({self._recurring_cb.name})>"
