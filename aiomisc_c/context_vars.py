"""18.x name of :mod:`aiomisc_c._context_vars`."""
from __future__ import annotations

from ._context_vars import EVENT_LOOP, StrictContextVar, set_current_loop

__all__ = ("EVENT_LOOP", "StrictContextVar", "set_current_loop")
