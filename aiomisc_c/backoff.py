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

from typing import Union

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

_compat.bind_twins(
    "backoff", globals(),
    _compat.lazy_module("aiomisc_c._backoff_py"),   # imported on first need
    _compat.import_c_module("_backoff"),
    ["Backoff", "BackoffExecution", "asyncbackoff", "asyncretry"],
)
