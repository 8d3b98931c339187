"""Utilities (mirror of ``aiomisc.utils``).

Event-loop setup (``create_default_event_loop``, ``new_event_loop``) is a
twinned primitive: C in ``aiomisc_c._loop``, Python in ``aiomisc_c._loop_py``.
"""
from typing import Any

from . import _compat, _loop_py

__all__ = (
    "create_default_event_loop",
    "new_event_loop",
)

# Binds create_default_event_loop / new_event_loop, plus _Py* and _C* twins.
_compat.bind_twins(
    "loop", globals(), _loop_py, _compat.import_c_module("_loop"),
    ["create_default_event_loop", "new_event_loop"],
)

# Bound by bind_twins above (declared for readers and type checkers).
create_default_event_loop: Any
new_event_loop: Any
