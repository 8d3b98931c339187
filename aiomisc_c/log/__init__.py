"""Loop-aware logging configuration (mirror of ``aiomisc.log``).

Besides the names of ``aiomisc.log`` this module re-exports every public name
of the loop-free layer :mod:`aiomisc_c.log.core` (the ``aiomisc_log``
mirror) except its ``basic_config``.

Import cost matters (``import aiomisc_c`` must stay cheap): only the enums
are imported with the package; the configuration (``._configure``), the
loop-free layer (``.core``, with the formatters) and the buffered handler
(``._threaded_handler``) are imported on first use of one of their names.
asyncio, colorlog, logging-journald and rich are imported only when used.
"""
from __future__ import annotations

import importlib
from typing import Any

from .enum import DateFormat, LogFormat, LogLevel  # noqa: F401

__all__ = ("LogFormat", "LogLevel", "ThreadedHandler", "basic_config")

# name -> the submodule that defines it
_LAZY_NAMES = {
    **dict.fromkeys((
        "basic_config", "suppressor", "wrap_logging_handler",
        "UnhandledLoopHook", "_CONFIGURED_WRAPPERS",
        "_close_configured_wrappers", "_default_loop",
    ), "_configure"),
    **dict.fromkeys(("ThreadedHandler", "ThreadedHandlerStatistic"),
                    "_threaded_handler"),
    **dict.fromkeys((
        "DEFAULT_FORMAT", "LOG_FORMAT", "LOG_LEVEL", "UnhandledHook",
        "UnhandledPythonHook", "create_logging_handler", "pass_wrapper",
    ), "core"),
}
_SUBMODULES = frozenset({"core", "formatter", "_configure", "_threaded_handler"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, name)
    if not name.startswith("_"):
        # cached: the next read is a plain dict lookup (the private state
        # of _configure is read through every time, it is rebound there)
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES, *_SUBMODULES})
