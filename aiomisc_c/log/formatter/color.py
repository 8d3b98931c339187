"""The ``color`` log format: a colorlog ``ColoredFormatter`` on a stream."""
from __future__ import annotations

import logging
import sys
from typing import IO, Any, Optional

from ..enum import DateFormat

__all__ = ("color_formatter",)

COLOR_FORMAT = (
    "%(blue)s[T:%(threadName)s]%(reset)s "
    "%(log_color)s%(levelname)s:%(name)s%(reset)s: "
    "%(message_log_color)s%(message)s"
)
TIMESTAMP_PREFIX = "%(bold_white)s%(bg_black)s%(asctime)s%(reset)s "

LOG_COLORS = {
    "DEBUG": "cyan",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "red,bg_white",
}
# The message itself is bold from WARNING up.
MESSAGE_COLORS = {
    "message": {"WARNING": "bold", "ERROR": "bold", "CRITICAL": "bold"},
}


def color_formatter(
    stream: Optional[IO[str]] = None,
    date_format: Optional[str] = None,
    **_: Any,
) -> logging.Handler:
    # colorlog is a mandatory dependency, imported here to keep
    # ``import aiomisc_c.log`` cheap.
    from colorlog import ColoredFormatter

    date_format = date_format or DateFormat.color.value
    handler = logging.StreamHandler(stream or sys.stderr)
    fmt = COLOR_FORMAT
    if date_format:
        fmt = TIMESTAMP_PREFIX + fmt
    handler.setFormatter(
        ColoredFormatter(
            fmt,
            log_colors=dict(LOG_COLORS),
            secondary_log_colors={k: dict(v) for k, v in MESSAGE_COLORS.items()},
            datefmt=date_format,
            reset=True,
            style="%",
        ),
    )
    return handler
