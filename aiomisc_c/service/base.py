"""The ``Service`` base class and its helper bases (mirror of
``aiomisc.service.base``).

A service is started and stopped by an :class:`aiomisc_c.Entrypoint`:
``start()`` runs as a task; the service counts as started when ``start()``
returns or when it sets ``self.start_event`` (then ``start()`` keeps running
as the service body until shutdown cancels it).
"""
from __future__ import annotations

import asyncio
from abc import ABC, ABCMeta, abstractmethod
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .._coroutine_functions import iscoroutinefunction

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

__all__ = (
    "CoroutineType", "Service", "ServiceMeta", "SimpleClient", "SimpleServer",
    "TaskStoreBase",
)

T = TypeVar("T")
CoroutineType = Coroutine[Any, Any, T]


class ServiceMeta(ABCMeta):
    """Freezes ``__required__``/``__async_required__`` and checks, at class
    creation, that the ``__async_required__`` methods are coroutine
    functions."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        cls: Any = super().__new__(mcs, name, bases, dict(namespace), **kwargs)
        for key in ("__async_required__", "__required__"):
            setattr(cls, key, frozenset(getattr(cls, key, ())))

        # getattr first for every name: a missing method is an AttributeError.
        methods = [getattr(cls, method) for method in cls.__async_required__]
        if not all(iscoroutinefunction(method) for method in methods):
            raise TypeError(
                "Following methods must be coroutine functions",
                tuple(f"{name}.{m}" for m in cls.__async_required__),
            )
        return cls


class Service(metaclass=ServiceMeta):
    """Base class of services; configured by keyword arguments only."""

    __async_required__: tuple[str, ...] = ("start", "stop")
    __required__: tuple[str, ...] = ()

    _instance_params: dict[str, Any]
    loop: asyncio.AbstractEventLoop

    def __new__(cls, *args: Any, **kwargs: Any) -> "Service":  # noqa: PYI034
        instance = super().__new__(cls)
        # Ready before __init__, so subclasses may set attributes first.
        instance._instance_params = {}
        return instance

    def __init__(self, **kwargs: Any):
        # Only keywords count: a class attribute does not satisfy __required__.
        absent = self.__required__ - kwargs.keys()
        if absent:
            raise AttributeError("Absent attributes", absent)
        self._set_params(**kwargs)
        self.__context: Context | None = None
        self.__start_event: asyncio.Event | None = None

    def __getattr__(self, key: str) -> Any:
        # Only called for missing attributes: fall back to the keywords.
        try:
            return self.__dict__["_instance_params"][key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        super().__setattr__(key, value)
        params = self.__dict__.get("_instance_params")
        if params is not None and key in params:
            params[key] = value

    def _set_params(self, **kwargs: Any) -> None:
        self._instance_params = kwargs
        for name, value in kwargs.items():
            setattr(self, name, value)

    # Pickled as the keywords; unpickling re-applies them without __init__.
    def __getstate__(self) -> dict[str, Any]:
        return self._instance_params

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._set_params(**state)

    @property
    def start_event(self) -> asyncio.Event:
        event = self.__dict__.get("_Service__start_event")
        if event is None:
            raise RuntimeError
        return event  # type: ignore[no-any-return]

    @property
    def context(self) -> "Context":
        context = self.__dict__.get("_Service__context")
        if context is None:
            from ..context import get_context

            context = self.__context = get_context()
        return context

    def set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.__start_event = asyncio.Event()

    @abstractmethod
    async def start(self) -> Any:
        raise NotImplementedError

    async def stop(self, exception: Exception | None = None) -> Any:
        pass


async def _cancel_and_wait(tasks: set["asyncio.Task[Any]"]) -> None:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


class TaskStoreBase(Service, ABC):
    """A service that tracks the tasks it creates and cancels them on stop."""

    def __init__(self, **kwargs: Any):
        self.tasks: set[asyncio.Task[Any]] = set()
        super().__init__(**kwargs)

    def create_task(self, coro: CoroutineType[T]) -> asyncio.Task[T]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def stop(self, exc: Exception | None = None) -> None:
        await _cancel_and_wait(self.tasks)


class SimpleServer(TaskStoreBase):
    def __init__(self, **kwargs: Any):
        self.server: asyncio.AbstractServer | None = None
        super().__init__(**kwargs)

    @abstractmethod
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self, exc: Exception | None = None) -> None:
        await super().stop(exc)
        if self.server:
            # Stop listening; do not wait for open connections.
            self.server.close()


class SimpleClient(TaskStoreBase):
    @abstractmethod
    async def start(self) -> None:
        raise NotImplementedError
