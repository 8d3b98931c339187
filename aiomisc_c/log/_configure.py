"""The loop-aware half of :mod:`aiomisc_c.log`: ``basic_config`` (handlers
delivered by a :class:`ThreadedHandler`), the loop exception hook and the
17.x helpers.  Imported on first use of one of these names."""
from __future__ import annotations

import logging
import traceback
import warnings
from contextlib import suppress
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple, Type,
    Union,
)

from . import core
from ._threaded_handler import (  # noqa: F401 - re-exported
    ThreadedHandler,
    ThreadedHandlerStatistic,
)
from .core import (  # noqa: F401 - the aiomisc_log names, re-exported
    DEFAULT_FORMAT,
    LOG_FORMAT,
    LOG_LEVEL,
    UnhandledHook,
    UnhandledPythonHook,
    create_logging_handler,
    pass_wrapper,
)
from .enum import DateFormat, LogFormat, LogLevel  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    import asyncio
    from socket import socket


def suppressor(
    callback: Callable[..., None],
    exceptions: Tuple[Type[BaseException], ...] = (Exception,),
) -> Callable[..., None]:
    """A no-argument function calling ``callback`` with ``exceptions``
    suppressed."""
    def wrapper() -> None:
        with suppress(*exceptions):
            callback()
    return wrapper


def wrap_logging_handler(
    handler: logging.Handler,
    buffer_size: int = 1024,
    flush_interval: Union[float, int] = 0.1,
    loop: Optional["asyncio.AbstractEventLoop"] = None,
) -> logging.Handler:
    warnings.warn(
        "wrap_logging_handler is deprecated", DeprecationWarning, stacklevel=2,
    )
    threaded = ThreadedHandler(
        target=handler, queue_size=buffer_size, flush_interval=flush_interval,
    )
    threaded.start()
    return threaded


class UnhandledLoopHook(UnhandledHook):
    """An event-loop exception handler logging through the ``unhandled``
    logger (see :class:`UnhandledHook` for why not ``asyncio.unhandled``)."""

    TRANSPORT_EXTRA_KEYS = (
        "peername", "sockname", "compression", "cipher", "peercert", "pipe",
        "subprocess",
    )

    @staticmethod
    def _fill_transport_extra(
        transport: Optional["asyncio.BaseTransport"], extra: Dict[str, Any],
    ) -> None:
        if transport is None:
            return
        extra["transport"] = repr(transport)
        for key in UnhandledLoopHook.TRANSPORT_EXTRA_KEYS:
            value = transport.get_extra_info(key)
            if value:
                extra[f"transport_{key}"] = value

    def __call__(
        self, loop: "asyncio.AbstractEventLoop", context: Dict[str, Any],
    ) -> None:
        context = dict(context)
        message: str = context.pop("message", "unhandled loop exception")
        exception: Optional[BaseException] = context.pop("exception", None)
        future: Optional["asyncio.Future[Any]"] = context.pop("future", None)
        task: Optional["asyncio.Task[Any]"] = context.pop("task", None)
        handle: Optional["asyncio.Handle"] = context.pop("handle", None)
        protocol: Optional["asyncio.BaseProtocol"] = context.pop("protocol", None)
        transport: Optional["asyncio.BaseTransport"] = context.pop("transport", None)
        sock: Optional["socket"] = context.pop("socket", None)
        source_traceback: List[traceback.FrameSummary] = (
            context.pop("source_traceback", None) or []
        )

        if exception is None:
            if future is not None and future.done() and not future.cancelled():
                exception = future.exception()
            elif task is not None and task.done() and not task.cancelled():
                exception = task.exception()

        extra = context
        if handle is not None:
            extra["handle"] = repr(handle)
        if protocol is not None:
            extra["protocol"] = repr(protocol)
        if sock is not None:
            extra["sock"] = repr(sock)
        self._fill_transport_extra(transport, extra)

        self.logger.exception(message, exc_info=exception, extra=extra)
        if source_traceback:
            self.logger.error("".join(traceback.format_list(source_traceback)))


# ThreadedHandlers created by the last basic_config() call; closed (their
# records delivered) by the next call, or at exit by logging.shutdown.
_CONFIGURED_WRAPPERS: List[ThreadedHandler] = []


def _close_configured_wrappers() -> None:
    wrappers = list(_CONFIGURED_WRAPPERS)
    _CONFIGURED_WRAPPERS.clear()
    for wrapper in wrappers:
        wrapper.close()


def _default_loop() -> "asyncio.AbstractEventLoop":
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    # 17.x calls asyncio.get_event_loop(), deprecated without a running loop.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.get_event_loop()


def basic_config(
    level: Union[int, str] = LogLevel.default(),
    log_format: Union[str, LogFormat] = LogFormat.default(),
    buffered: bool = True,
    buffer_size: int = 0,
    flush_interval: Union[int, float] = 0.2,
    loop: Optional["asyncio.AbstractEventLoop"] = None,
    handlers: Iterable[logging.Handler] = (),
    **kwargs: Any,
) -> None:
    """Configure logging for code running on ``loop``.

    Installs the ``log_format`` handler and ``handlers`` on the root logger
    and an exception handler on ``loop``.  User ``handlers`` always get a
    :class:`ThreadedHandler`; with ``buffered`` (the default) the format
    handler gets one too, so logging from the loop never waits for I/O.
    Handlers installed by a previous call are closed first: whatever they
    still buffer is delivered before the new configuration takes over.
    """
    if loop is None:
        loop = _default_loop()

    unhandled_hook = UnhandledLoopHook(logger_name="asyncio.unhandled")
    loop.set_exception_handler(unhandled_hook)

    _close_configured_wrappers()

    def threaded(handler: logging.Handler) -> ThreadedHandler:
        wrapper = ThreadedHandler(
            target=handler,
            buffered=buffered,
            flush_interval=flush_interval,
            queue_size=buffer_size,
        )
        wrapper.start()
        _CONFIGURED_WRAPPERS.append(wrapper)
        return wrapper

    user_wrappers = [threaded(handler) for handler in handlers]
    for wrapper in user_wrappers:
        unhandled_hook.add_handler(wrapper)

    user_handler_wrapper = kwargs.pop("handler_wrapper", pass_wrapper)

    def wrap_format_handler(handler: logging.Handler) -> logging.Handler:
        # core.basic_config passes every handler through here: the user
        # handlers are wrapped already, the format handler is wrapped only
        # when buffered (17.x never wraps it).
        is_user_wrapper = any(handler is w for w in user_wrappers)
        handler = user_handler_wrapper(handler)
        if not buffered or is_user_wrapper:
            return handler
        return threaded(handler)

    # Looked up at call time: tests patch aiomisc_c.log.core.basic_config.
    core.basic_config(
        level=level,
        log_format=log_format,
        handlers=user_wrappers,
        handler_wrapper=wrap_format_handler,
        **kwargs,
    )
