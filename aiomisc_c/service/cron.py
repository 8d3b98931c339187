"""A service that calls registered coroutine functions on cron schedules
(mirror of ``aiomisc.service.cron``).

Needs the ``croniter`` package: ``pip install 'aiomisc_c[cron]'``.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Set, Tuple, Type

from ..cron import CronCallback, croniter
from .._backoff_base import iscoroutinefunction
from ..recurring import check_exceptions
from .base import Service

__all__ = ("CronService", "ExceptionsType", "StoreItem")

log = logging.getLogger(__name__)
ExceptionsType = Tuple[Type[Exception], ...]


@dataclass(frozen=True)
class StoreItem:
    callback: CronCallback
    spec: str
    shield: bool
    suppress_exceptions: ExceptionsType


class CronService(Service):
    """Register coroutine functions with :meth:`register` before the
    service starts (a subclass may register in ``start`` and then call
    ``super().start()``)."""

    _callbacks_storage: Set[StoreItem]

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._callbacks_storage = set()

    def register(
        self,
        function: Callable[..., Any],
        spec: str,
        shield: bool = False,
        suppress_exceptions: ExceptionsType = (),
    ) -> None:
        if not iscoroutinefunction(function):
            raise TypeError(f"function should be a coroutine {function!r}")
        if not isinstance(spec, str) or not croniter.is_valid(spec):
            raise TypeError(f"Not valid cron spec {spec!r}")
        self._callbacks_storage.add(
            StoreItem(
                CronCallback(function), spec, shield,
                check_exceptions(suppress_exceptions),
            ),
        )

    async def start(self) -> None:
        for item in self._callbacks_storage:
            item.callback.start(
                spec=item.spec,
                loop=self.loop,
                shield=item.shield,
                suppress_exceptions=item.suppress_exceptions,
            )
        log.info("Cron service %s started", self)

    async def stop(self, exception: Exception | None = None) -> None:
        async def shutdown(item: StoreItem) -> None:
            await asyncio.gather(item.callback.stop(), return_exceptions=True)

        await asyncio.gather(
            *[shutdown(item) for item in self._callbacks_storage],
            return_exceptions=True,
        )
        log.info("Cron service %s is stopped", self)
