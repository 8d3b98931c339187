"""The circuit breaker's clock hooks (``_get_time``, the loop's ``time``,
``time.monotonic``) are looked up at call time; on both twins.
"""

from collections import Counter
from unittest import mock

import pytest
from helpers.circuit_breaker_cases import PASSING, clocked, ok, trip

from aiomisc_c import circuit_breaker
from aiomisc_c.circuit_breaker import CounterKey


# --- hooks looked up at call time (the C twin caches them safely) -------------

def test_patched_class_constant_alone(implementation, loop, run):
    cls = circuit_breaker.CircuitBreaker

    async def main():
        breaker = cls(0.5, 10)
        assert abs(breaker.bucket() - loop.time() * 10) <= 10
        with mock.patch.object(cls, "BUCKET_COUNT", 20):
            assert abs(breaker.bucket() - loop.time() * 20) <= 10
        assert abs(breaker.bucket() - loop.time() * 10) <= 10

    run(main())


def test_loop_class_time_patched(implementation, loop, run):
    loop_class = type(loop)

    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        breaker.call(ok)                 # the clock is read (and cached)
        with mock.patch.object(loop_class, "time", lambda self: 12.34):
            assert breaker.bucket() == 120
            assert breaker.call(ok) == "ok"
        assert breaker.bucket() != 120

    run(main())


def test_time_monotonic_patched(implementation, loop, run, loop_kind):
    if loop_kind != "asyncio":
        pytest.skip("uvloop's clock is not time.monotonic")

    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        breaker.call(ok)
        with mock.patch("time.monotonic", lambda: 7.77):
            assert breaker._get_time() == 7.77
            assert breaker.bucket() == 70
        assert breaker.bucket() != 70

    run(main())


def test_loop_instance_time_set_before_use(implementation, loop, run):
    try:
        loop.time = lambda: 3.3
    except AttributeError:
        pytest.skip("this loop has no instance attributes")

    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        assert breaker.bucket() == 30

    try:
        run(main())
    finally:
        del loop.time


def test_explicit_loop_attribute(implementation, loop):
    breaker = circuit_breaker.CircuitBreaker(0.5, 10)
    breaker._loop = loop        # no running loop needed then
    assert breaker.loop is loop
    assert breaker.call(ok) == "ok"
    assert breaker.counter()[CounterKey.OK] == 1


def test_reinit_starts_over(implementation):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    breaker.__init__(0.5, 10)
    assert breaker.state is PASSING
    assert breaker.counter() == Counter()


def test_call_with_star_args_tuple(implementation):
    breaker = clocked()(0.5, 10)
    seen = []

    def record(*args):
        seen.append(args)
        return args

    args = (record, 1, 2)
    assert breaker.call(*args) == (1, 2)
    assert args == (record, 1, 2)
    with pytest.raises(TypeError):
        breaker.call(ok, func=ok)
