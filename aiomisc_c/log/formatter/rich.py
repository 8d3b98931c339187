"""The ``rich`` / ``rich_tb`` log formats: rich's ``RichHandler``.

``rich`` is optional: it is imported when a handler is created, and a
missing installation raises ``ImportError`` then, not at import time.
"""
from __future__ import annotations

import logging
from typing import IO, Any, Optional

from ..enum import DateFormat

__all__ = ("rich_formatter",)


def rich_formatter(
    date_format: Optional[str] = None,
    stream: Optional[IO[str]] = None,
    **kwargs: Any,
) -> logging.Handler:
    try:
        from rich import reconfigure
        from rich.logging import RichHandler
    except ImportError:
        raise ImportError('You must install "rich" library for use it') from None

    kwargs.setdefault("rich_tracebacks", False)
    kwargs.setdefault("log_time_format", date_format or DateFormat.rich.value)

    if "console" not in kwargs:
        # RichHandler writes to rich's global console; point it at the stream.
        if stream is None:
            reconfigure(stderr=True)
        else:
            reconfigure(file=stream)

    handler = RichHandler(**kwargs)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler
