"""Circuit breaker (mirror of ``aiomisc.circuit_breaker``).

Twinned (C in ``aiomisc_c._circuit_breaker``, Python in
``aiomisc_c._circuit_breaker_py``): ``CircuitBreaker``, ``cutout``.
Shared by both twins (``aiomisc_c._circuit_breaker_base``): the enums,
``CircuitBroken``, ``CircuitBreakerStatistic`` and the type aliases.
"""
from __future__ import annotations

from . import _compat
from ._circuit_breaker_base import (
    CircuitBreakerStates, CircuitBreakerStatistic, CircuitBroken, CounterKey,
    CutoutDecoratorReturnType, CutoutFuncType, CutoutReturnType,
    ExceptionInspectorType, Number, StatisticType,
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

# Binds CircuitBreaker / cutout, plus the _Py* and _C* twins.
_compat.bind_twins(
    "circuit_breaker", globals(),
    _compat.lazy_module("aiomisc_c._circuit_breaker_py"),   # imported on first need
    _compat.import_c_module("_circuit_breaker"),
    ["CircuitBreaker", "cutout"],
)
