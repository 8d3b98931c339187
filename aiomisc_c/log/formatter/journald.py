"""The ``journald`` log format: logging-journald's native journal handler."""
from __future__ import annotations

import logging
from typing import Any

__all__ = ("journald_formatter",)


def journald_formatter(**_: Any) -> logging.Handler:
    try:
        from logging_journald import JournaldLogHandler
    except ImportError:
        raise ImportError(
            'You must install "logging-journald" library for use it',
        ) from None

    if not JournaldLogHandler.SOCKET_PATH.exists():
        raise FileNotFoundError("JournalD socket doesn't exists")

    handler = JournaldLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler  # type: ignore[no-any-return]
