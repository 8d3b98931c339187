"""The ``AIOMISC_LOG_*`` environment variables.

The logging functions read no environment variable; these values are the
entrypoint's logging defaults (its ``DEFAULT_LOG_*`` / ``DEFAULT_AIOMISC_*``
class attributes), read once when the entrypoint module is imported::

    LOG_ENV = read_log_env()
    DEFAULT_LOG_LEVEL = LOG_ENV.level
    ...

Parsing follows 17.x: booleans are true for ``1``, ``enable``, ``enabled``,
``on``, ``true``, ``yes`` (any case); numbers go through ``float``/``int``.
``AIOMISC_LOG_BUFFER`` is the buffer size variable the 17.x code reads; the
name its entrypoint docs use, ``AIOMISC_LOG_BUFFER_SIZE``, is accepted as a
fallback.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, NamedTuple, Optional, TypeVar

from .enum import LogFormat, LogLevel

__all__ = ("LogEnv", "read_log_env")

T = TypeVar("T")

_TRUE_VALUES = frozenset({"1", "enable", "enabled", "on", "true", "yes"})


class LogEnv(NamedTuple):
    level: str                  # AIOMISC_LOG_LEVEL, default LogLevel.default()
    format: str                 # AIOMISC_LOG_FORMAT, default LogFormat.default()
    date_format: Optional[str]  # AIOMISC_LOG_DATE_FORMAT, default None
    config: bool                # AIOMISC_LOG_CONFIG, default True
    flush_interval: float       # AIOMISC_LOG_FLUSH, default 0.2
    buffering: bool             # AIOMISC_LOG_BUFFERING, default True
    buffer_size: int            # AIOMISC_LOG_BUFFER, default 1024


def _env_bool(environ: Mapping[str, str], name: str, default: str) -> bool:
    return environ.get(name, default).lower() in _TRUE_VALUES


def _env_convert(
    environ: Mapping[str, str], name: str, converter: Callable[[str], T],
    default: T,
) -> T:
    value = environ.get(name)
    if value is None:
        return default
    try:
        return converter(value)
    except ValueError as e:
        raise ValueError(f"Bad value of ${name}: {value!r} ({e})") from None


def read_log_env(environ: Optional[Mapping[str, str]] = None) -> LogEnv:
    """The logging defaults from ``environ`` (``os.environ`` by default)."""
    if environ is None:
        environ = os.environ
    buffer_name = "AIOMISC_LOG_BUFFER"
    if buffer_name not in environ and "AIOMISC_LOG_BUFFER_SIZE" in environ:
        buffer_name = "AIOMISC_LOG_BUFFER_SIZE"
    return LogEnv(
        level=environ.get("AIOMISC_LOG_LEVEL", LogLevel.default()),
        format=environ.get("AIOMISC_LOG_FORMAT", LogFormat.default()),
        date_format=environ.get("AIOMISC_LOG_DATE_FORMAT"),
        config=_env_bool(environ, "AIOMISC_LOG_CONFIG", "1"),
        flush_interval=_env_convert(environ, "AIOMISC_LOG_FLUSH", float, 0.2),
        buffering=_env_bool(environ, "AIOMISC_LOG_BUFFERING", "1"),
        buffer_size=_env_convert(environ, buffer_name, int, 1024),
    )
