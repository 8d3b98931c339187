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

from typing import TYPE_CHECKING

from .. import _compat
from .enum import DateFormat, LogFormat, LogLevel  # noqa: F401

if TYPE_CHECKING:   # imported on first use at run time (see below)
    from . import _configure, _threaded_handler, core, formatter
    from ._configure import (
        UnhandledLoopHook, basic_config, suppressor, wrap_logging_handler,
    )
    from ._threaded_handler import ThreadedHandler, ThreadedHandlerStatistic
    from .core import (
        DEFAULT_FORMAT, LOG_FORMAT, LOG_LEVEL, UnhandledHook,
        UnhandledPythonHook, create_logging_handler, pass_wrapper,
    )

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


_compat.lazy_attributes(globals(), {
    **{name: f"{__name__}.{module}" for name, module in _LAZY_NAMES.items()},
    **{module: f"{__name__}.{module}" for module in _SUBMODULES},
})


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES, *_SUBMODULES})
