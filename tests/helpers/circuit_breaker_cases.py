"""Helpers shared by the circuit breaker's test modules: a breaker class
with a settable clock, guarded functions, and the pinned walk to BROKEN."""

import pytest

from aiomisc_c import circuit_breaker
from aiomisc_c.circuit_breaker import CircuitBreakerStates, CircuitBroken


PASSING = CircuitBreakerStates.PASSING
BROKEN = CircuitBreakerStates.BROKEN
RECOVERING = CircuitBreakerStates.RECOVERING


class Boom(Exception):
    pass


def clocked(base=None):
    """A subclass of the current CircuitBreaker twin with a settable clock."""
    base = base or circuit_breaker.CircuitBreaker

    class Clocked(base):
        def __init__(self, *args, **kwargs):
            self.now = 0.0
            super().__init__(*args, **kwargs)

        def _get_time(self):
            return self.now

    return Clocked


def ok():
    return "ok"


def fail():
    raise Boom("fail")


def outcome(breaker, func):
    """"ok" / "fail" / "broken": what one guarded call did."""
    try:
        breaker.call(func)
    except CircuitBroken:
        return "broken"
    except Boom:
        return "fail"
    return "ok"


def trip(breaker):
    """The pinned walk to BROKEN: error_ratio=0.5, response_time=10."""
    for second in range(10):
        breaker.now = float(second)
        assert breaker.call(ok) == "ok"
    assert breaker.state is PASSING
    assert breaker.recovery_ratio == 0
    for second in range(10, 20):
        breaker.now = float(second)
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state is PASSING
    # an 11th call at the same clock value finds every bucket bad
    with pytest.raises(CircuitBroken) as info:
        breaker.call(ok)
    assert isinstance(info.value.last_exception, Boom)
    assert breaker.state is BROKEN


def fail_runtime():
    raise RuntimeError("runtime")
