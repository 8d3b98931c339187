"""A service that calls its ``callback`` every ``interval`` seconds (mirror
of ``aiomisc.service.periodic``)."""
from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any, Optional

from ..periodic import PeriodicCallback
from .base import Service

__all__ = ("PeriodicService",)

log = logging.getLogger(__name__)


class PeriodicService(Service):
    """Subclasses define ``async def callback(self)``; ``interval`` (needed)
    and ``delay`` (before the first call, default 0) are keyword arguments
    or class attributes."""

    __required__ = ("interval",)

    interval: int | float
    delay: int | float = 0

    def __init__(self, *, name: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.periodic = PeriodicCallback(self.callback, name=name)

    async def start(self) -> None:
        assert self.interval, f"Interval illegal interval {self.interval!r}"
        assert self.interval > 0, (
            f"Interval must be positive not {self.interval!r}"
        )
        self.periodic.start(self.interval, delay=self.delay, loop=self.loop)
        log.info("Periodic service %s started", self)

    async def stop(self, err: Optional[Exception] = None) -> None:
        await self.periodic.stop(return_exceptions=True)
        log.info("Periodic service %s is stopped", self)

    @abstractmethod
    async def callback(self) -> Any:
        raise NotImplementedError

    def __str__(self) -> str:
        return (
            f"{self.__class__.__name__}"
            f"(interval={self.interval},delay={self.delay})"
        )
