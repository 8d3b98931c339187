"""Loop-free logging configuration (mirror of the ``aiomisc_log`` package).

Nothing here needs an event loop or a thread: :func:`basic_config` installs
the handler of the chosen :class:`LogFormat` (plus any extra handlers) on the
root logger and routes uncaught exceptions (``sys.excepthook``) through the
same handlers.  The loop-aware, buffered variant is
:func:`aiomisc_c.log.basic_config`; it calls this module's ``basic_config``
through the module attribute, so patching ``aiomisc_c.log.core.basic_config``
intercepts every configuration.
"""
from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from contextlib import suppress
from itertools import chain
from types import TracebackType
from typing import Any, Callable, Iterable, List, Optional, Type, Union

from .enum import LogFormat, LogLevel
from .formatter import (
    color_formatter,
    journald_formatter,
    json_handler,
    rich_formatter,
)

__all__ = (
    "LOG_FORMAT",
    "LOG_LEVEL",
    "LogFormat",
    "LogLevel",
    "basic_config",
    "create_logging_handler",
)

# The last configuration; WorkerPool and ProcessService hand it to children.
LOG_LEVEL: ContextVar[Any] = ContextVar("LOG_LEVEL", default=logging.INFO)
LOG_FORMAT: ContextVar[Any] = ContextVar("LOG_FORMAT", default=LogFormat.default())

DEFAULT_FORMAT = "%(levelname)s:%(name)s:%(message)s"
MESSAGE_ONLY_FORMAT = "%(message)s"


def _stream_handler(stream: Any, fmt: str, date_format: Any = None) -> logging.Handler:
    # 17.x ignores a ``stream`` keyword for these formats; honouring it is
    # allowed and lets callers (the pytest plugin) redirect them.
    handler = logging.StreamHandler(stream)   # None means sys.stderr
    if date_format and date_format is not Ellipsis:
        handler.setFormatter(
            logging.Formatter("%(asctime)s " + fmt, datefmt=date_format),
        )
    else:
        handler.setFormatter(logging.Formatter(fmt))
    return handler


def _syslog_handler(date_format: Optional[str]) -> logging.Handler:
    import logging.handlers   # only this format needs it

    if date_format:
        sys.stderr.write('Can not apply "date_format" for syslog\n')
        sys.stderr.flush()
    if os.path.exists("/dev/log"):
        handler: logging.Handler = logging.handlers.SysLogHandler(address="/dev/log")
    else:
        handler = logging.handlers.SysLogHandler()
    handler.setFormatter(logging.Formatter(MESSAGE_ONLY_FORMAT))
    return handler


def create_logging_handler(
    log_format: LogFormat = LogFormat.color,
    date_format: Optional[str] = None,
    **kwargs: Any,
) -> Optional[logging.Handler]:
    """The handler of ``log_format`` (``None`` for ``disabled``)."""
    LOG_FORMAT.set(log_format)

    if log_format == LogFormat.disabled:
        return None
    if log_format == LogFormat.stream:
        return _stream_handler(kwargs.get("stream"), DEFAULT_FORMAT, date_format)
    if log_format == LogFormat.json:
        return json_handler(date_format=date_format, **kwargs)
    if log_format == LogFormat.color:
        return color_formatter(date_format=date_format, **kwargs)
    if log_format == LogFormat.journald:
        return journald_formatter()
    if log_format == LogFormat.rich:
        return rich_formatter(date_format=date_format, **kwargs)
    if log_format == LogFormat.rich_tb:
        kwargs["rich_tracebacks"] = True
        return rich_formatter(date_format=date_format, **kwargs)
    if log_format == LogFormat.syslog:
        return _syslog_handler(date_format)
    if log_format == LogFormat.plain:
        return _stream_handler(kwargs.get("stream"), MESSAGE_ONLY_FORMAT)
    raise NotImplementedError(f"Unsupported log format {log_format!r}")


HandlerWrapperType = Callable[[logging.Handler], logging.Handler]


def pass_wrapper(handler: logging.Handler) -> logging.Handler:
    return handler


class UnhandledHookBase:
    """The fields of aiomisc's dataclass of the same name (``__init__``,
    ``__repr__`` and ``__eq__`` as the dataclass makes them), written out so
    that importing the package does not pay for ``dataclasses``."""

    logger: logging.Logger
    logger_name: str = "unhandled"
    logger_default_message: str = "Unhandled exception"

    def __init__(
        self,
        logger: logging.Logger,
        logger_name: str = "unhandled",
        logger_default_message: str = "Unhandled exception",
    ) -> None:
        self.logger = logger
        self.logger_name = logger_name
        self.logger_default_message = logger_default_message

    def _fields(self) -> tuple[Any, ...]:
        return (self.logger, self.logger_name, self.logger_default_message)

    def __repr__(self) -> str:
        return (
            f"{type(self).__qualname__}(logger={self.logger!r}, "
            f"logger_name={self.logger_name!r}, "
            f"logger_default_message={self.logger_default_message!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined, unused-ignore]

    __hash__ = None  # type: ignore[assignment]


class UnhandledHook(UnhandledHookBase):
    """Owns the non-propagating root child logger ``logger_name``.

    As in 17.x the logger is chosen from the *class* default of
    ``logger_name`` before the keyword is applied, so every hook shares the
    ``unhandled`` logger (the loop hook's ``logger_name`` still reads
    ``"asyncio.unhandled"``).
    """

    def __init__(self, **kwargs: Any) -> None:
        logger = logging.getLogger().getChild(self.logger_name)
        logger.propagate = False
        logger.handlers.clear()
        super().__init__(logger=logger, **kwargs)

    def add_handler(self, handler: logging.Handler) -> None:
        self.logger.handlers.append(handler)


class UnhandledPythonHook(UnhandledHook):
    """A ``sys.excepthook`` logging uncaught exceptions with their traceback."""

    def __call__(
        self,
        exc_type: Type[BaseException],
        exc_value: BaseException,
        exc_traceback: Optional[TracebackType],
    ) -> None:
        self.logger.exception(
            self.logger_default_message,
            exc_info=(exc_type, exc_value, exc_traceback),
        )


# The handler the last basic_config() created for its log format.
_FORMAT_HANDLERS: List[Optional[logging.Handler]] = []


def _close_format_handler() -> None:
    while _FORMAT_HANDLERS:
        handler = _FORMAT_HANDLERS.pop()
        if handler is not None:
            with suppress(Exception):
                handler.close()


def basic_config(
    level: Union[int, str] = LogLevel.info,
    log_format: Union[str, LogFormat] = LogFormat.color,
    handler_wrapper: HandlerWrapperType = pass_wrapper,
    handlers: Iterable[logging.Handler] = (),
    **kwargs: Any,
) -> None:
    """Configure the root logger: the ``log_format`` handler plus
    ``handlers``, each passed through ``handler_wrapper``."""
    if isinstance(level, str):
        level = LogLevel[level]     # lower-case names only: KeyError otherwise
    if isinstance(log_format, str):
        log_format = LogFormat[log_format]

    root = logging.getLogger()
    root.handlers.clear()
    # The format handler of the previous call was created here, so it is
    # ours to close (syslog and journald handlers hold sockets).
    _close_format_handler()

    unhandled_hook = UnhandledPythonHook()
    sys.excepthook = unhandled_hook  # type: ignore[assignment, unused-ignore]

    format_handler = create_logging_handler(log_format, **kwargs)
    _FORMAT_HANDLERS.append(format_handler)
    logging_handlers = [
        handler_wrapper(handler)
        for handler in chain([format_handler], handlers)
        if handler is not None
    ]

    LOG_LEVEL.set(level)
    root.setLevel(int(level))
    for handler in logging_handlers:
        # as logging.basicConfig does: handlers without a formatter get one
        if handler.formatter is None:
            handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        root.addHandler(handler)
        unhandled_hook.add_handler(handler)
