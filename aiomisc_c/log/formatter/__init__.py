"""Handler factories for the log formats (mirror of ``aiomisc_log.formatter``).

Each factory imports its third-party library (colorlog, logging-journald,
rich) only when it is called, so importing this package is cheap and never
needs an optional dependency.
"""
from __future__ import annotations

from .color import color_formatter
from .journald import journald_formatter
from .json import json_handler
from .rich import rich_formatter

__all__ = (
    "color_formatter",
    "journald_formatter",
    "json_handler",
    "rich_formatter",
)
