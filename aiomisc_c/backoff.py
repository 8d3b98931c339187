"""Retry with backoff: ``asyncbackoff``, ``asyncretry``.

Which names come from C and which from Python:

* twinned (C in ``aiomisc_c._backoff`` when built, else the Python twin in
  ``aiomisc_c._backoff_py``): ``Backoff``, ``BackoffExecution``,
  ``asyncbackoff``, ``asyncretry``.  Both twins stay reachable as
  ``_PyNAME`` / ``_CNAME``; ``aiomisc_c._compat.use_implementation`` rebinds
  them.
* shared Python (``aiomisc_c._backoff_base``): ``BackoffStatistic``,
  ``RetryStatistic`` — one class each, whichever twin runs.

Semantics (one task per call, timers instead of ``wait_for``) are described
in ``aiomisc_c/_backoff_py.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

from . import _compat
from ._backoff_base import BackoffStatistic, RetryStatistic

__all__ = (
    "Backoff",
    "BackoffExecution",
    "BackoffStatistic",
    "RetryStatistic",
    "asyncbackoff",
    "asyncretry",
)

Number = Union[int, float]

# The Python twin is what a type checker sees; the C twin runs when built.
_c_twin = _compat.import_c_module("_backoff")
if TYPE_CHECKING or _c_twin is None:
    from ._backoff_py import Backoff, BackoffExecution, asyncbackoff, asyncretry
else:
    Backoff = _c_twin.Backoff
    BackoffExecution = _c_twin.BackoffExecution
    asyncbackoff = _c_twin.asyncbackoff
    asyncretry = _c_twin.asyncretry

_compat.bind_twins(
    "backoff", globals(),
    _compat.lazy_module("aiomisc_c._backoff_py"),   # imported on first need
    _c_twin, ["Backoff", "BackoffExecution", "asyncbackoff", "asyncretry"],
)
del _c_twin
