"""A service that profiles the whole process with ``cProfile`` (mirror of
``aiomisc.service.profiler``)."""
from __future__ import annotations

import cProfile
import io
import logging
from pstats import Stats
from typing import Optional

from ..periodic import PeriodicCallback
from .base import Service

__all__ = ("Profiler",)


class Profiler(Service):
    """Every ``interval`` seconds (first at start) logs the ``top_results``
    functions sorted by ``order`` and, when ``path`` is set, dumps the
    statistics there (``pstats`` format).  A dump that fails (a path that
    cannot be written) is logged; profiling goes on."""

    profiler: cProfile.Profile
    periodic: PeriodicCallback

    order: str = "cumulative"

    path: Optional[str] = None
    logger: logging.Logger

    interval: int = 10
    top_results: int = 10
    log: logging.Logger = logging.getLogger(__name__)

    name: str = "profiler"

    async def start(self) -> None:
        self.logger = self.log.getChild(str(id(self)))

        self.profiler = cProfile.Profile()
        self.periodic = PeriodicCallback(self.save_stats, name=self.name)

        self.profiler.enable()
        self.periodic.start(self.interval)

    def save_stats(self) -> None:
        # Stats() disables the profiler to read it: enable it again after.
        try:
            with io.StringIO() as stream:
                stats = (
                    Stats(self.profiler, stream=stream)
                    .strip_dirs()
                    .sort_stats(self.order)
                )
                stats.print_stats(self.top_results)
                self.logger.info(stream.getvalue())

                if self.path is not None:
                    try:
                        stats.dump_stats(self.path)
                    except OSError as e:
                        self.logger.error(
                            "Failed to dump profiler statistics to %r: %r",
                            self.path, e,
                        )
        finally:
            self.profiler.enable()

    async def stop(self, exception: Optional[Exception] = None) -> None:
        self.logger.info("Stop profiler")
        await self.periodic.stop(return_exceptions=True)
        self.profiler.disable()
