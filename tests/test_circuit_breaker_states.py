"""Circuit breaker construction and its state machine, on both twins.

Most tests drive a subclass whose ``_get_time`` reads a controllable clock,
and replace the random source of the recovery ramp with a scripted one, so
the state walk PASSING -> BROKEN -> RECOVERING -> PASSING/BROKEN is pinned
exactly.
"""

import contextlib
import random
from unittest import mock

import pytest
from helpers.circuit_breaker_cases import (
    BROKEN, Boom, PASSING, RECOVERING, clocked, fail, ok, outcome, trip,
)

from aiomisc_c import _circuit_breaker_base, _compat, circuit_breaker
from aiomisc_c.circuit_breaker import CircuitBreakerStatistic, CircuitBroken
from aiomisc_c.counters import get_statistics


@pytest.fixture
def scripted_random():
    """Replace the ramp's random source by a script of values (both twins
    look up ``_circuit_breaker_base.random`` at call time)."""
    values = []

    def fake():
        return values.pop(0)

    with mock.patch.object(_circuit_breaker_base, "random", fake):
        yield values


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
