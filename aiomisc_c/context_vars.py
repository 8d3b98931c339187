"""18.x name of :mod:`aiomisc_c._context_vars`."""
from ._context_vars import EVENT_LOOP, StrictContextVar, set_current_loop

__all__ = ("EVENT_LOOP", "StrictContextVar", "set_current_loop")
