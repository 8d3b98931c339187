"""Log formats, log levels and date formats (mirror of ``aiomisc_log.enum``).

Importing this module must stay cheap: neither ``rich`` nor
``logging-journald`` is imported here.  ``RICH_INSTALLED`` is computed on
first access and ``check_journal_stream`` only imports ``logging-journald``
when systemd has set ``JOURNAL_STREAM``.
"""
from __future__ import annotations

import logging
import os
import sys
from enum import Enum, IntEnum, unique
from typing import Any, Tuple

__all__ = (
    "DateFormat",
    "LogFormat",
    "LogLevel",
    "RICH_INSTALLED",  # noqa: F822 - computed on first access (__getattr__)
    "check_journal_stream",
)


def check_journal_stream() -> bool:
    """True when stderr is connected to the systemd journal."""
    # Without JOURNAL_STREAM the answer is False whatever logging-journald
    # would say, so the import is skipped on the common path.
    if not os.environ.get("JOURNAL_STREAM"):
        return False
    try:
        from logging_journald import check_journal_stream as check
    except ImportError:
        return False
    try:
        return bool(check())
    except (OSError, ValueError, AttributeError):
        # stderr closed or replaced by an object without a file descriptor
        return False


def _detect_rich() -> bool:
    try:
        from importlib.util import find_spec

        return find_spec("rich") is not None
    except (ImportError, ValueError):
        return False


def __getattr__(name: str) -> Any:
    # ``RICH_INSTALLED`` is looked up lazily (find_spec scans sys.path) and
    # then cached as a real module attribute, so patching it works.
    if name == "RICH_INSTALLED":
        value = _detect_rich()
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rich_installed() -> bool:
    value = globals().get("RICH_INSTALLED")
    if value is None:
        value = __getattr__("RICH_INSTALLED")
    return bool(value)


def _stderr_is_tty() -> bool:
    stream = sys.stderr
    if stream is None:
        return False
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        # pytest's capture and other replacements have no usable fileno()
        return False


@unique
class LogFormat(IntEnum):
    disabled = -1
    stream = 0
    color = 1
    json = 2
    syslog = 3
    plain = 4
    journald = 5
    rich = 6
    rich_tb = 7

    @classmethod
    def choices(cls) -> Tuple[str, ...]:
        return tuple(cls._member_names_)

    @classmethod
    def default(cls) -> str:
        if check_journal_stream():
            return cls.journald.name
        if not _stderr_is_tty():
            return cls.plain.name
        if _rich_installed():
            return cls.rich.name
        return cls.color.name


class LogLevel(IntEnum):
    critical = logging.CRITICAL
    error = logging.ERROR
    warning = logging.WARNING
    info = logging.INFO
    debug = logging.DEBUG
    notset = logging.NOTSET

    @classmethod
    def choices(cls) -> Tuple[str, ...]:
        return tuple(cls._member_names_)

    @classmethod
    def default(cls) -> str:
        return cls.info.name


class DateFormat(Enum):
    color = "%Y-%m-%d %H:%M:%S"
    stream = "[%Y-%m-%d %H:%M:%S]"
    # "%s" is special: the JSON formatter emits ``record.created`` as is
    json = "%s"
    syslog = None
    rich = "[%X]"
