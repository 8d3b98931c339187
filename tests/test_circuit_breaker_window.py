"""The circuit breaker's sliding window of buckets and counters, and which
exceptions count as failures; on both twins.
"""

import asyncio
import logging
import math
import random
from collections import Counter

import pytest
from helpers.circuit_breaker_cases import Boom, PASSING, clocked, fail, fail_runtime, ok

from aiomisc_c.circuit_breaker import CircuitBroken, CounterKey


# --- window and counters --------------------------------------------------------

def test_bucket_and_counter(implementation):
    breaker = clocked()(0.5, 10, exceptions=[Boom, Boom])
    breaker.now = 12.34
    # ts = 123.4 -> 123.4 - 123.4 % 10 = 120
    assert breaker.bucket() == 120
    assert isinstance(breaker.bucket(), int)
    assert breaker.counter() == Counter()
    breaker.call(ok)
    with pytest.raises(Boom):
        breaker.call(fail)
    with pytest.raises(ZeroDivisionError):   # not monitored: TOTAL only
        breaker.call(lambda: 1 / 0)
    counter = breaker.counter()
    assert isinstance(counter, Counter)
    assert counter == Counter({
        CounterKey.OK: 1, CounterKey.FAIL: 1, CounterKey.TOTAL: 3,
    })
    assert counter[CounterKey.OK] == 1
    assert counter[CounterKey.FAIL] == 1
    assert counter[CounterKey.TOTAL] == 3


def _boundary_times(response_time, bucket_count, starts):
    """Clock values on, just below and just above bucket boundaries."""
    times = []
    for start in starts:
        step = response_time / bucket_count
        for k in range(6):
            edge = start + k * step
            times += [
                math.nextafter(edge, -math.inf), edge,
                math.nextafter(edge, math.inf), edge + step / 3,
            ]
    return times


@pytest.mark.parametrize("response_time", [10, 0.3, 7e-7, 1234.5678])
def test_calls_land_in_the_exact_bucket(implementation, response_time):
    """A call is counted in the bucket of ``int(ts - ts % response_time)``
    with ``ts = now * BUCKET_COUNT``, at every clock value, including the
    last representable value before a boundary (the C twin skips the
    modulo while the clock stays inside the last bucket)."""
    breaker = clocked()(0.5, response_time)
    count = breaker.BUCKET_COUNT
    times = _boundary_times(response_time, count, [0.0, 1.0, 12345.678, 3.1e7])
    rng = random.Random(7)
    times += sorted(rng.uniform(0, 1e6) for _ in range(300))
    times += [5.0, 4.0, 1e6, 0.5]          # the clock going back too
    run, previous = 0, None
    for now in times:
        ts = now * count
        expected_id = int(ts - ts % response_time)
        run = run + 1 if expected_id == previous else 1
        previous = expected_id
        breaker.now = now
        breaker.call(ok)
        assert breaker.bucket() == expected_id
        assert breaker.counter()[CounterKey.TOTAL] == run, now


def test_bucket_count_change_is_seen_at_once(implementation):
    breaker = clocked()(0.5, 10)
    breaker.now = 1.5
    breaker.call(ok)
    assert breaker.counter()[CounterKey.TOTAL] == 1
    type(breaker).BUCKET_COUNT = 20          # ts = 30 -> bucket 30, not 10
    breaker.call(ok)
    assert breaker.bucket() == 30
    assert breaker.counter()[CounterKey.TOTAL] == 1


def test_unmonitored_exceptions_not_failures(implementation):
    breaker = clocked()(0.5, 10, exceptions=(KeyError,))
    for second in range(30):
        breaker.now = float(second)
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.recovery_ratio == 0
    assert breaker.state is PASSING


def test_recovery_ratio_counts_empty_buckets(implementation):
    breaker = clocked()(0.5, 10)
    breaker.now = 0.0
    with pytest.raises(Boom):
        breaker.call(fail)
    breaker.now = 1.0
    breaker.counter()            # a fresh, empty bucket
    assert breaker.recovery_ratio == 0.5
    # buckets older than the window are not counted
    breaker.now = 11.0
    breaker.counter()
    assert breaker.recovery_ratio == 0


def test_exception_inspector(implementation):
    seen = []

    def inspector(exc):
        seen.append(exc)
        return not isinstance(exc, ValueError)

    breaker = clocked()(0.5, 1, exception_inspector=inspector)
    for step in range(100):
        breaker.now = step * 0.05
        with pytest.raises(ValueError):
            breaker.call(int, "x")
    assert breaker.recovery_ratio == 0
    assert len(seen) == 100
    for step in range(100, 110):
        breaker.now = step * 0.05
        try:
            breaker.call(fail_runtime)
        except (RuntimeError, CircuitBroken):
            pass
    assert breaker.recovery_ratio > 0


def test_raising_inspector_is_logged(implementation, caplog):
    def inspector(exc):
        raise LookupError("inspector broke")

    breaker = clocked()(0.5, 10, exception_inspector=inspector)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.counter()[CounterKey.FAIL] == 1
    records = [r for r in caplog.records if "Unhandled exception" in r.getMessage()]
    assert records and records[0].exc_info[0] is LookupError


@pytest.mark.parametrize("exc_type", [
    asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit,
])
def test_control_flow_exceptions_never_fail(implementation, exc_type):
    breaker = clocked()(0.5, 10, exceptions=(BaseException,))

    def raiser():
        raise exc_type()

    for second in range(30):
        breaker.now = float(second)
        with pytest.raises(exc_type):
            breaker.call(raiser)
    assert breaker.state is PASSING
    assert breaker.recovery_ratio == 0
    assert breaker.counter()[CounterKey.TOTAL] == 1
    assert breaker.counter()[CounterKey.FAIL] == 0
