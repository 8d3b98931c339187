"""Which callables are coroutine functions, by asyncio's broader rule.

A module of its own with no imports of the package: the service base class
needs it at class creation, and so does every ``import aiomisc_c`` that
loads the systemd plugin.
"""
import asyncio
import inspect
from typing import Any

__all__ = ("iscoroutinefunction",)

# ``asyncio.coroutines._is_coroutine`` marks AsyncMock & co. on Python < 3.12
# (gone in 3.14, hence the default).
_IS_COROUTINE_MARKER = getattr(asyncio.coroutines, "_is_coroutine", object())


def iscoroutinefunction(func: Any) -> bool:
    """``inspect.iscoroutinefunction`` plus what ``asyncio.iscoroutinefunction``
    also accepts (objects marked like ``unittest.mock.AsyncMock``)."""
    return (
        inspect.iscoroutinefunction(func)
        or getattr(func, "_is_coroutine", None) is _IS_COROUTINE_MARKER
    )
