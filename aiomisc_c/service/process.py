"""Services that run their work in a child process (mirror of
``aiomisc.service.process``).

:class:`ProcessService` starts a ``multiprocessing.Process`` running
``in_process(**get_process_kwargs())`` and stops it on ``stop()`` (SIGINT,
then SIGKILL after ``process_stop_timeout`` seconds); the child is always
reaped.  :class:`RespawningProcessService` also starts a new process when
the current one exited, checking every ``process_poll_timeout`` seconds.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from multiprocessing import synchronize
from threading import Lock
from typing import Any, Callable, Dict, Optional

from .base import Service

__all__ = ("ProcessService", "RespawningProcessService")

log = logging.getLogger(__name__)


def _process_inner(
    function: Callable[..., Any],
    log_level: Any,
    log_format: Any,
    start_event: synchronize.Event,
    stop_event: synchronize.Event,
    **kwargs: Any,
) -> None:
    from ..log.core import basic_config

    basic_config(level=log_level, log_format=log_format)
    start_event.set()
    try:
        function(**kwargs)
    except KeyboardInterrupt:
        pass   # SIGINT is how the service stops its process
    finally:
        stop_event.set()


def _log_settings() -> tuple[Any, ...]:
    from ..log.core import LOG_FORMAT, LOG_LEVEL

    # LOG_FORMAT holds a LogFormat member once logging was configured, its
    # name before: basic_config takes both.
    return LOG_LEVEL.get(), LOG_FORMAT.get()


class ProcessService(Service):
    name: Optional[str] = None
    process: multiprocessing.Process
    process_stop_timeout: float = 3
    # A multiprocessing start method ("fork", "spawn", "forkserver"); None
    # is multiprocessing's default.  With "spawn" and "forkserver" the
    # service is pickled: only its constructor keywords travel.
    process_start_method: Optional[str] = None

    _process_start_event: synchronize.Event
    _process_stop_event: synchronize.Event
    _lock: Lock

    def get_process_kwargs(self) -> Dict[str, Any]:
        return {}

    @abstractmethod
    def in_process(self) -> Any:
        pass

    def _is_alive(self) -> bool:
        with self._lock:
            process = self.__dict__.get("process")
            if process is None or not process.pid:
                return False
            alive: bool = process.is_alive()
            return alive

    async def start(self) -> Any:
        context = multiprocessing.get_context(self.process_start_method)
        self._lock = Lock()
        self._process_start_event = context.Event()
        self._process_stop_event = context.Event()
        log_level, log_format = _log_settings()
        with self._lock:
            process = context.Process(  # type: ignore[attr-defined]
                target=_process_inner,
                args=(
                    self.in_process, log_level, log_format,
                    self._process_start_event, self._process_stop_event,
                ),
                kwargs=self.get_process_kwargs(),
                name=self.name,
            )
            process.start()
        self.process = process
        loop = asyncio.get_running_loop()
        # Wait for "started", or for the process to die before it said so.
        while not await loop.run_in_executor(
            None, self._process_start_event.wait, 0.5,
        ):
            if not process.is_alive():
                break

    def __repr__(self) -> str:
        process = self.__dict__.get("process")
        pid = process.pid if process is not None else None
        return (
            f"<{self.__class__.__name__} object at {hex(id(self))}: "
            f"name={self.name!r}, pid={pid}>"
        )

    async def stop(self, exception: Optional[Exception] = None) -> Any:
        process = self.__dict__.get("process")
        if process is None:
            return
        if not self._is_alive():
            del self.process
            process.join(0)   # reap
            return
        del self.process

        loop = asyncio.get_running_loop()
        try:
            os.kill(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        stopped: bool = await loop.run_in_executor(
            None, self._process_stop_event.wait, self.process_stop_timeout,
        )
        if stopped:
            await loop.run_in_executor(None, process.join, self.process_stop_timeout)
        if process.is_alive():
            process.kill()
            log.warning(
                "The process %s didn't stop for %s seconds and had been killed.",
                process.pid, self.process_stop_timeout,
            )
            await loop.run_in_executor(None, process.join)


class RespawningProcessService(ProcessService, ABC):
    process_poll_timeout: float = 5

    _supervisor: "asyncio.Task[None]"

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.process_poll_timeout)
            process = self.__dict__.get("process")
            if process is None:
                continue
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, process.is_alive):
                continue
            log.info(
                "Process in service %r exited with code %r, respawning.",
                self, process.exitcode,
            )
            await ProcessService.start(self)

    async def start(self) -> None:
        await super().start()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self, exception: Optional[Exception] = None) -> Any:
        supervisor = self.__dict__.get("_supervisor")
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        await super().stop(exception)
