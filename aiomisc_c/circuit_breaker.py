"""Circuit breaker (mirror of ``aiomisc.circuit_breaker``).

Twinned (C in ``aiomisc_c._circuit_breaker``, Python in
``aiomisc_c._circuit_breaker_py``): ``CircuitBreaker``, ``cutout``.
Shared by both twins (``aiomisc_c._circuit_breaker_base``): the enums,
``CircuitBroken``, ``CircuitBreakerStatistic`` and the type aliases.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import _compat
from ._circuit_breaker_base import (
    CircuitBreakerStates, CircuitBreakerStatistic, CircuitBroken, CounterKey,
    ExceptionInspectorType, Number, StatisticType,
)

if TYPE_CHECKING:
    from ._circuit_breaker_base import (
        CutoutDecoratorReturnType, CutoutFuncType, CutoutReturnType,
    )

__all__ = (
    "CircuitBreaker",
    "CircuitBreakerStates",
    "CircuitBreakerStatistic",
    "CircuitBroken",
    "CounterKey",
    "CutoutDecoratorReturnType",
    "CutoutFuncType",
    "CutoutReturnType",
    "ExceptionInspectorType",
    "Number",
    "StatisticType",
    "cutout",
)

# The cutout type aliases are built on first read.
_compat.lazy_attributes(globals(), {
    name: "aiomisc_c._circuit_breaker_base"
    for name in (
        "CutoutDecoratorReturnType", "CutoutFuncType", "CutoutReturnType",
    )
})

# The Python twin is what a type checker sees; the C twin runs when built.
_c_twin = _compat.import_c_module("_circuit_breaker")
if TYPE_CHECKING or _c_twin is None:
    from ._circuit_breaker_py import CircuitBreaker, cutout
else:
    CircuitBreaker = _c_twin.CircuitBreaker
    cutout = _c_twin.cutout

# Keeps _PyCircuitBreaker / _CCircuitBreaker (and cutout's) reachable.
_compat.bind_twins(
    "circuit_breaker", globals(),
    _compat.lazy_module("aiomisc_c._circuit_breaker_py"),   # imported on first need
    _c_twin, ["CircuitBreaker", "cutout"],
)
del _c_twin
