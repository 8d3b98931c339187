"""Receivers of the entrypoint's signals, registered before
``aiomisc_c.entrypoint`` is imported.

Plugins are set up by ``import aiomisc_c``; importing the entrypoint module
for them then would cost a good part of the package's import time. Their
receivers wait here instead, and the entrypoint module connects them when
it loads.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, List, Tuple

__all__ = ("connect", "connect_pending")

_PENDING: List[Tuple[str, Callable[..., Any]]] = []


def connect(signal_name: str, receiver: Callable[..., Any]) -> None:
    """Connect ``receiver`` to ``Entrypoint.<signal_name>`` now if the
    entrypoint is loaded, else as soon as it is."""
    module = sys.modules.get("aiomisc_c.entrypoint")
    entrypoint_class = getattr(module, "Entrypoint", None)
    if entrypoint_class is None:
        _PENDING.append((signal_name, receiver))
    else:
        getattr(entrypoint_class, signal_name).connect(receiver)


def connect_pending(entrypoint_class: Any) -> None:
    """Called by the entrypoint module once its class exists."""
    while _PENDING:
        signal_name, receiver = _PENDING.pop(0)
        getattr(entrypoint_class, signal_name).connect(receiver)
