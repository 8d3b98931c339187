"""The ``timeout`` decorator.

``timeout`` is twinned (C in ``aiomisc_c._backoff``, which shares its timer
machinery with ``asyncbackoff``; else ``aiomisc_c._backoff_py``) under the
primitive name ``"timeout"``; ``_Pytimeout`` / ``_Ctimeout`` are both
reachable and ``aiomisc_c._compat.use_implementation`` rebinds it.

The wrapped call runs in the awaiting task with one loop timer (no
``asyncio.wait_for`` task): when the timer fires the task is cancelled and
the resulting ``CancelledError`` becomes ``asyncio.TimeoutError``; any other
cancellation propagates unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

from . import _compat

__all__ = ("timeout",)

Number = Union[int, float]

# The Python twin is what a type checker sees; the C twin runs when built.
_c_twin = _compat.import_c_module("_backoff")
if TYPE_CHECKING or _c_twin is None:
    from ._backoff_py import timeout
else:
    timeout = _c_twin.timeout

_compat.bind_twins(
    "timeout", globals(),
    _compat.lazy_module("aiomisc_c._backoff_py"),   # imported on first need
    _c_twin, ["timeout"],
)
del _c_twin
