"""Circuit breaker: both twins; the async parts on both loops.

Most tests drive a subclass whose ``_get_time`` reads a controllable clock,
and replace the random source of the recovery ramp with a scripted one, so
the state walk PASSING -> BROKEN -> RECOVERING -> PASSING/BROKEN is pinned
exactly.
"""
import asyncio
import contextlib
import functools
import gc
import importlib
import inspect
import itertools
import logging
import math
import random
import threading
from collections import Counter
from unittest import mock

import pytest

from aiomisc_c import _circuit_breaker_base, _compat, circuit_breaker
from aiomisc_c.circuit_breaker import (
    CircuitBreakerStates, CircuitBreakerStatistic, CircuitBroken, CounterKey,
)
from aiomisc_c.counters import get_statistics

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


@pytest.fixture
def scripted_random():
    """Replace the ramp's random source by a script of values (both twins
    look up ``_circuit_breaker_base.random`` at call time)."""
    values = []

    def fake():
        return values.pop(0)

    with mock.patch.object(_circuit_breaker_base, "random", fake):
        yield values


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


# --- construction -------------------------------------------------------------

def test_new_breaker(implementation):
    breaker = clocked()(0.5, 10)
    assert breaker.recovery_ratio == 0
    assert breaker.state is PASSING
    assert breaker.get_state_delay() == 0
    assert breaker.response_time == 10
    assert breaker.BUCKET_COUNT == 10
    assert breaker.RECOVER_BROKEN_THRESHOLD == 0.5
    assert breaker.PASSING_BROKEN_THRESHOLD == 1
    assert repr(breaker) == (
        "<Clocked: state=<CircuitBreakerStates.PASSING: 0> recovery_ratio=0>"
    )


def test_zero_response_time(implementation):
    with pytest.raises(ValueError, match="Response time must be greater then zero"):
        circuit_breaker.CircuitBreaker(0.5, 0)
    with pytest.raises(ValueError, match="Response time"):
        circuit_breaker.CircuitBreaker(0.5, -1)
    with pytest.raises(ValueError, match="Response time"):
        circuit_breaker.CircuitBreaker(0.5, float("nan"))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(error_ratio="x", response_time=1), TypeError, "error_ratio"),
    (dict(error_ratio=0.5, response_time="1"), TypeError, "response_time"),
    (dict(error_ratio=0.5, response_time=1, exceptions=ValueError),
     TypeError, "exceptions"),
    (dict(error_ratio=0.5, response_time=1, exceptions=[1]),
     TypeError, "exceptions"),
    (dict(error_ratio=0.5, response_time=1, recovery_time="x"),
     TypeError, "recovery_time"),
    (dict(error_ratio=0.5, response_time=1, broken_time="x"),
     TypeError, "broken_time"),
    (dict(error_ratio=0.5, response_time=1, passing_time="x"),
     TypeError, "passing_time"),
    (dict(error_ratio=0.5, response_time=1, exception_inspector=42),
     TypeError, "exception_inspector"),
])
def test_bad_arguments(implementation, kwargs, error, match):
    with pytest.raises(error, match=match):
        circuit_breaker.CircuitBreaker(**kwargs)


def test_missing_arguments(implementation):
    with pytest.raises(TypeError):
        circuit_breaker.CircuitBreaker()
    with pytest.raises(TypeError):
        circuit_breaker.CircuitBreaker(0.5)
    with pytest.raises(TypeError):
        circuit_breaker.CircuitBreaker(0.5, 1, unknown=1)


def test_error_ratio_not_range_checked(implementation):
    # 17.x's range check can never fail: keep accepting what it accepts
    for ratio in (-1, 0, 1, 2.5):
        circuit_breaker.CircuitBreaker(ratio, 1)


def test_statistic_name_and_threshold(implementation):
    breaker = circuit_breaker.CircuitBreaker(0.25, 1, statistic_name="cb-stat")
    values = {
        metric: value
        for kind, name, metric, value in get_statistics(CircuitBreakerStatistic)
        if name == "cb-stat"
    }
    assert values["error_ratio_threshold"] == 0.25
    assert values["call_count"] == 0
    del breaker


# --- the pinned state walk -------------------------------------------------------

def test_trip_to_broken(implementation):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    assert breaker.get_state_delay() > 0
    assert breaker.get_state_delay() == pytest.approx(10)


def test_broken_does_not_run(implementation):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    called = []
    for second in (20, 25, 28.5):
        breaker.now = float(second)
        with pytest.raises(CircuitBroken):
            breaker.call(called.append, 1)
    assert called == []
    assert breaker.state is BROKEN


def test_recovering_still_failing_goes_back_to_broken(
    implementation, scripted_random,
):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    # delay over: BROKEN -> RECOVERING at t=29; p = 2 ** 0 = 1, never passes
    breaker.now = 29.0
    assert breaker.get_state_delay() == 0
    scripted_random.extend([0.0])
    assert outcome(breaker, fail) == "broken"
    assert breaker.state is RECOVERING
    # t=34: p = 2 ** 0.5 = 1.414: random 0.9 blocks, 0.1 passes
    breaker.now = 34.0
    scripted_random.extend([0.9, 0.1])
    assert outcome(breaker, fail) == "broken"
    assert outcome(breaker, fail) == "fail"
    # the bad bucket (1 of 1 in the window) >= 0.5 * 0.5: back to BROKEN
    assert outcome(breaker, fail) == "broken"
    assert breaker.state is BROKEN
    assert breaker.get_state_delay() == pytest.approx(10)
    assert scripted_random == []


def test_recovering_healthy_goes_to_passing(implementation, scripted_random):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    breaker.now = 29.0
    scripted_random.extend([0.5])
    assert outcome(breaker, ok) == "broken"
    assert breaker.state is RECOVERING
    outcomes = []
    # one call per second; the chance 2 ** (elapsed / 10) - 1 grows to 1
    for second in range(30, 39):
        breaker.now = float(second)
        scripted_random.append(0.5)
        outcomes.append(outcome(breaker, ok))
        assert breaker.state is RECOVERING
    # 2 ** (e / 10) > 1.5 from e = 5.85 s on: t = 35..38
    assert outcomes == ["broken"] * 5 + ["ok"] * 4
    # recovery_time elapsed with a healthy window: PASSING
    breaker.now = 39.0
    assert outcome(breaker, ok) == "ok"
    assert breaker.state is PASSING
    assert scripted_random == []
    # healthy: no further CircuitBroken, no random draw needed
    for second in range(40, 80):
        breaker.now = float(second)
        assert outcome(breaker, ok) == "ok"
    assert breaker.state is PASSING


def test_recovery_mix_with_seeded_random(implementation):
    """Both twins make the same decisions from the same seed."""
    def walk(cls):
        random.seed(1234)
        breaker = clocked(cls)(0.5, 10)
        trip(breaker)
        results = []
        for step in range(400):
            breaker.now = 29.0 + step * 0.25
            results.append((outcome(breaker, ok), breaker.state))
        return results

    results = walk(circuit_breaker.CircuitBreaker)
    seen = {result for result, _ in results}
    assert seen == {"ok", "broken"}
    assert results[-1] == ("ok", PASSING)
    # once PASSING again, nothing is broken any more
    first_passing = next(
        i for i, (_, state) in enumerate(results) if state is PASSING
    )
    assert all(r == "ok" for r, _ in results[first_passing:])
    if _compat.c_available("circuit_breaker"):
        assert walk(circuit_breaker._PyCircuitBreaker) == walk(
            circuit_breaker._CCircuitBreaker,
        )


def _random_walk(cls, seed):
    """A long random mix of clock moves (small steps, idle gaps, the clock
    going back) and outcomes; every observable after every call."""
    random.seed(seed)                 # the recovery ramp's draws
    script = random.Random(seed)      # the walk itself
    breaker = clocked(cls)(
        0.35, 4, recovery_time=3, broken_time=2, passing_time=1,
        exception_inspector=lambda exc: "ignored" not in str(exc),
    )
    seen = []
    for _ in range(3000):
        move = script.random()
        if move < 0.85:     # busy: several calls per bucket (0.4 s)
            breaker.now += script.choice((0.0, 0.01, 0.05, 0.2))
        elif move < 0.98:
            breaker.now += script.uniform(0.3, 1.5)
        elif move < 0.995:
            breaker.now += script.uniform(4, 12)     # an idle gap
        else:
            breaker.now -= script.uniform(0.1, 3)    # the clock went back
        kind = script.choices(("ok", "fail", "ignored"), (7, 2, 1))[0]

        def body(kind=kind):
            if kind != "ok":
                raise Boom(kind)
            return "ok"

        seen.append((
            outcome(breaker, body), breaker.state, breaker.recovery_ratio,
            breaker.get_state_delay(), tuple(sorted(breaker.counter().items())),
        ))
    return seen


def test_window_stops_at_the_first_old_bucket(implementation):
    """The window is read from the newest bucket back to the first one
    older than ``response_time``; after the clock went back, newer buckets
    may hold older ids than the ones behind them."""
    breaker = clocked()(0.5, 10)
    for second in range(20, 30):          # buckets 200..290, nine bad
        breaker.now = float(second)
        if second != 29:
            with pytest.raises(Boom):
                breaker.call(fail)
        breaker.call(ok)
    assert breaker.recovery_ratio == pytest.approx(0.9)
    breaker.now = 5.0                     # back: bucket 50
    breaker.call(ok)
    breaker.now = 16.0                    # bucket 160; 50 is out of the window
    breaker.call(ok)
    assert breaker.recovery_ratio == 0
    assert breaker.state is PASSING


def test_window_ratio_in_steady_traffic(implementation):
    """A full, rolling window: every call sees the ratio of bad buckets
    among the last ``BUCKET_COUNT`` ones."""
    breaker = clocked()(0.5, 10)
    outcomes = []
    for step in range(200):
        breaker.now = step * 0.5          # two calls per one-second bucket
        bad = step % 3 == 0
        with contextlib.suppress(Boom):
            breaker.call(fail if bad else ok)
        outcomes.append(bad)
        # buckets of the last 10 seconds: steps 2k and 2k+1 share one
        first = max(0, (step // 2 - 9) * 2)
        buckets = [outcomes[i:i + 2] for i in range(first, step + 1, 2)]
        expected = sum(sum(b) / len(b) >= 0.5 for b in buckets) / len(buckets)
        assert breaker.recovery_ratio == pytest.approx(expected), step
    assert breaker.state is PASSING


@pytest.mark.skipif(
    not _compat.c_available("circuit_breaker"), reason="C twin not built",
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twins_agree_on_a_long_random_walk(seed):
    """The C twin keeps a tally of bad buckets instead of scanning the
    window, and reuses bucket ids; the Python twin recomputes both on every
    call.  They must agree on everything a user can observe."""
    c_walk = _random_walk(circuit_breaker._CCircuitBreaker, seed)
    py_walk = _random_walk(circuit_breaker._PyCircuitBreaker, seed)
    assert {state for _, state, *_ in c_walk} == {PASSING, BROKEN, RECOVERING}
    for step, (c_seen, py_seen) in enumerate(zip(c_walk, py_walk)):
        assert c_seen == py_seen, step


def test_statistics_of_the_walk(implementation, scripted_random):
    breaker = clocked()(0.5, 10, statistic_name="walk")
    trip(breaker)
    breaker.now = 29.0
    scripted_random.extend([0.5, 0.0])
    outcome(breaker, ok)            # recovering, refused
    breaker.now = 38.0
    outcome(breaker, ok)            # recovering, passes
    stat = breaker._counters
    assert isinstance(stat, CircuitBreakerStatistic)
    assert stat.call_count == 23
    assert stat.call_passing == 20
    assert stat.call_broken == 1
    assert stat.call_recovering == 2
    assert stat.call_recovering_ok == 1
    assert stat.call_recovering_failed == 1
    assert stat.error_ratio_threshold == 0.5
    reported = {
        metric: value for _, name, metric, value in get_statistics(
            CircuitBreakerStatistic,
        ) if name == "walk"
    }
    assert reported["call_count"] == 23


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


def fail_runtime():
    raise RuntimeError("runtime")


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


def test_context_manager(implementation):
    breaker = clocked()(0.5, 10)
    with breaker.context():
        pass
    with pytest.raises(Boom):
        with breaker.context():
            raise Boom()
    counter = breaker.counter()
    assert counter[CounterKey.OK] == 1
    assert counter[CounterKey.FAIL] == 1
    assert counter[CounterKey.TOTAL] == 2
    trip_breaker = clocked()(0.5, 10)
    trip(trip_breaker)
    body = []
    with pytest.raises(CircuitBroken):
        with trip_breaker.context():
            body.append(1)
    assert body == []


def test_call_arguments(implementation):
    breaker = clocked()(0.5, 10)
    assert breaker.call(dict, a=1) == {"a": 1}
    assert breaker.call(divmod, 7, 2) == (3, 1)
    assert breaker.call(func=ok) == "ok"
    with pytest.raises(TypeError):
        breaker.call()


def test_subclass_constants(implementation):
    class Small(clocked()):
        BUCKET_COUNT = 2
        PASSING_BROKEN_THRESHOLD = 0.5

    breaker = Small(0.5, 10)
    breaker.now = 0.0
    breaker.call(ok)
    breaker.now = 5.0     # ts = 10: bucket 10
    with pytest.raises(Boom):
        breaker.call(fail)
    # two buckets, one bad: 0.5 >= 0.5 -> BROKEN
    breaker.now = 5.0
    with pytest.raises(CircuitBroken):
        breaker.call(ok)
    assert breaker.state is BROKEN


def test_patched_get_time_on_class(implementation):
    cls = circuit_breaker.CircuitBreaker
    breaker = cls(0.5, 10)
    with mock.patch.object(cls, "_get_time", lambda self: 1.25):
        assert breaker.bucket() == 10
        assert breaker.call(ok) == "ok"
        assert breaker.counter()[CounterKey.OK] == 1
    with mock.patch.object(cls, "BUCKET_COUNT", 20):
        with mock.patch.object(cls, "_get_time", lambda self: 1.25):
            assert breaker.bucket() == 20


def test_circuit_broken():
    error = ValueError("x")
    broken = CircuitBroken(error)
    assert broken.last_exception is error
    assert repr(broken) == "<CircuitBroken: ValueError('x')>"
    assert repr(CircuitBroken(None)) == "<CircuitBroken: None>"

    class BadRepr(Exception):
        def __repr__(self):
            raise RuntimeError("no repr")

    assert repr(CircuitBroken(BadRepr())) == (
        "<CircuitBroken: <unrepresentable BadRepr>>"
    )
    nested = CircuitBroken(None)
    nested.last_exception = nested
    assert repr(nested) == "<CircuitBroken: <CircuitBroken: ...>>"


def test_enums():
    assert [int(k) for k in (CounterKey.FAIL, CounterKey.OK, CounterKey.TOTAL)] \
        == [0, 1, 2]
    assert [int(s) for s in (PASSING, BROKEN, RECOVERING)] == [0, 1, 2]


def test_public_names():
    for name in circuit_breaker.__all__:
        assert hasattr(circuit_breaker, name), name


# --- threads ------------------------------------------------------------------------

def test_threads_keep_exact_counts(implementation):
    breaker = clocked()(0.5, 10, statistic_name="threads")
    breaker.now = 1.0        # one bucket: PASSING forever
    threads_count, per_thread = 4, 5_000
    start = threading.Barrier(threads_count)

    def work(index):
        start.wait()
        for i in range(per_thread):
            if (i + index) % 3 == 0:
                try:
                    breaker.call(fail)
                except Boom:
                    pass
            else:
                breaker.call(ok)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    total = threads_count * per_thread
    fails = sum(
        1 for index in range(threads_count) for i in range(per_thread)
        if (i + index) % 3 == 0
    )
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == total
    assert counter[CounterKey.FAIL] == fails
    assert counter[CounterKey.OK] == total - fails
    assert breaker._counters.call_count == total
    assert breaker._counters.call_passing == total


def test_no_lock_held_while_user_code_runs(implementation):
    breaker = clocked()(0.5, 10)
    results = []

    def other_thread_call():
        results.append(breaker.call(ok))
        results.append(breaker.recovery_ratio)

    def body():
        thread = threading.Thread(target=other_thread_call)
        thread.start()
        thread.join(30)
        return not thread.is_alive()

    assert breaker.call(body) is True
    assert results == ["ok", 0]

    def inspector(exc):
        return body()

    inspected = clocked()(0.5, 10, exception_inspector=inspector)
    breaker = inspected  # other_thread_call uses the inspected breaker now
    with pytest.raises(Boom):
        inspected.call(fail)


# --- asyncio ---------------------------------------------------------------------------

def test_get_time_follows_loop_clock(implementation, loop, run):
    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        before = loop.time()
        now = breaker._get_time()
        after = loop.time()
        assert before <= now <= after
        assert breaker.loop is loop
        return breaker

    breaker = run(main())
    assert breaker.loop is loop


def test_no_loop_outside(implementation):
    breaker = circuit_breaker.CircuitBreaker(0.5, 10)
    with pytest.raises(RuntimeError):
        breaker.call(ok)
    assert "recovery_ratio=" in repr(breaker)


def test_real_clock_calls(implementation, loop, run):
    async def main():
        breaker = circuit_breaker.CircuitBreaker(0.5, 10)
        for _ in range(100):
            assert breaker.call(ok) == "ok"
        assert breaker.counter()[CounterKey.OK] == 100
        assert breaker.recovery_ratio == 0
        return breaker

    run(main())


def test_call_async(implementation, loop, run):
    breaker = clocked()(0.5, 10)

    async def coro(value, *, plus=0):
        await asyncio.sleep(0)
        return value + plus

    def returns_future():
        future = loop.create_future()
        loop.call_soon(future.set_result, "future")
        return future

    async def afail():
        await asyncio.sleep(0)
        raise Boom("async")

    async def main():
        assert await breaker.call_async(coro, 1, plus=2) == 3
        assert await breaker.call_async(ok) == "ok"
        assert await breaker.call_async(returns_future) == "future"
        with pytest.raises(Boom):
            await breaker.call_async(afail)
        with pytest.raises(Boom):
            await breaker.call_async(fail)
        task = asyncio.ensure_future(breaker.call_async(coro, 5))
        assert await task == 5

    run(main())
    counter = breaker.counter()
    assert counter[CounterKey.OK] == 4
    assert counter[CounterKey.FAIL] == 2
    assert counter[CounterKey.TOTAL] == 6


def test_call_async_is_lazy(implementation, loop, run):
    breaker = clocked()(0.5, 10)
    calls = []

    async def coro():
        calls.append(1)

    awaitable = breaker.call_async(coro)
    assert calls == []
    assert breaker._counters.call_count == 0
    assert inspect.isawaitable(awaitable)
    run(awaitable)
    assert calls == [1]
    assert breaker._counters.call_count == 1


def test_call_async_broken(implementation, loop, run):
    breaker = clocked()(0.5, 10)
    trip(breaker)
    called = []

    async def coro():
        called.append(1)

    async def main():
        with pytest.raises(CircuitBroken):
            await breaker.call_async(coro)

    run(main())
    assert called == []


def test_call_async_cancelled_is_not_a_failure(implementation, loop, run):
    breaker = clocked()(0.5, 10, exceptions=(BaseException,))

    async def main():
        started = asyncio.Event()

        async def sleeper():
            started.set()
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(breaker.call_async(sleeper))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == 1
    assert counter[CounterKey.FAIL] == 0
    assert breaker._last_exception is None


def test_call_async_closed_unfinished(implementation, loop, run):
    breaker = clocked()(0.5, 10, exceptions=(BaseException,))
    future = loop.create_future()

    async def waiter():
        return await future

    awaitable = breaker.call_async(waiter)
    iterator = awaitable.__await__()
    next(iterator)            # suspended on the future
    iterator.close()
    del iterator, awaitable
    gc.collect()
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == 1
    assert counter[CounterKey.FAIL] == 0
    future.cancel()


# --- cutout ------------------------------------------------------------------------

def test_cutout_sync(implementation):
    with pytest.raises(ValueError):
        circuit_breaker.cutout(0.5, 0)

    decorator = circuit_breaker.cutout(0.5, 10, Boom)

    @decorator
    def function(a, b=2):
        """Docstring."""
        return a + b

    @decorator
    def failing():
        raise Boom()

    assert function.__name__ == "function"
    assert function.__doc__ == "Docstring."
    assert function.__wrapped__.__name__ == "function"
    assert function.__qualname__.endswith("function")
    assert not inspect.iscoroutinefunction(function)
    assert str(inspect.signature(function)) == "(a, b=2)"

    with mock.patch.object(
        circuit_breaker.CircuitBreaker, "_get_time", lambda self: 3.0,
    ):
        assert function(1) == 3
        assert function(1, b=5) == 6
        with pytest.raises(Boom):
            failing()


def test_cutout_method_binding(implementation):
    class Service:
        def __init__(self):
            self.value = 7

        @circuit_breaker.cutout(0.5, 10, Boom)
        def get(self, plus):
            return self.value + plus

    with mock.patch.object(
        circuit_breaker.CircuitBreaker, "_get_time", lambda self: 3.0,
    ):
        assert Service().get(1) == 8
        assert Service.get(Service(), 2) == 9


def test_cutout_shares_one_breaker_and_no_exceptions_quirk(implementation):
    with mock.patch.object(
        circuit_breaker.CircuitBreaker, "_get_time", lambda self: 3.0,
    ):
        decorator = circuit_breaker.cutout(0.5, 10)

        @decorator
        def failing():
            raise Boom()

        for _ in range(50):
            with pytest.raises(Boom):
                failing()


def test_cutout_async(implementation, loop, run):
    decorator = circuit_breaker.cutout(0.5, 10, Boom)

    @decorator
    async def coro(value):
        """Async doc."""
        await asyncio.sleep(0)
        return value * 2

    @decorator
    async def afail():
        raise Boom()

    assert inspect.iscoroutinefunction(coro)
    assert coro.__name__ == "coro"
    assert coro.__doc__ == "Async doc."

    async def main():
        assert await coro(21) == 42
        with pytest.raises(Boom):
            await afail()

    run(main())


def test_cutout_async_is_a_coroutine_function(implementation, loop, run):
    decorator = circuit_breaker.cutout(0.5, 10, Boom)
    started = []

    @decorator
    async def coro(a, b=2, *, c=3) -> int:
        started.append(a)
        return a + b + c

    assert asyncio.iscoroutinefunction(coro)
    assert inspect.iscoroutinefunction(coro)
    assert str(inspect.signature(coro)) == "(a, b=2, *, c=3) -> int"
    assert coro.__wrapped__.__name__ == "coro"
    assert coro.__qualname__.endswith("coro")
    assert coro.__module__ == __name__

    # an outer sync wrapper copies the metadata, not the coroutine markers
    @functools.wraps(coro)
    def sync(*args):
        return None

    assert not inspect.iscoroutinefunction(sync)
    assert not asyncio.iscoroutinefunction(sync)

    async def main():
        call = coro(1, c=10)
        assert started == []                 # nothing runs before the await
        assert asyncio.iscoroutine(call)
        task = asyncio.ensure_future(call)   # a Task accepts it
        assert await task == 13
        assert await asyncio.create_task(coro(2)) == 7
        assert await asyncio.wait_for(coro(3), 5) == 8
        assert started == [1, 2, 3]

    run(main())


def test_cutout_async_method_binding(implementation, loop, run):
    class Client:
        def __init__(self):
            self.value = 7

        @circuit_breaker.cutout(0.5, 10, Boom)
        async def get(self, plus):
            return self.value + plus

    async def main():
        assert await Client().get(1) == 8
        assert await Client.get(Client(), 2) == 9

    run(main())


def test_cutout_async_of_a_subclass_calls_its_call_async(implementation, loop, run):
    calls = []

    class Recording(circuit_breaker.CircuitBreaker):
        def call_async(self, func, *args, **kwargs):
            calls.append((func.__name__, args, kwargs))
            return super().call_async(func, *args, **kwargs)

    if implementation == "c":
        wrap_async = importlib.import_module("aiomisc_c._circuit_breaker")._wrap_async
    else:
        wrap_async = _circuit_breaker_base._wrap_async
    wrapped = wrap_async(Recording(0.5, 10), afunc)

    async def main():
        assert await wrapped(4, k=1) == 5

    run(main())
    assert calls == [("afunc", (4,), {"k": 1})]


def test_wrap_async_checks_its_arguments(implementation):
    if implementation != "c":
        pytest.skip("the C wrapper factory only")
    wrap_async = importlib.import_module("aiomisc_c._circuit_breaker")._wrap_async
    with pytest.raises(TypeError, match="needs a C CircuitBreaker"):
        wrap_async(object(), afunc)
    with pytest.raises(TypeError, match="breaker, func"):
        wrap_async(circuit_breaker.CircuitBreaker(0.5, 1))


async def afunc(value, k=0):
    return value + k


def test_cutout_async_mock(implementation, loop, run):
    target = mock.AsyncMock(return_value=5)
    wrapped = circuit_breaker.cutout(0.5, 10)(target)

    async def main():
        return await wrapped()

    assert run(main()) == 5


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


# --- the awaitable of call_async, driven by hand ---------------------------------

def test_call_async_protocol(implementation):
    breaker = clocked()(0.5, 10)

    async def two_steps(value):
        received = await Suspend()
        return value + received

    class Suspend:
        def __await__(self):
            return (yield "suspended")

    awaitable = breaker.call_async(two_steps, 40)
    assert awaitable.send(None) == "suspended"
    with pytest.raises(StopIteration) as info:
        awaitable.send(2)
    assert info.value.value == 42
    with pytest.raises(RuntimeError):
        awaitable.send(None)
    assert breaker.counter()[CounterKey.OK] == 1

    # throw into a suspended call: a failure, propagated
    awaitable = breaker.call_async(two_steps, 1)
    awaitable.send(None)
    with pytest.raises(Boom):
        awaitable.throw(Boom("thrown"))
    assert breaker.counter()[CounterKey.FAIL] == 1

    # throw handled by the body: it goes on
    async def catcher():
        try:
            await Suspend()
        except Boom:
            return "caught"

    awaitable = breaker.call_async(catcher)
    awaitable.send(None)
    with pytest.raises(StopIteration) as info:
        awaitable.throw(Boom())
    assert info.value.value == "caught"

    # throw before start: raised, nothing recorded, the body never runs
    calls = []

    async def body():
        calls.append(1)

    awaitable = breaker.call_async(body)
    with pytest.raises(Boom):
        awaitable.throw(Boom())
    awaitable.close()
    assert calls == []
    # close before start: nothing recorded
    breaker.call_async(body).close()
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == 3
    assert breaker._counters.call_count == 3


def test_threads_hammer_the_state_machine(implementation):
    """Threads drive one breaker through every state: no lost counts."""
    breaker = clocked()(0.5, 1, statistic_name="hammer")
    clock_lock = threading.Lock()
    ticks = itertools.count()
    threads_count, per_thread = 4, 3_000
    start = threading.Barrier(threads_count)

    def work(index):
        start.wait()
        for _ in range(per_thread):
            with clock_lock:
                tick = next(ticks)
                breaker.now = tick * 0.01
            # 3 s of failures, then 3 s of successes, and again
            func = fail if (tick // 300) % 2 == 0 else ok
            try:
                breaker.call(func)
            except (Boom, CircuitBroken):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    with mock.patch.object(_circuit_breaker_base, "random", lambda: 0.5):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    stat = breaker._counters
    assert stat.call_count == threads_count * per_thread
    assert stat.call_count == (
        stat.call_passing + stat.call_broken + stat.call_recovering
    )
    assert stat.call_recovering == (
        stat.call_recovering_ok + stat.call_recovering_failed
    )
    assert stat.call_broken > 0 and stat.call_recovering > 0


def test_breaker_in_a_cycle_is_collected(implementation):
    def make():
        breaker = clocked()(0.5, 10, statistic_name="cycle")
        breaker.loop_ref = breaker          # a cycle through __dict__
        breaker.inspector_ref = lambda exc: breaker
        return breaker

    def alive():
        return [
            name for _, name, metric, _ in get_statistics(CircuitBreakerStatistic)
            if name == "cycle" and metric == "call_count"
        ]

    breaker = make()
    breaker.call(ok)
    assert alive() == ["cycle"]
    del breaker
    gc.collect()
    assert alive() == []


@pytest.mark.parametrize("method", ["close", "send", "throw"])
@pytest.mark.parametrize("driver", ["await", "task"])
def test_call_async_reentered_by_its_body(implementation, loop, run, method, driver):
    """The body calls send/throw/close on the awaitable that drives it: a
    coroutine refuses that ("already executing") and so must call_async; the
    body, the only other holder of the awaitable, then drops it mid-step."""
    breaker = clocked()(0.5, 10)
    holder = []
    refused = []

    async def body():
        awaitable = holder.pop()
        step = {
            "close": awaitable.close,
            "send": functools.partial(awaitable.send, None),
            "throw": functools.partial(awaitable.throw, Boom()),
        }[method]
        del awaitable
        try:
            step()
        except ValueError as error:
            refused.append(str(error))
        del step
        await asyncio.sleep(0)
        return "done"

    async def main():
        holder.append(breaker.call_async(body))
        if driver == "task":
            return await asyncio.ensure_future(holder[0])
        return await holder[0]

    assert run(main()) == "done"
    assert refused == ["coroutine already executing"]
    assert breaker.counter()[CounterKey.OK] == 1


@pytest.mark.parametrize("driver", ["await", "task"])
def test_call_async_stop_iteration_becomes_runtime_error(
    implementation, loop, run, driver,
):
    """A sync callable raising StopIteration: what leaves the awaitable is
    PEP 479's RuntimeError (asyncio refuses a raw StopIteration and the task
    would never finish); the breaker records the StopIteration itself."""
    breaker = clocked()(0.5, 10, exceptions=(StopIteration,))

    async def main():
        awaitable = breaker.call_async(next, iter([]))
        if driver == "task":
            awaitable = asyncio.ensure_future(awaitable)
        return await asyncio.wait_for(awaitable, 30)

    with pytest.raises(RuntimeError) as info:
        run(main())
    assert str(info.value) == "coroutine raised StopIteration"
    assert type(info.value.__cause__) is StopIteration
    assert type(breaker._last_exception) is StopIteration
    assert breaker.counter()[CounterKey.FAIL] == 1


def test_loop_replaced_by_its_own_truth_test(implementation, loop):
    """`_loop`'s truth test runs Python code that may replace `_loop` (and
    drop the old object): `loop` gives what `_loop` is afterwards."""
    breaker = circuit_breaker.CircuitBreaker(0.5, 10)

    class SwitchingLoop:
        def __bool__(self):
            breaker._loop = loop    # drops the last reference to self
            return True

    breaker._loop = SwitchingLoop()
    assert breaker.loop is loop
    breaker._loop = SwitchingLoop()
    assert breaker._get_time() == pytest.approx(loop.time(), abs=60)
